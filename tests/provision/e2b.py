"""The E2B backend, offline: the unmodified SDK against the local protocol server.

``e2b`` starts ``tests.e2b_server`` (real ipykernels behind E2B's control-plane,
envd and code-interpreter HTTP protocol on a loopback port) and points the
SDK at it with its own connection settings (``api_url`` and ``sandbox_url``).
``e2b-live`` runs the same suite against the real cloud, only when
``E2B_API_KEY`` is set (``E2B_DOMAIN`` and ``EAGER_RT_E2B_TEMPLATE`` honoured).
``e2b-upstream`` runs it against E2B's own code-interpreter server (the
``template/server`` of e2b-dev/code-interpreter, started on loopback by
``python -m tests.e2b_server.upstream``), only when ``EAGER_RT_E2B_UPSTREAM``
holds its URL: the local server plays the control plane, every sandbox request
goes to E2B's server.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator, Iterator

import pytest

from eager_rt.executor import Backend
from eager_rt.registry import open_backend
from tests.provision import unavailable

BACKEND = "e2b"
VARIANTS = {"e2b": "e2b_backend"}
if os.environ.get("E2B_API_KEY"):
    VARIANTS["e2b-live"] = "e2b_live_backend"
UPSTREAM_VAR = "EAGER_RT_E2B_UPSTREAM"
if os.environ.get(UPSTREAM_VAR):
    VARIANTS["e2b-upstream"] = "e2b_upstream_backend"

REQUIRE_VAR = "EAGER_RT_REQUIRE_E2B"


@pytest.fixture(scope="session")
def e2b_server() -> Iterator[object]:
    """One local E2B server for the whole test session (sandboxes isolate the tests)."""
    if importlib.util.find_spec("e2b_code_interpreter") is None:
        unavailable("e2b backend", "e2b-code-interpreter is not installed", REQUIRE_VAR)
    if importlib.util.find_spec("ipykernel") is None:
        unavailable("local E2B server", "ipykernel is not installed", REQUIRE_VAR)
    from tests.e2b_server import LocalE2B

    with LocalE2B(keepalive_s=1.0) as server:
        yield server


@pytest.fixture
async def e2b_backend(e2b_server: object) -> AsyncIterator[Backend]:
    from tests.e2b_server import LocalE2B

    assert isinstance(e2b_server, LocalE2B)
    options = e2b_server.sdk_options()
    backend = open_backend("e2b", **options, interrupt_grace=3.0, stall_timeout=10.0)
    try:
        yield backend
    finally:
        await backend.aclose()


@pytest.fixture
async def e2b_live_backend() -> AsyncIterator[Backend]:
    template = os.environ.get("EAGER_RT_E2B_TEMPLATE")
    backend = open_backend("e2b", template=template) if template else open_backend("e2b")
    try:
        yield backend
    finally:
        await backend.aclose()


@pytest.fixture
async def e2b_upstream_backend(e2b_server: object) -> AsyncIterator[Backend]:
    """Sandboxes whose code runs on E2B's own code-interpreter server at ``$EAGER_RT_E2B_UPSTREAM``.

    That server keeps every context it made (one kernel each) whatever the
    control plane says, so the contexts a test made are deleted after it.
    """
    import httpx

    from tests.e2b_server import LocalE2B

    assert isinstance(e2b_server, LocalE2B)
    upstream = os.environ[UPSTREAM_VAR].rstrip("/")
    async with httpx.AsyncClient(base_url=upstream, timeout=30.0) as client:
        before = {c["id"] for c in (await client.get("/contexts")).json()}
        options = {**e2b_server.sdk_options(), "sandbox_url": upstream}
        backend = open_backend("e2b", **options, interrupt_grace=3.0, stall_timeout=10.0)
        try:
            yield backend
        finally:
            await backend.aclose()
            for context in (await client.get("/contexts")).json():
                if context["id"] not in before:
                    await client.delete(f"/contexts/{context['id']}")
