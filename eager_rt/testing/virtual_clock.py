"""A virtual clock for asyncio: time jumps to the next timer whenever nothing is ready.

Part of :mod:`eager_rt.testing`. Everything in a run reads time from
:func:`eager_rt.clock.now`, the running loop's clock, so on a
:class:`VirtualClockLoop` a scripted 30-second execution takes no real time
and every timestamp is an exact number.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Executor
from typing import Any, TypeVar, TypeVarTuple

__all__ = ["VirtualClockLoop", "resolve", "run_virtual", "sleep_until"]

T = TypeVar("T")
_Ts = TypeVarTuple("_Ts")


class _AutojumpSelector(selectors.BaseSelector):
    """The loop's selector: instead of sleeping until the next timer, move the clock there."""

    def __init__(self, loop: VirtualClockLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout <= 0:
            # something is ready (poll), or no timer at all: wait for a thread's callback
            return self._real.select(timeout)
        if self._loop.threads_busy:
            return self._real.select(None)  # the clock stands still until the thread is done
        ready = self._real.select(0)
        if not ready:
            self._loop._jump(timeout)
        return ready

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is virtual and jumps to the next timer when idle.

    Like trio's ``MockClock`` with autojump: callbacks run as on any loop, but
    whenever nothing is ready the clock moves straight to the earliest
    scheduled timer instead of waiting for it. ``asyncio.sleep(3600)`` returns
    at once with ``loop.time()`` exactly 3600 s later. The clock starts at
    ``start`` and only moves forward.

    Never await real I/O on it. Work in ``run_in_executor`` threads is
    awaited in real time while the virtual clock stands still.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._virtual_now = float(start)
        self._threads_busy = 0
        super().__init__(_AutojumpSelector(self))

    def time(self) -> float:
        return self._virtual_now

    @property
    def threads_busy(self) -> int:
        """``run_in_executor`` calls not finished yet (the clock waits for them)."""
        return self._threads_busy

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[*_Ts], T], *args: *_Ts
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self._threads_busy += 1
        future.add_done_callback(self._thread_done)
        return future

    def _thread_done(self, _: asyncio.Future[Any]) -> None:
        self._threads_busy -= 1

    def _jump(self, timeout: float) -> None:
        """Nothing is ready: move to the earliest timer (the loop would sleep ``timeout``)."""
        scheduled: list[asyncio.TimerHandle] | None = getattr(self, "_scheduled", None)
        # the heap's head is the next timer; reading its own time keeps the clock exact
        target = scheduled[0].when() if scheduled else self._virtual_now + timeout
        if target > self._virtual_now:
            self._virtual_now = target


def run_virtual(main: Coroutine[Any, Any, T], *, start: float = 0.0) -> T:
    """Run ``main`` on a fresh :class:`VirtualClockLoop`, like :func:`asyncio.run`."""
    with asyncio.Runner(loop_factory=lambda: VirtualClockLoop(start)) as runner:
        return runner.run(main)


async def sleep_until(when: float) -> None:
    """Sleep until ``when`` on the loop's clock, landing on it exactly on a virtual clock."""
    loop = asyncio.get_running_loop()
    if when <= loop.time():
        return
    woken: asyncio.Future[None] = loop.create_future()
    handle = loop.call_at(when, resolve, woken, None)
    try:
        await woken
    finally:
        handle.cancel()


def resolve(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)
