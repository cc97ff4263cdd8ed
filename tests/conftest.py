"""Shared fixtures: the backend matrix of the conformance suite."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Iterator
from types import ModuleType

import pytest

pytest.register_assert_rewrite("tests.provision")

from eager_rt.executor import Backend, Session  # noqa: E402
from eager_rt.registry import get_backend  # noqa: E402
from eager_rt.sync import SyncSession  # noqa: E402
from tests import provision  # noqa: E402


def _provision_modules() -> list[ModuleType]:
    names = sorted(m.name for m in pkgutil.iter_modules(provision.__path__))
    return [importlib.import_module(f"{provision.__name__}.{name}") for name in names]


PROVISION_MODULES = _provision_modules()
pytest_plugins = [m.__name__ for m in PROVISION_MODULES]

#: variant name -> fixture yielding a ready Backend
BACKEND_VARIANTS: dict[str, str] = {
    variant: fixture for m in PROVISION_MODULES for variant, fixture in m.VARIANTS.items()
}
PROVISIONED_BACKENDS: set[str] = {m.BACKEND for m in PROVISION_MODULES}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=sorted(BACKEND_VARIANTS))
def backend(request: pytest.FixtureRequest) -> Backend:
    """Every provisioned backend variant in turn."""
    result = request.getfixturevalue(BACKEND_VARIANTS[request.param])
    assert isinstance(result, Backend)
    return result


@pytest.fixture
async def session(backend: Backend) -> AsyncIterator[Session]:
    """A started session of the current backend, closed after the test."""
    s = backend.session()
    await s.start(timeout=120)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def local_session() -> AsyncIterator[Session]:
    """A started session of the default local backend, for tests that are not about backends."""
    backend = get_backend("local")()
    session = backend.session()
    await session.start(timeout=60)
    try:
        yield session
    finally:
        await session.close()
        await backend.aclose()


@pytest.fixture
def sync_session() -> Iterator[SyncSession]:
    """The same, through the blocking facade."""
    session = SyncSession(get_backend("local")().session())
    session.start(timeout=60)
    try:
        yield session
    finally:
        session.close()
