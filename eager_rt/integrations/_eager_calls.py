"""Framework-neutral parts of the eager ``run_code`` adapters: a streaming call and its session.

An adapter watches the model's stream for a code tool call, feeds the call's
JSON argument fragments to a :class:`StreamingCall` as they arrive, and later
answers the framework's tool invocation with the call's
:class:`~eager_rt.agent.TurnResult`. The call runs in a :class:`Scope`: one
eager_rt session (a graph run's, a thread's ...) whose calls execute in turn.
Nothing here imports a framework.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from eager_rt.agent import RUN_CODE_DESCRIPTION, TurnResult, arun_turn
from eager_rt.events import Event, Interrupted
from eager_rt.executor import Backend, Session
from eager_rt.registry import open_backend
from eager_rt.sources.tool_json import adecode_argument
from eager_rt.tools import Tool

__all__ = ["RUN_CODE_DESCRIPTION", "Scope", "StreamingCall"]

_END = object()  # closes a call's fragment queue


class StreamingCall:
    """One code tool call while it streams: JSON fragments in, an eager run's result out.

    ``feed`` and ``close`` are called on the loop that runs the call (an adapter
    on another thread submits them with ``loop.call_soon_threadsafe``).
    ``stopped`` is set, with the reason, when the run asks generation to stop
    (a statement failed); the adapter then stops reading the model's stream.
    ``on_stop`` (called on the call's loop, once) lets it stop at once rather
    than at the model's next chunk.
    """

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self._fragments: asyncio.Queue[object] = asyncio.Queue()
        self.task: asyncio.Task[TurnResult] | None = None
        self.closed = False
        self.stopped: str | None = None
        self.on_stop: Callable[[], None] | None = None

    def feed(self, fragment: str) -> None:
        if fragment and not self.closed:
            self._fragments.put_nowait(fragment)

    def close(self) -> None:
        """The model finished this call's arguments (or its stream was cut)."""
        if not self.closed:
            self.closed = True
            self._fragments.put_nowait(_END)

    async def fragments(self) -> AsyncIterator[str]:
        """The argument fragments as they are fed, until :meth:`close`."""
        while True:
            item = await self._fragments.get()
            if item is _END:
                return
            assert isinstance(item, str)
            yield item

    def _watch(self, forward: Callable[[Event], None] | None) -> Callable[[Event], None]:
        def watch(event: Event) -> None:
            if isinstance(event, Interrupted) and self.stopped is None:
                self.stopped = event.reason
                if self.on_stop is not None:
                    self.on_stop()
            if forward is not None:
                forward(event)

        return watch

    def launch(
        self,
        scope: Scope,
        *,
        argument: str,
        tools: Iterable[Tool | Callable[..., Any]] | None,
        on_event: Callable[[Event], None] | None = None,
        **turn_options: Any,
    ) -> asyncio.Task[TurnResult]:
        """Start the eager run of this call in ``scope`` (on the running loop)."""

        async def run() -> TurnResult:
            async with scope.lock:  # one execution stream per session: calls run in turn
                source = adecode_argument(self.fragments(), argument, strict=False)
                return await arun_turn(
                    source,
                    scope.session(),
                    tools=tools,
                    on_event=self._watch(on_event),
                    **turn_options,
                )

        self.task = asyncio.get_running_loop().create_task(run(), name=f"eager_rt-{self.call_id}")
        scope.tasks.add(self.task)
        self.task.add_done_callback(scope.tasks.discard)
        return self.task


class Scope:
    """One eager_rt session and the calls that run in it, closed together.

    ``backend``: a backend name (opened here with ``options``, closed with the
    scope) or a :class:`~eager_rt.executor.Backend` the caller owns;
    ``session_options`` go to its ``session()`` (``cwd``, ``env`` ...).
    """

    def __init__(
        self,
        backend: str | Backend,
        options: dict[str, Any] | None = None,
        session_options: dict[str, Any] | None = None,
    ) -> None:
        self._backend_spec = backend
        self._options = dict(options or {})
        self._session_options = dict(session_options or {})
        self._backend: Backend | None = None
        self._session: Session | None = None
        self.lock = asyncio.Lock()
        self.tasks: set[asyncio.Task[TurnResult]] = set()

    def session(self) -> Session:
        """The scope's session; the runtime starts it, overlapping the model's stream."""
        if self._session is None:
            if isinstance(self._backend_spec, Backend):
                backend = self._backend_spec
            else:
                backend = self._backend = open_backend(self._backend_spec, **self._options)
            self._session = backend.session(**self._session_options)
        return self._session

    @property
    def opened(self) -> bool:
        return self._session is not None

    async def aclose(self) -> None:
        """Cancel the calls still running, close the session and a backend opened here."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()
        session, self._session = self._session, None
        backend, self._backend = self._backend, None
        try:
            if session is not None:
                await session.close()
        finally:
            if backend is not None:
                await backend.aclose()
