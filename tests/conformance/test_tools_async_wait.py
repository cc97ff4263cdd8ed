"""Async tool calls whose reply wakes the awaiting event loop directly.

On the worker backends an async stub's call waits on the code's own event
loop, which watches the channel while a call is pending; a thread that is
reading the channel at that moment (a sync call from a thread) files the
reply for it instead. These tests mix those readers and cancel calls
mid-wait: every call must get its own reply, a cancelled call's late reply
must be dropped, and nothing may hang. Nothing here asserts on durations.
"""

from __future__ import annotations

import asyncio

import pytest

from eager_rt.executor import Session, Status
from tests.conformance.test_tools import add, define

pytestmark = pytest.mark.anyio


async def slow(n: int) -> int:
    """Answer after a while, so the call is still waiting when the code moves on."""
    await asyncio.sleep(0.3)
    return n


async def test_a_cancelled_async_call_drops_its_reply_and_the_next_call_gets_its_own(
    session: Session,
) -> None:
    host = await define(session, slow, add)
    code = (
        "import asyncio\n"
        "try:\n"
        "    await asyncio.wait_for(slow(7), 0.01)\n"
        "except TimeoutError:\n"
        "    print('cancelled')\n"
        "await asyncio.sleep(0.6)\n"  # the cancelled call's reply arrives meanwhile
        "print(await slow(8), add(1, 2))\n"
    )
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "cancelled\n8 3\n"


async def test_async_calls_on_the_loop_and_sync_calls_from_threads_together(
    session: Session,
) -> None:
    host = await define(session, slow, add)
    code = (
        "import asyncio\n"
        "async def both(i):\n"
        "    return await slow(i), await asyncio.to_thread(add, i, 100)\n"
        "print(await asyncio.gather(*(both(i) for i in range(4))))\n"
    )
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == str([(i, i + 100) for i in range(4)]) + "\n"
    assert len(host.calls) == 8


async def test_async_calls_from_a_second_event_loop_in_a_thread(session: Session) -> None:
    host = await define(session, slow)
    code = (
        "import asyncio, threading\n"
        "out = []\n"
        "async def two(base):\n"
        "    return await asyncio.gather(slow(base), slow(base + 1))\n"
        "t = threading.Thread(target=lambda: out.append(asyncio.run(two(10))))\n"
        "t.start()\n"
        "mine = await two(20)\n"
        "await asyncio.to_thread(t.join)\n"
        "print(mine, out)\n"
    )
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "[20, 21] [[10, 11]]\n"
