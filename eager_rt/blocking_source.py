"""Pull a plain (blocking) iterable from async code without ever blocking the loop.

A sync token source may block in ``next()`` forever (a stalled HTTP read, a
generator waiting on an event). Python cannot kill a thread, so the source is
pulled on one daemon thread of its own: a blocked source then delays nothing
(closing gives up after a bounded wait and says so) and never keeps the
interpreter from exiting, which a ``ThreadPoolExecutor`` thread would, since
those are joined at exit. The thread is an :class:`~concurrent.futures.Executor`,
so work on it goes through ``loop.run_in_executor`` like any other (a virtual
clock sees it).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

__all__ = ["BlockingIterator", "DaemonThreadExecutor"]

T = TypeVar("T")
_STOP = None


class DaemonThreadExecutor(Executor):
    """One daemon thread running submitted calls in order."""

    def __init__(self, name: str) -> None:
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        self._work.put((future, lambda: fn(*args, **kwargs)))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._work.put(_STOP)
        if wait:
            self._thread.join()

    def _serve(self) -> None:
        while (item := self._work.get()) is not _STOP:
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
                future.set_exception(exc)


class BlockingIterator:
    """``await next()`` / ``await aclose()`` over a sync iterator, one call at a time."""

    def __init__(self, iterator: Iterator[str], name: str = "eager_rt-source") -> None:
        self._iter = iterator
        self._thread = DaemonThreadExecutor(name)
        self._inflight: asyncio.Future[Any] | None = None
        #: set when close gave up on a source blocked in next() or close()
        self.abandoned: str | None = None

    def _submit(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().run_in_executor(self._thread, fn)
        self._inflight = future
        return future

    async def next(self) -> str | None:
        """The next item, or None at the end."""
        item: str | None = await asyncio.shield(self._submit(lambda: next(self._iter, None)))
        return item

    async def aclose(self, timeout: float) -> None:
        """Close the source on its own thread, waiting at most ``timeout`` for each step.

        While the calling task is being cancelled (a run's deadline passed),
        a ``next()`` still blocked in the source is not waited for at all.
        """
        try:
            inflight = self._inflight
            task = asyncio.current_task()
            if inflight is not None and not inflight.done():
                if task is not None and task.cancelling() > 0:
                    self.abandoned = "the source was blocked in next() when the run was cancelled"
                    return
                try:
                    await asyncio.wait_for(asyncio.shield(inflight), timeout)
                except TimeoutError:
                    self.abandoned = f"the source did not return from next() within {timeout} s"
                    return
                except Exception:  # noqa: BLE001 - the source's own error was reported by next()
                    pass
            closer: Callable[[], object] | None = getattr(self._iter, "close", None)
            if closer is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(self._submit(closer)), timeout)
                except TimeoutError:
                    self.abandoned = f"the source did not return from close() within {timeout} s"
        finally:
            # a source that returned lets its thread end now (joined: it has
            # nothing left to do); one that never returns holds only a daemon
            self._thread.shutdown(wait=self.abandoned is None)
