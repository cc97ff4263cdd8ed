"""The blocking facade over the async API.

Every public coroutine of eager_rt has a blocking twin built here. A
:class:`Portal` owns one event loop in one daemon thread; blocking calls submit
coroutines to it and wait with a timeout. Closing the portal cancels whatever
still runs and joins the thread, so nothing outlives the object that owned it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, Self, TypeVar

from eager_rt.closing import Closing
from eager_rt.executor import ExecResult, OutputCallback, Session

__all__ = ["Portal", "SyncSession"]

T = TypeVar("T")


class Portal(Closing):
    """An event loop running in a thread of its own, for calling async code from sync code."""

    def __init__(self, name: str = "eager_rt-portal") -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        self._closed = False

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        self._loop.run_forever()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the portal's loop and wait for it.

        On timeout the coroutine is cancelled (and awaited, so its cleanup runs)
        before :class:`TimeoutError` is raised.
        """
        if self._closed:
            coro.close()
            raise RuntimeError("portal is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("blocking call made from inside the portal's own loop")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            try:
                future.result(5.0)
            except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError):
                pass
            except Exception:  # noqa: BLE001 - cleanup failure must not mask the timeout
                pass
            raise TimeoutError(f"call did not finish within {timeout} s") from None

    def close(self) -> None:
        """Cancel every task still on the loop, stop it and join the thread."""
        if self._closed:
            return
        self._closed = True

        async def _shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._loop.shutdown_asyncgens()

        if self._thread.is_alive():
            fut = asyncio.run_coroutine_threadsafe(_shutdown(), self._loop)
            try:
                fut.result(10.0)
            except concurrent.futures.TimeoutError:
                pass  # a task ignored cancellation: stop the loop anyway, mask nothing
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(10.0)
        self._loop.close()


class SyncSession(Closing):
    """A :class:`Session` driven from blocking code. Every call takes a timeout.

    ``on_output`` callbacks run on the portal's thread.
    """

    def __init__(self, session: Session, portal: Portal | None = None) -> None:
        self.session = session
        self._own_portal = portal is None
        self.portal = portal or Portal()

    @property
    def alive(self) -> bool:
        return self.session.alive

    def start(self, timeout: float | None = 60.0) -> None:
        self.portal.call(self.session.start(timeout), None if timeout is None else timeout + 5)

    def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecResult:
        # the session enforces ``timeout`` itself and reports it as a result;
        # the portal's wait is only a backstop against a backend that hangs
        backstop = None if timeout is None else timeout + 60.0
        return self.portal.call(
            self.session.execute(code, timeout=timeout, on_output=on_output), backstop
        )

    def interrupt(self, timeout: float | None = 10.0) -> None:
        self.portal.call(self.session.interrupt(), timeout)

    def restart(self, timeout: float | None = 60.0) -> None:
        self.portal.call(self.session.restart(timeout), None if timeout is None else timeout + 5)

    def close(self, timeout: float | None = 30.0) -> None:
        try:
            if not self.portal._closed:
                self.portal.call(self.session.close(), timeout)
        finally:
            if self._own_portal:
                self.portal.close()

    def __enter__(self) -> Self:
        self.start()
        return self
