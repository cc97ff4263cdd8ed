"""The worker's channel stays whole when SIGINT lands anywhere in its bookkeeping.

A KeyboardInterrupt raised inside ``Condition.__enter__``, after the lock was
taken, leaves the lock held for good: the next wait for a tool reply then
hangs (seen under load, as an interrupt of an awaited tool call that never
ended). These tests run the channel in this process, with a SIGINT handler
like the worker's, and raise SIGINT exactly where that happened: as each
``with`` on the channel's condition has just taken the lock, one point after
another. Whatever the point, the call ends (with the interrupt, or with its
reply), the lock is free, no reader flag is left set, and the next call works.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eager_rt.backends import _protocol as protocol
from eager_rt.backends import _worker

ENTER = threading.Condition.__enter__.__code__


class BoundedLock:
    """A lock whose blocking acquire fails the test after a while instead of hanging it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking and timeout < 0:
            assert self._lock.acquire(timeout=10), "the channel's lock was left held"
            return True
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(_worker, "protocol", protocol)  # bound by the worker's main()
    worker_r, host_w = os.pipe()
    host_r, worker_w = os.pipe()
    channel = _worker._Channel(worker_r, worker_w)
    channel._cond = threading.Condition(BoundedLock())  # type: ignore[arg-type]
    channel.host_w = host_w  # type: ignore[attr-defined]

    def on_sigint(signum: int, frame: types.FrameType | None) -> None:
        if not channel.hold.defer():  # as the worker's handler, while code runs
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield channel
    finally:
        signal.signal(signal.SIGINT, previous)
        for fd in (worker_r, host_w, host_r, worker_w):
            os.close(fd)


def reply_to(channel: Any, call: int) -> Callable[[], None]:
    """``send`` for a call: the host's reply is written back at once."""
    frame = protocol.encode({"op": protocol.Op.REPLY, "call": call, "ok": True, "value": call})

    def send() -> None:
        os.write(channel.host_w, frame)

    return send


def sigint_at(point: int) -> tuple[Callable[..., Any], list[int]]:
    """A tracer that raises SIGINT as the ``point``-th ``with`` on a condition returns."""
    seen = [0]

    def tracer(frame: types.FrameType, event: str, arg: Any) -> Any:
        if frame.f_code is ENTER:
            if event == "return":
                seen[0] += 1
                if seen[0] == point:
                    signal.raise_signal(signal.SIGINT)
            return tracer
        return None

    return tracer, seen


def assert_whole(channel: Any) -> None:
    assert channel._cond.acquire(blocking=False), "the channel's lock was left held"
    channel._cond.release()
    assert not channel._reading, "a reader flag was left set"
    assert channel.hold.depth == 0 and not channel.hold.pending


def sync_call(channel: Any, call: int) -> Any:
    return channel.await_reply(call, reply_to(channel, call))


def async_call(channel: Any, call: int) -> Any:
    async def main() -> Any:
        return await channel.await_reply_async(call, reply_to(channel, call))

    return asyncio.run(main())


@pytest.mark.parametrize("call", [sync_call, async_call], ids=["sync", "async"])
def test_a_sigint_at_any_lock_taking_leaves_the_channel_whole(
    channel: Any, call: Callable[[Any, int], Any]
) -> None:
    counter, counted = sigint_at(-1)  # count the points of one undisturbed call
    sys.settrace(counter)
    try:
        assert call(channel, 1)["value"] == 1
    finally:
        sys.settrace(None)
    points = counted[0]
    assert points >= 4  # the call does take the condition's lock several times
    outcomes = []
    for point in range(1, points + 1):
        tracer, _ = sigint_at(point)
        sys.settrace(tracer)
        try:
            outcome = call(channel, point + 1)["value"]
        except KeyboardInterrupt:
            outcome = "interrupted"
        finally:
            sys.settrace(None)
        outcomes.append(outcome)
        assert_whole(channel)
        channel.inbox.clear()
        assert call(channel, 1000 + point)["value"] == 1000 + point  # it still works
    # (every point ends the call one way or the other; most with the interrupt)
    assert "interrupted" in outcomes
