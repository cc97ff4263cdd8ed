"""The supervisor's deadline watch: one timer reused across executions, never wrong.

Every execution now has a deadline (``exec_timeout`` by default), so the
supervisor keeps one watch in place instead of a timer per execution; these
tests pin down that a reused watch still fires for the deadline in force, and
only for it.
"""

from __future__ import annotations

import asyncio

import pytest
from eager_rt.backends._recovery import Escalation, RecoveryPolicy, Supervisor


class Code:
    """A stand-in for running code: ends when interrupted, records the interrupt."""

    def __init__(self) -> None:
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.interrupted = False

    async def interrupt(self) -> None:
        self.interrupted = True
        if not self.done.done():
            self.done.set_result(None)

    async def kill(self) -> None:
        raise AssertionError("the code stops at the interrupt; nothing is killed")

    def end_after(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(seconds, lambda: self.done.done() or self.done.set_result(None))


async def supervise(sup: Supervisor, code: Code, timeout: float | None) -> Escalation:
    return await sup.supervise(
        code.done, timeout=timeout, interrupt=code.interrupt, kill=code.kill
    )


def supervisor() -> Supervisor:
    return Supervisor(RecoveryPolicy(interrupt_grace=5.0), unit="worker")


@pytest.mark.anyio
async def test_a_short_deadline_after_a_long_one_fires_on_time() -> None:
    sup = supervisor()
    quick = Code()
    quick.end_after(0)
    assert await supervise(sup, quick, 3600) is Escalation.FINISHED  # leaves a watch at +1 h
    stuck = Code()  # ends only when interrupted: the test would hang if the watch were not moved
    assert await asyncio.wait_for(supervise(sup, stuck, 0.05), 60) is Escalation.INTERRUPTED
    assert stuck.interrupted


@pytest.mark.anyio
async def test_a_watch_left_by_an_ended_execution_does_not_fire_a_later_one() -> None:
    sup = supervisor()
    quick = Code()
    quick.end_after(0)
    assert await supervise(sup, quick, 0.05) is Escalation.FINISHED  # watch at +0.05 s
    slow = Code()
    slow.end_after(0.3)  # runs past the old watch, with no deadline of its own
    assert await supervise(sup, slow, None) is Escalation.FINISHED
    assert not slow.interrupted


@pytest.mark.anyio
async def test_a_later_deadline_is_kept_when_the_early_watch_fires() -> None:
    sup = supervisor()
    quick = Code()
    quick.end_after(0)
    await supervise(sup, quick, 0.05)
    longer = Code()
    longer.end_after(0.3)  # its deadline, 60 s, is far off when the old watch fires
    assert await supervise(sup, longer, 60) is Escalation.FINISHED
    assert not longer.interrupted


def test_the_watch_follows_the_session_to_a_new_loop() -> None:
    sup = supervisor()

    async def first() -> None:
        quick = Code()
        quick.end_after(0)
        await supervise(sup, quick, 3600)  # a watch on this loop, which then closes

    async def second() -> bool:
        stuck = Code()
        await asyncio.wait_for(supervise(sup, stuck, 0.05), 60)
        return stuck.interrupted

    asyncio.run(first())
    assert asyncio.run(second())
