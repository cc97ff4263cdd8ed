"""Bounded by default, the same way on every backend: a wall time and an output cap per execution.

Both are session options (``exec_timeout``, ``max_output``) with defaults in
``backends/_limits.py``; here they are set small so the bound shows quickly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from eager_rt.backends._limits import DEFAULT_EXEC_TIMEOUT, DEFAULT_MAX_OUTPUT, dropped_notice

from eager_rt.executor import Backend, Session, Status

pytestmark = pytest.mark.anyio


@pytest.fixture
async def bounded(backend: Backend) -> AsyncIterator[Session]:
    s = backend.session(exec_timeout=2.0, max_output=4000)
    await s.start(timeout=180)
    try:
        yield s
    finally:
        await s.close()


def test_the_defaults_are_on() -> None:
    assert DEFAULT_EXEC_TIMEOUT == 300.0
    assert DEFAULT_MAX_OUTPUT == 10 * 2**20


async def test_an_execution_without_a_timeout_gets_the_session_bound(bounded: Session) -> None:
    result = await bounded.execute("import time\nwhile True:\n    time.sleep(0.05)\n")
    assert result.status is Status.TIMEOUT
    after = await bounded.execute("print('alive')", timeout=60)
    assert after.status is Status.OK and after.stdout == "alive\n"


async def test_output_past_the_cap_is_dropped_with_a_notice(bounded: Session) -> None:
    result = await bounded.execute("for i in range(2000):\n    print('x' * 99)\n", timeout=120)
    assert result.status is Status.OK
    text = "".join(o.text for o in result.outputs if o.kind in ("stdout", "stderr"))
    kept = text.replace(dropped_notice(2000 * 100 - 4000), "")
    assert dropped_notice(2000 * 100 - 4000) in text
    assert len(kept.encode()) <= 4000
    assert kept.startswith("x" * 99 + "\n")
    again = await bounded.execute("print('fresh budget')", timeout=60)
    assert again.stdout == "fresh budget\n"
