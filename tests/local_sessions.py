"""Started local-backend sessions for the local backend's own tests, each closed at the end."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from eager_rt.backends.local import LocalBackend, LocalSession

#: ``await make(**session_options)``: a started session, closed when its test ends
MakeSession = Callable[..., Awaitable[LocalSession]]


@contextlib.asynccontextmanager
async def local_sessions() -> AsyncIterator[MakeSession]:
    """A factory of started sessions; every one it made is closed on exit, even a failed test's."""
    made: list[LocalSession] = []

    async def make(**options: Any) -> LocalSession:
        session = LocalBackend().session(**options)
        made.append(session)
        await session.start(timeout=60)
        return session

    try:
        yield make
    finally:
        for session in made:
            await session.close()
