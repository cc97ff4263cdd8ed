"""The Docker backend on a real engine, with the image ``scripts/setup-docker.sh`` builds.

Skips (or fails, with ``EAGER_RT_REQUIRE_DOCKER=1`` as in CI) when the docker
SDK is missing, no engine answers, or the image ``eager-rt-python:local`` is
not there.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator

import pytest

from eager_rt.executor import Backend
from eager_rt.registry import get_backend

from . import unavailable

BACKEND = "docker"
VARIANTS = {"docker": "docker_backend"}

REQUIRE_VAR = "EAGER_RT_REQUIRE_DOCKER"
TEST_IMAGE = "eager-rt-python:local"
SETUP_HINT = "run scripts/setup-docker.sh as root to start an engine and build it"

_checked: list[str | None] = []  # the verdict, once per test run


def docker_problem() -> str | None:
    """Why Docker tests cannot run here, or None when they can (checked once)."""
    if not _checked:
        _checked.append(_find_problem())
    return _checked[0]


def _find_problem() -> str | None:
    if importlib.util.find_spec("docker") is None:
        return "the docker SDK is not installed (pip install 'eager_rt[docker]')"
    from eager_rt.backends._docker_engine import Engine

    from eager_rt.executor import BackendError

    try:
        engine = Engine(timeout=10)
    except BackendError as exc:
        return f"no Docker engine answers ({exc}); {SETUP_HINT}"
    try:
        engine.ping()
        if not engine.has_image(TEST_IMAGE):
            return f"the image {TEST_IMAGE} is missing; {SETUP_HINT}"
    except Exception as exc:  # noqa: BLE001 - any engine failure means "unavailable"
        return f"the Docker engine does not work: {exc!r}"
    finally:
        engine.close()
    return None


def require_docker() -> None:
    problem = docker_problem()
    if problem is not None:
        unavailable("Docker", problem, REQUIRE_VAR)


@pytest.fixture
async def docker_backend() -> AsyncIterator[Backend]:
    require_docker()
    backend = get_backend("docker")(image=TEST_IMAGE)
    try:
        yield backend
    finally:
        await backend.aclose()
