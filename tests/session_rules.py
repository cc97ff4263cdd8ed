"""A rule of the session contract the conformance suite does not check yet, written once.

``close()`` ends an ``execute`` that is running (status ``died``, the state
gone); the Jupyter and E2B test modules call it on their own sessions. Its
place is ``tests/conformance``, for every backend.
"""

from __future__ import annotations

import asyncio

from eager_rt.executor import Session, Status
from tests.conformance.test_session import run_until_running


async def close_ends_a_running_execute(session: Session) -> None:
    """close() does not leave a running execute waiting for an interpreter that is gone."""
    code = "import time\nprint('go', flush=True)\ntime.sleep(60)\n"
    task, _ = await run_until_running(session, code, "go")
    await session.close()
    result = await asyncio.wait_for(task, 30)
    assert result.status is Status.DIED, result
    assert result.state_lost and "closed" in result.detail
    assert result.stdout == "go\n"
