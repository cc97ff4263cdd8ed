"""The supervisor's ``kill`` for the Jupyter and E2B sessions, whose kill is their restart.

A Jupyter kernel or an E2B context cannot be killed apart from being
restarted: ``jupyter_client`` and a gateway kill the kernel when they restart
it, ``restart_code_context`` ends the context's kernel. So when the
:class:`~eager_rt.backends._recovery.Supervisor` asks for a kill, these
sessions stop following the execution (its ``done``), and the forced restart
that always follows a kill (``Supervisor.recover(..., forced=True)``) ends the
code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["stop_following"]


def stop_following(done: asyncio.Future[Any]) -> Callable[[], Awaitable[None]]:
    """A kill action: cancel ``done`` (the task following the execution) and wait for it."""

    async def kill() -> None:
        done.cancel()
        await asyncio.gather(done, return_exceptions=True)

    return kill
