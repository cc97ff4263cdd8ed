"""The local subprocess backend needs nothing but this interpreter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from eager_rt.executor import Backend
from eager_rt.registry import get_backend

BACKEND = "local"
VARIANTS = {"local": "local_backend"}


@pytest.fixture
async def local_backend() -> AsyncIterator[Backend]:
    backend = get_backend("local")()
    try:
        yield backend
    finally:
        await backend.aclose()
