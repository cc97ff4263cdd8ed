"""The default bounds a kernel backend keeps (issue 17, finding 1), checked on one session.

The Jupyter and E2B tests make their sessions their own way, then hand them
here unstarted: an output flood is cut at ``max_output`` with a notice, and
``exec_timeout`` bounds an execution that was given no timeout, state kept.
Each check starts the session and closes it, whatever happens.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from eager_rt.backends._limits import dropped_notice

from eager_rt.executor import Output, Session, Status

#: ``max_output`` of the session given to :func:`check_an_output_flood_is_capped`
FLOOD_CAP = 10_000
#: ``exec_timeout`` of the session given to :func:`check_the_default_time_bound`
TIME_BOUND = 1.0


@contextlib.asynccontextmanager
async def _started(session: Session) -> AsyncIterator[Session]:
    try:
        await session.start(timeout=120)
        yield session
    finally:
        await session.close()


async def check_an_output_flood_is_capped(unstarted: Session) -> None:
    """2 MB printed: the first ``FLOOD_CAP`` characters kept, a notice says the rest, streamed."""
    async with _started(unstarted) as session:
        seen: list[Output] = []
        code = "kept = 1\nfor i in range(2000):\n    print('x' * 999)\n"
        result = await session.execute(code, timeout=120, on_output=seen.append)
        assert result.status is Status.OK, result
        assert result.outputs[-1] == Output("stdout", text=dropped_notice(2_000_000 - FLOOD_CAP))
        assert result.stdout == ("x" * 999 + "\n") * 10 + dropped_notice(1_990_000)
        assert seen == result.outputs  # the notice is streamed too
        after = await session.execute("print(kept)", timeout=60)
        assert after.stdout == "1\n"  # a fresh budget, and the state kept


async def check_the_default_time_bound(unstarted: Session) -> None:
    """An execute without a timeout stops after ``TIME_BOUND`` s, and the state is kept."""
    async with _started(unstarted) as session:
        await session.execute("kept = 'yes'", timeout=60)
        result = await session.execute("import time\ntime.sleep(60)\n")
        assert result.status is Status.TIMEOUT, result
        assert "timeout of 1 s" in result.detail
        assert not result.state_lost
        assert (await session.execute("print(kept)", timeout=60)).stdout == "yes\n"
