"""Eager code execution for LangChain / LangGraph: ``run_code`` runs while the model writes it.

The switch, for a prebuilt agent or a hand-built graph::

    from eager_rt.integrations.langgraph import EagerCode

    eager = EagerCode(backend="docker", tools=[search])       # search: any LangChain tool
    agent = create_react_agent(eager.wrap(ChatOpenAI(model="gpt-4.1")), [eager.tool, search])
    async with eager:                                          # sessions end with their run
        result = await agent.ainvoke({"messages": [("user", "Which region grew fastest?")]})

Where it hooks in. LangGraph runs the model node, then the tool node; eager
execution has to start while the model node is still streaming.
:meth:`EagerCode.wrap` returns :class:`EagerChatModel`, a LangChain chat model
around yours (``bind_tools``, callbacks and ``stream_mode="messages"`` behave as
before: every chunk is passed on unchanged). It always streams the provider's
response, even under ``invoke``, and feeds the ``tool_call_chunks`` of each
``run_code`` call, as they arrive, through
:func:`~eager_rt.sources.tool_json.adecode_argument` into
:func:`eager_rt.agent.arun_turn`: statements run while later ones are written.
When a statement fails, the wrapper stops reading the stream (the provider's
HTTP response is closed, so generation and billing stop; under the async API at
once, under ``invoke`` at the next chunk) and the model's message ends with the
call cut a few tokens after the failing statement. The tool node then
invokes :attr:`EagerCode.tool` as usual; for a call that was streamed it runs
nothing and returns the call's :class:`~eager_rt.agent.TurnResult` as the
``ToolMessage`` for the model's repair turn (``status="error"`` on failure, the
structured result as its ``artifact``). A call it never saw streaming (a model
that is not wrapped) is run when the tool is invoked.

The graph's other tools are host functions of the code (:mod:`eager_rt.tools`):
``tools=`` takes LangChain tools (``@tool`` functions, any ``BaseTool``), whose
calls go through the tool's own ``invoke`` (validation, callbacks), and
eager_rt tools or plain functions. ``read_only=`` names the LangChain tools that
change nothing (speculated with ``speculate=True``).

Sessions: one per conversation thread (``configurable.thread_id``) or, without
one, per graph run. Inside ``async with eager:`` (or ``with eager:``) a graph
run's session is closed when the run ends; a thread's session lives until the
block ends (a thread spans runs, and its variables with it). Outside the block,
runs without a thread share one session. :meth:`EagerCode.aclose` (the end of
the block) closes every session still open. Runs are told apart by a LangChain
callback handler that the block installs through
``langchain_core.tracers.context.register_configure_hook`` (the hook LangSmith
tracing uses): it sees each run start and the root run end.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Sequence,
)
from contextvars import ContextVar, Token
from typing import Annotated, Any, Self, cast
from uuid import UUID

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import agenerate_from_stream, generate_from_stream
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from langchain_core.runnables.config import ensure_config
from langchain_core.tools import BaseTool, InjectedToolCallId, StructuredTool
from langchain_core.tracers.context import register_configure_hook
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticUndefined

from eager_rt.agent import TurnResult, arun_turn
from eager_rt.events import Event
from eager_rt.executor import Backend
from eager_rt.integrations._eager_calls import RUN_CODE_DESCRIPTION, Scope, StreamingCall
from eager_rt.integrations._signatures import OMITTED, given, python_name
from eager_rt.sync import Portal
from eager_rt.tools import DEFAULT_TOOL_TIMEOUT, Tool, as_tools

__all__ = ["RUN_CODE_DESCRIPTION", "EagerChatModel", "EagerCode", "host_tool"]


# --------------------------------------------------------------------------- tools


def _parameters(lc_tool: BaseTool) -> list[inspect.Parameter]:
    """The tool's arguments as keyword parameters, from the schema the model sees."""
    schema = lc_tool.tool_call_schema
    params: list[inspect.Parameter] = []
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        for name, info in schema.model_fields.items():
            if info.is_required():
                default: Any = inspect.Parameter.empty
            elif info.default is PydanticUndefined:
                default = OMITTED
            else:
                default = info.default
            annotation = info.annotation if info.annotation is not None else Any
            kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
            params.append(inspect.Parameter(name, kind, default=default, annotation=annotation))
    else:  # a JSON schema: names only
        required = set(cast(dict[str, Any], schema).get("required", ()))
        for name in lc_tool.args:
            default = inspect.Parameter.empty if name in required else OMITTED
            kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
            params.append(inspect.Parameter(name, kind, default=default))
    # a required parameter may not follow one with a default
    params.sort(key=lambda p: p.default is not inspect.Parameter.empty)
    return params


def host_tool(
    lc_tool: BaseTool,
    *,
    read_only: bool = False,
    timeout: float | None = DEFAULT_TOOL_TIMEOUT,
) -> Tool:
    """A LangChain tool as an eager_rt host tool: the code calls it by name, as a function.

    Calls go through the tool's own ``invoke``/``ainvoke`` (its validation and
    callbacks); a tool that only has a coroutine gets an async stub (the code
    awaits it). Arguments the code leaves out are left to the tool's defaults;
    a pydantic model it returns reaches the code as its JSON-ready dict.
    """
    params = _parameters(lc_tool)

    def plain(value: Any) -> Any:  # the sandbox gets JSON-ready values
        return value.model_dump(mode="json") if isinstance(value, BaseModel) else value

    only_async = (
        isinstance(lc_tool, StructuredTool)
        and lc_tool.func is None
        and lc_tool.coroutine is not None
    )
    fn: Callable[..., Any]
    if only_async:

        async def call_async(**kwargs: Any) -> Any:
            return plain(await lc_tool.ainvoke(given(kwargs)))

        fn = call_async
    else:

        def call(**kwargs: Any) -> Any:
            return plain(lc_tool.invoke(given(kwargs)))

        fn = call
    name = python_name(lc_tool.name)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = lc_tool.description or None
    setattr(fn, "__signature__", inspect.Signature(params))  # noqa: B010 - what inspect reads
    fn.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not p.empty}
    return Tool(fn, name, read_only=read_only, timeout=timeout)


def _describe(tools: Iterable[Tool]) -> str:
    lines = []
    for t in tools:
        doc = t.doc.strip().splitlines()[0] if t.doc.strip() else ""
        prefix = "async " if t.is_async else ""
        lines.append(f"- {prefix}{t.name}{t.signature}" + (f": {doc}" if doc else ""))
    if not lines:
        return ""
    return "\n\nFunctions you can call from the code:\n" + "\n".join(lines)


class _CodeArgs(BaseModel):
    code: str = Field(
        default="",
        description="Python code, top-level statements in the order they should run.",
    )
    tool_call_id: Annotated[str, InjectedToolCallId]


# --------------------------------------------------------------------------- runs


class _RunTracker(BaseCallbackHandler):
    """Knows which graph run each LangChain run belongs to, and closes a run's session at its end.

    The start events are plain methods run inline; the end events are
    coroutines, so an async graph awaits the session's close before its
    ``ainvoke`` returns (a sync graph runs them on a loop of LangChain's).
    """

    run_inline = True

    def __init__(self, on_root_end: Callable[[UUID], Awaitable[None]]) -> None:
        self._parents: dict[UUID, UUID | None] = {}
        self._on_root_end = on_root_end

    def root_of(self, run_id: UUID | None) -> UUID | None:
        """The root run above ``run_id`` (None when the run was not seen)."""
        for _ in range(10_000):  # bounded: a cycle cannot happen, but never loop forever
            if run_id is None or run_id not in self._parents:
                return None
            parent = self._parents[run_id]
            if parent is None:
                return run_id
            run_id = parent
        return None

    # LangChain passes each event's own positional values (serialized, inputs / outputs,
    # error ...) first, then the run ids by keyword: one method serves the four starts,
    # one the two ends of a run

    def _started(self, *_: Any, run_id: UUID, parent_run_id: UUID | None = None, **__: Any) -> None:
        self._parents[run_id] = parent_run_id

    on_chain_start = on_chat_model_start = on_llm_start = on_tool_start = _started

    async def _finished(
        self, *_: Any, run_id: UUID, parent_run_id: UUID | None = None, **__: Any
    ) -> None:
        if parent_run_id is not None or run_id not in self._parents:
            return
        if self._parents[run_id] is not None:
            return
        for child in [r for r in self._parents if r != run_id and self.root_of(r) == run_id]:
            del self._parents[child]
        del self._parents[run_id]
        await self._on_root_end(run_id)

    on_chain_end = on_chain_error = _finished


_TRACKER: ContextVar[_RunTracker | None] = ContextVar("eager_rt_langgraph_tracker", default=None)
register_configure_hook(_TRACKER, inheritable=True)


# --------------------------------------------------------------------------- the switch


class EagerCode:
    """Eager ``run_code`` for LangChain/LangGraph: the tool, the model wrapper, the sessions.

    ``backend``: an eager_rt backend name (opened per session, with
    ``backend_options``) or a :class:`~eager_rt.executor.Backend` you own;
    ``session_options`` go to its ``session()`` (``cwd``, ``env`` ...).
    ``tools``: the graph's other tools the code may call (LangChain tools,
    eager_rt tools or plain functions); ``read_only``: names of the LangChain
    tools that change nothing. ``timeout`` bounds how long the tool waits for
    a call's result. Other keywords (``exec_timeout``, ``max_output_chars``,
    ``approve``, ``speculate``, ``hold_side_effects`` ...) go to
    :func:`eager_rt.agent.arun_turn`; ``on_event`` gets the runtime's events of
    every call, ``on_result`` each call's :class:`~eager_rt.agent.TurnResult`.
    """

    def __init__(
        self,
        backend: str | Backend = "local",
        *,
        backend_options: dict[str, Any] | None = None,
        session_options: dict[str, Any] | None = None,
        tools: Iterable[BaseTool | Tool | Callable[..., Any]] = (),
        read_only: Collection[str] = (),
        name: str = "run_code",
        description: str = RUN_CODE_DESCRIPTION,
        timeout: float | None = 600.0,
        on_event: Callable[[str, Event], None] | None = None,
        on_result: Callable[[str, TurnResult], None] | None = None,
        **turn_options: Any,
    ) -> None:
        self.backend = backend
        self.backend_options = dict(backend_options or {})
        self.session_options = dict(session_options or {})
        self.name = name
        self.argument = "code"  # the tool's one parameter (_CodeArgs)
        self.timeout = timeout
        self.on_event = on_event
        self.on_result = on_result
        self.turn_options = turn_options
        items = list(tools)
        known = {t.name for t in items if isinstance(t, BaseTool)}
        unknown = set(read_only) - known
        if unknown:
            raise ValueError(
                f"read_only names no LangChain tool given in tools=: {sorted(unknown)}"
            )
        self.host_tools: list[Tool] = list(
            as_tools(
                host_tool(t, read_only=t.name in read_only) if isinstance(t, BaseTool) else t
                for t in items
            ).values()
        )
        self.tool: BaseTool = StructuredTool.from_function(
            func=self._run_sync,
            coroutine=self._arun,
            name=name,
            description=description + _describe(self.host_tools),
            args_schema=_CodeArgs,
        )
        self._scopes: dict[object, Scope] = {}
        self._calls: dict[str, tuple[Scope, StreamingCall]] = {}
        self._tracker = _RunTracker(self._root_ended)
        self._tokens: list[Token[_RunTracker | None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._portal: Portal | None = None

    # -- wiring ----------------------------------------------------------------------

    def wrap(self, model: BaseChatModel) -> EagerChatModel:
        """``model`` with its ``run_code`` calls executed while they stream."""
        if isinstance(model, EagerChatModel):
            return model
        return EagerChatModel(chat_model=model, eager=self)

    # -- loops: sessions live on one loop (the caller's, or a portal for sync use) ----

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "this EagerCode runs its sessions on another event loop; use one EagerCode "
                "per loop, and either its async API or its sync API"
            )
        return loop

    def _sync_portal(self) -> Portal:
        if self._portal is None:
            if self._loop is not None:
                raise RuntimeError(
                    "this EagerCode runs its sessions on an event loop: use the graph's async API "
                    "(ainvoke/astream), or another EagerCode for sync use"
                )
            self._portal = Portal(name="eager_rt-langgraph")
            self._loop = self._portal.loop
        return self._portal

    # -- scopes ----------------------------------------------------------------------

    def _scope_key(self, config: RunnableConfig | None = None) -> object:
        config = ensure_config(config)
        thread = (config.get("configurable") or {}).get("thread_id")
        if thread is not None:
            return ("thread", str(thread))
        manager = config.get("callbacks")
        root = self._tracker.root_of(getattr(manager, "parent_run_id", None))
        return ("run", root) if root is not None else ("default",)

    def _scope(self, key: object) -> Scope:
        scope = self._scopes.get(key)
        if scope is None:
            scope = Scope(self.backend, self.backend_options, self.session_options)
            self._scopes[key] = scope
        return scope

    async def _root_ended(self, root: UUID) -> None:
        scope = self._scopes.pop(("run", root), None)
        if scope is None:
            return
        self._forget(scope)
        loop = self._loop
        assert loop is not None
        if asyncio.get_running_loop() is loop:
            await scope.aclose()
        else:  # a sync graph: the sessions are on the portal's loop
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(scope.aclose(), loop))

    def _forget(self, scope: Scope) -> None:
        for call_id in [k for k, (s, _) in self._calls.items() if s is scope]:
            del self._calls[call_id]

    @property
    def open_sessions(self) -> int:
        """Sessions still open (threads, runs, and the default one)."""
        return sum(1 for s in self._scopes.values() if s.opened)

    # -- calls (on the sessions' loop) -----------------------------------------------

    def _launch(self, call: StreamingCall, key: object) -> None:
        scope = self._scope(key)
        self._calls[call.call_id] = (scope, call)
        on_event = self.on_event

        def forward(event: Event) -> None:
            if on_event is not None:
                on_event(call.call_id, event)

        call.launch(
            scope,
            argument=self.argument,
            tools=self.host_tools or None,
            on_event=forward if on_event is not None else None,
            **self.turn_options,
        )

    async def _result(self, call_id: str, code: str, key: object) -> TurnResult:
        entry = self._calls.pop(call_id, None)
        if entry is not None and entry[1].task is not None:
            result = await asyncio.shield(entry[1].task)
        else:  # never seen streaming: run the code now
            scope = self._scope(key)
            async with scope.lock:
                result = await arun_turn(
                    [code], scope.session(), tools=self.host_tools or None, **self.turn_options
                )
        if self.on_result is not None:
            self.on_result(call_id, result)
        return result

    def _message(self, result: TurnResult, call_id: str) -> ToolMessage:
        return ToolMessage(
            content=result.text,
            tool_call_id=call_id,
            name=self.name,
            status="success" if result.ok else "error",
            artifact=result.data,
        )

    async def _arun(self, code: str = "", *, tool_call_id: str, config: RunnableConfig) -> Any:
        self._own_loop()
        key = self._scope_key(config)
        job = self._result(tool_call_id, code, key)
        result = await (job if self.timeout is None else asyncio.wait_for(job, self.timeout))
        return self._message(result, tool_call_id)

    def _run_sync(self, code: str = "", *, tool_call_id: str, config: RunnableConfig) -> Any:
        portal = self._sync_portal()
        key = self._scope_key(config)
        result = portal.call(self._result(tool_call_id, code, key), self.timeout)
        return self._message(result, tool_call_id)

    # -- lifetime --------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every session still open (calls still running are cancelled)."""
        if not self._close_on_portal():
            await self._close_all()
            self._loop = None

    def close(self) -> None:
        """Blocking twin of :meth:`aclose` (for graphs run with ``invoke``/``stream``)."""
        if not self._close_on_portal() and self._scopes:
            raise RuntimeError("this EagerCode's sessions are on an event loop: await aclose()")

    def _close_on_portal(self) -> bool:
        """Close the sessions of sync use, on the portal's loop, then the portal; False: none."""
        if self._portal is None:
            return False
        portal, self._portal = self._portal, None
        try:
            portal.call(self._close_all(), 120.0)
        finally:
            portal.close()
            self._loop = None
        return True

    async def _close_all(self) -> None:
        scopes, self._scopes = list(self._scopes.values()), {}
        self._calls.clear()
        errors = await asyncio.gather(*(s.aclose() for s in scopes), return_exceptions=True)
        for error in errors:
            if isinstance(error, BaseException):
                raise error

    # -- the block: the runs inside it are tracked, each run's session closed at its end

    def __enter__(self) -> Self:
        self._tokens.append(_TRACKER.set(self._tracker))
        return self

    def __exit__(self, *exc_info: object) -> None:
        _TRACKER.reset(self._tokens.pop())
        self.close()

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        _TRACKER.reset(self._tokens.pop())
        await self.aclose()


# --------------------------------------------------------------------------- the model


class _Response:
    """The ``run_code`` calls of one model response while it streams (by chunk index)."""

    def __init__(
        self,
        eager: EagerCode,
        submit: Callable[[Callable[[], None]], None],
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.eager = eager
        self.submit = submit  # runs a function on the sessions' loop, in order
        self.on_stop = on_stop  # called on that loop when a call asks to stop generation
        self.key = eager._scope_key()
        self.calls: dict[int, StreamingCall | None] = {}  # None: another tool's call

    def observe(self, chunk: ChatGenerationChunk) -> None:
        message = chunk.message
        for part in getattr(message, "tool_call_chunks", None) or ():
            index = part.get("index")
            index = len(self.calls) if index is None else index
            if index not in self.calls:
                if part.get("name") != self.eager.name or not part.get("id"):
                    self.calls[index] = None
                    continue
                call = StreamingCall(str(part["id"]))
                call.on_stop = self.on_stop
                self.calls[index] = call
                self.submit(functools.partial(self.eager._launch, call, self.key))
            call_or_none = self.calls[index]
            fragment = part.get("args") or ""
            if call_or_none is not None and fragment:
                self.submit(functools.partial(call_or_none.feed, fragment))

    @property
    def stopped(self) -> bool:
        return any(c is not None and c.stopped is not None for c in self.calls.values())

    def end(self) -> None:
        for call in self.calls.values():
            if call is not None:
                self.submit(call.close)


_DONE = object()  # the wrapped model's stream ended
_STOP = object()  # a statement failed: stop now


async def _read_ahead(
    stream: AsyncIterator[ChatGenerationChunk], queue: asyncio.Queue[object]
) -> None:
    """Pull the wrapped model's chunks into ``queue``, so a stop need not wait for one."""
    try:
        async for chunk in stream:
            queue.put_nowait(chunk)
    except Exception as exc:  # noqa: BLE001 - handed to the reader, who raises it
        queue.put_nowait(exc)
    else:
        queue.put_nowait(_DONE)
    finally:
        closer = getattr(stream, "aclose", None)
        if closer is not None:
            await closer()  # closes the provider's response (also when cancelled)


class EagerChatModel(BaseChatModel):
    """A chat model whose ``run_code`` calls run while they stream (see :class:`EagerCode`).

    Every chunk of the wrapped model is passed on unchanged; the wrapper only
    reads the code tool's argument fragments, and stops reading (closing the
    provider's stream) once a statement of the code has failed.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    chat_model: BaseChatModel
    eager: Any = Field(exclude=True)

    @property
    def _llm_type(self) -> str:
        return f"eager_rt-{self.chat_model._llm_type}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return dict(self.chat_model._identifying_params)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """The wrapped model's ``bind_tools``, bound to this wrapper."""
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        bound = self.chat_model.bind_tools(tools, **kwargs)
        if not isinstance(bound, RunnableBinding) or bound.bound is not self.chat_model:
            raise TypeError(
                f"{type(self.chat_model).__name__}.bind_tools() did not return a binding of the "
                "model itself; wrap the model before binding tools"
            )
        return self.bind(**bound.kwargs)

    # -- streaming: the model's chunks, passed on while run_code calls run --------------

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        eager = cast(EagerCode, self.eager)
        eager._own_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        response = _Response(eager, lambda fn: fn(), on_stop=lambda: queue.put_nowait(_STOP))
        stream = self.chat_model._astream(messages, stop=stop, run_manager=run_manager, **kwargs)
        # one task owns the provider's stream; a failing statement ends the wait for the
        # next chunk at once, however long the model takes to send it
        reader = asyncio.get_running_loop().create_task(_read_ahead(stream, queue))
        try:
            while True:
                item = await queue.get()
                if item is _DONE or item is _STOP:
                    break
                if isinstance(item, BaseException):
                    raise item
                chunk = cast(ChatGenerationChunk, item)
                response.observe(chunk)
                yield chunk
                if response.stopped:
                    break  # a statement failed: no more tokens
        finally:
            try:
                if not reader.done():
                    reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            finally:
                response.end()

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        eager = cast(EagerCode, self.eager)
        loop = eager._sync_portal().loop

        def submit(fn: Callable[[], None]) -> None:
            loop.call_soon_threadsafe(fn)

        response = _Response(eager, submit)
        stream = self.chat_model._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
        try:
            for chunk in stream:
                response.observe(chunk)
                yield chunk
                if response.stopped:
                    break
        finally:
            try:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
            finally:
                response.end()

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await agenerate_from_stream(
            self._astream(messages, stop=stop, run_manager=run_manager, **kwargs)
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(
            self._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
        )
