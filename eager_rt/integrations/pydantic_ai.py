"""Eager execution inside pydantic-ai: a ``run_code`` tool that runs while the model writes it.

::

    from eager_rt.integrations.pydantic_ai import EagerCodeMode

    agent = Agent(model, capabilities=[EagerCodeMode(backend="docker")])

:class:`EagerCodeMode` is a pydantic-ai capability (the framework's own
extension point, as ``pydantic_ai_harness.CodeMode`` is). It gives the model
one ``run_code`` tool and:

* **runs the code eagerly**: its ``wrap_run_event_stream`` hook watches the
  run's event stream; the ``run_code`` call's argument deltas
  (``PartStartEvent`` / ``PartDeltaEvent`` with a ``ToolCallPartDelta``) are
  decoded as they arrive (:mod:`eager_rt.sources.tool_json`) and fed to
  :func:`eager_rt.agent.arun_turn`, so each statement runs on the eager_rt
  backend (full CPython: local worker, Docker, Podman, Jupyter, E2B) while the
  model is still writing the next;
* **stops the model at an error**: when a statement fails, the model's
  stream is cancelled (``StreamedResponse.cancel()``, reached through a
  ``WrapperModel`` from ``get_wrapper_model``: the HTTP response is closed)
  and the hook stops consuming it; the cut ``run_code`` call is recorded with
  the code the model had written up to the cut (``after_model_request``), so
  the history stays valid;
* **answers the call with the repair turn**: what ran, its output, the
  failing statement and traceback, what did not run, the side effects already
  done and what the session still holds (text for the model; the structured
  :class:`~eager_rt.agent.TurnResult` data in ``ToolReturn.metadata``);
* **lets the code call the agent's other tools** (``tools=``): each becomes an
  async function in the session (``await get_weather(city="Paris")``) whose
  calls go through pydantic-ai's own ``ToolManager`` (validation, retries,
  hooks); tools named in ``read_only=`` (or whose definition has
  ``metadata={"read_only": True}``) are speculated while the model writes;
* **keeps one session per agent run**: every ``run_code`` call of the run, in
  every step, shares it; it starts with the run (``prestart``) and is closed
  when the run ends (``wrap_run``), also on error or cancellation.

Only the model's text crosses from the stream into the session. pydantic-ai
validates, retries and records tool calls as usual; the one change is that a
``run_code`` call cut at a failure, or whose arguments are not valid JSON, is
recorded with the code that was run as its arguments, and answered with the
run's report.
"""

from __future__ import annotations

import ast
import asyncio
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import TypeAdapter
from pydantic_ai import ToolDenied, ToolReturn
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.exceptions import ModelAPIError
from pydantic_ai.messages import (
    AgentStreamEvent,
    ModelResponse,
    PartDeltaEvent,
    PartEndEvent,
    PartStartEvent,
    ToolCallPart,
    ToolCallPartDelta,
)
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tool_manager import ToolManager
from pydantic_ai.tools import AgentDepsT, RunContext, ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool
from pydantic_core import to_jsonable_python
from typing_extensions import TypedDict

from eager_rt.agent import RUN_CODE_INTRO, STREAMABLE_CODE_PROMPT, TurnResult, arun_turn
from eager_rt.events import Event, Interrupted
from eager_rt.executor import Backend, Session
from eager_rt.integrations._eager_calls import Scope, StreamingCall
from eager_rt.integrations._pydantic_ai_tools import bridge, render
from eager_rt.integrations._signatures import python_name
from eager_rt.sources.boundary import is_boundary
from eager_rt.sources.tool_json import adecode_argument
from eager_rt.tools import DEFAULT_TOOL_TIMEOUT, Approval, Tool

__all__ = ["EagerCodeMode", "ToolSelector"]

#: which of the agent's tools the code may call: all, these names, or a predicate
ToolSelector = Literal["all"] | Sequence[str] | Callable[[ToolDefinition], bool]


class _RunCodeArgs(TypedDict):
    code: str


_ARGS = TypeAdapter(_RunCodeArgs)
_SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "string", "description": "Python code to run."}},
    "required": ["code"],
    "additionalProperties": False,
}


@dataclass
class EagerCodeMode(AbstractCapability[AgentDepsT]):
    """A ``run_code`` tool executed eagerly by eager_rt, on any backend.

    ``backend``: a registered backend's name (``"local"``, ``"docker"`` ...,
    opened with ``backend_options`` and closed with the run) or a
    :class:`~eager_rt.executor.Backend` you own (a session of it per run).
    ``tools``: which of the agent's tools move into the code (the rest stay
    ordinary tool calls). ``exec_timeout`` bounds each execution,
    ``turn_timeout`` the wait for a call's run once the model has finished it.
    """

    backend: str | Backend = "local"
    backend_options: dict[str, Any] = field(default_factory=dict)
    tools: ToolSelector = "all"
    read_only: Collection[str] = ()
    speculate: bool = True
    approve: Approval | None = None
    hold_side_effects: bool = False
    #: start the session when the run starts (hidden behind the model's first tokens),
    #: not when the first ``run_code`` call begins; False for costly sandboxes
    #: and agents that rarely run code
    prestart: bool = True
    start_timeout: float | None = 120.0
    exec_timeout: float | None = 120.0
    turn_timeout: float | None = 600.0
    tool_timeout: float | None = DEFAULT_TOOL_TIMEOUT
    max_output_chars: int = 8000
    tool_name: str = "run_code"
    description: str | None = None  #: replaces the tool description's opening text
    #: eager_rt's events for every run (statements detected, executed, tool calls ...)
    on_eager_event: Callable[[Event], None] | None = None

    _run: _RunState | None = field(default=None, init=False, repr=False)

    async def for_run(self, ctx: RunContext[AgentDepsT]) -> EagerCodeMode[AgentDepsT]:
        """A copy holding this run's state; its session opens on first use."""
        clone = replace(self)
        clone._run = _RunState(self)
        return clone

    async def wrap_run(self, ctx: RunContext[AgentDepsT], *, handler: Any) -> Any:
        """Close the run's session (and backend, if opened here) however the run ends."""
        if self._run is not None and self.prestart:
            self._run.prestart()
        try:
            return await handler()
        finally:
            if self._run is not None:
                await self._run.aclose()

    def get_wrapper_toolset(
        self, toolset: AbstractToolset[AgentDepsT]
    ) -> AbstractToolset[AgentDepsT] | None:
        return _EagerToolset(wrapped=toolset, capability=self)

    def get_wrapper_model(self, model: Model) -> Model | None:
        """Keep hold of each model stream of the run, to cancel it the moment a statement fails."""
        return None if self._run is None else _StoppableModel(model, self._run)

    async def wrap_run_event_stream(
        self,
        ctx: RunContext[AgentDepsT],
        *,
        stream: AsyncIterable[AgentStreamEvent],
    ) -> AsyncIterator[AgentStreamEvent]:
        """Feed ``run_code`` argument deltas to eager_rt; end the stream when a statement fails."""
        run = self._run
        if run is None:  # not inside a run of an agent (no for_run): nothing to run on
            async for event in stream:
                yield event
            return
        watch = _StreamWatch(run, ctx)
        try:
            async for event in stream:
                watch.observe(event)
                if watch.stopped:
                    return  # pydantic-ai closes the model's stream on its way out
                yield event
        except ModelAPIError:
            # cancelling a provider's stream mid-read can surface as a connection error
            # (the SDK wraps the transport's); when we cancelled it, the response ends here
            if not watch.stopped:
                raise
        finally:
            watch.end()
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                await closer()

    async def after_model_request(
        self,
        ctx: RunContext[AgentDepsT],
        *,
        request_context: Any,
        response: ModelResponse,
    ) -> ModelResponse:
        """Give a cut or malformed ``run_code`` call the arguments of the code that was run.

        A call cut at a failure keeps the code written up to the cut. Malformed
        arguments (broken JSON, cut by a token limit) would make pydantic-ai ask
        for a retry that does not say which statements already ran eagerly; with
        the code as arguments the call is answered by the run's own report.
        """
        run = self._run
        if run is None:
            return response
        parts = list(response.parts)
        changed = False
        for i, part in enumerate(parts):
            if isinstance(part, ToolCallPart) and part.tool_name == self.tool_name:
                call = run.calls.get(part.tool_call_id)
                if call is None or call.task is None:
                    continue
                if not call.cut and not _valid_arguments(part):
                    call.close()  # the response is over: let the run take what it can
                    await asyncio.wait([call.task], timeout=self.turn_timeout)
                elif not call.cut:
                    continue
                parts[i] = replace(part, args=json.dumps({"code": call.code}))
                changed = True
        return replace(response, parts=parts) if changed else response


class _CodeCall(StreamingCall):
    """One streamed ``run_code`` call: its argument fragments, its eager run, the code it ran."""

    def __init__(self, call_id: str) -> None:
        super().__init__(call_id)
        self.code = ""  #: the code text handed to the runtime so far
        self.cut = False  #: generation was stopped at a failure

    def feed(self, fragment: object) -> None:
        """A fragment of the arguments: text, or (a call's start) a dict of them."""
        if isinstance(fragment, dict):
            fragment = json.dumps(fragment)
        if isinstance(fragment, str):
            super().feed(fragment)

    async def pieces(self) -> AsyncIterator[str]:
        """The code, decoded from the fragments as they arrive, for the runtime."""
        decoded = adecode_argument(self.fragments(), "code")
        try:
            async for piece in decoded:
                if not is_boundary(piece):
                    self.code += piece
                yield piece
        finally:
            await decoded.aclose()


class _RunState:
    """One agent run: its session, its ``run_code`` calls, the tools the code may call."""

    def __init__(self, options: EagerCodeMode[Any]) -> None:
        self.options = options
        self.calls: dict[str, _CodeCall] = {}
        self.scope = Scope(options.backend, options.backend_options)
        self.wrapped: AbstractToolset[Any] | None = None
        self.code_tools: dict[str, ToolsetTool[Any]] = {}  # by the agent's tool name
        self.live: list[StreamedResponse] = []  # the model streams being read now
        self.cancels: set[asyncio.Task[None]] = set()
        self.starting: asyncio.Task[None] | None = None
        self.closed = False

    def prestart(self) -> None:
        """Start the session in the background; the first run waits for it."""
        session = self.session()
        self.starting = asyncio.get_running_loop().create_task(
            session.start(self.options.start_timeout), name="eager_rt-session-start"
        )

    def stop_streams(self) -> None:
        """Cancel the model's live streams (pydantic-ai's ``StreamedResponse.cancel``).

        A provider's HTTP stream is closed at once, so no more tokens are
        generated or read; the run goes on with the response received so far.
        """
        for stream in list(self.live):
            task = asyncio.get_running_loop().create_task(stream.cancel())
            self.cancels.add(task)
            task.add_done_callback(self.cancels.discard)

    def session(self) -> Session:
        """The run's session, made on first use (the runtime starts it while the model writes)."""
        return self.scope.session()

    def start(self, tool_call_id: str, ctx: RunContext[Any]) -> _CodeCall:
        """A call whose fragments will be fed; its run starts now and waits for its code."""
        if self.closed:
            raise RuntimeError("the agent run is over: its session is closed")
        call = _CodeCall(tool_call_id)
        self.calls[tool_call_id] = call
        call.task = asyncio.get_running_loop().create_task(
            self._run_call(call, ctx), name=f"eager_rt-run_code-{tool_call_id}"
        )
        return call

    def rename(self, call: _CodeCall, tool_call_id: str) -> None:
        if call.call_id != tool_call_id:
            self.calls.pop(call.call_id, None)
            call.call_id = tool_call_id
            self.calls[tool_call_id] = call

    async def _run_call(self, call: _CodeCall, ctx: RunContext[Any]) -> TurnResult:
        opts = self.options
        tools = self._host_tools(ctx, call.call_id)
        speculable = [t.name for t in tools if t.read_only] if opts.speculate else []
        user_on_event = opts.on_eager_event

        def on_event(event: Event) -> None:
            if isinstance(event, Interrupted):
                call.cut = True
                self.stop_streams()
            if user_on_event is not None:
                user_on_event(event)

        async with self.scope.lock:  # one execution at a time on the session
            if self.starting is not None:
                await self.starting  # a failed start fails this call, as the runtime's would
            turn = await arun_turn(
                call.pieces(),
                self.session(),
                tools=tools or None,
                speculate=speculable or False,
                approve=opts.approve,
                hold_side_effects=opts.hold_side_effects and bool(tools),
                exec_timeout=opts.exec_timeout,
                max_output_chars=opts.max_output_chars,
                on_event=on_event,
            )
        return _with_session_state(turn)

    def _host_tools(self, ctx: RunContext[Any], parent_id: str) -> list[Tool]:
        """The agent's selected tools as eager_rt tools calling back through pydantic-ai."""
        if not self.code_tools or self.wrapped is None:
            return []
        parent = ctx.tool_manager
        manager = ToolManager(
            toolset=self.wrapped,
            root_capability=parent.root_capability if parent is not None else None,
            ctx=replace(ctx, tool_call_id=parent_id, tool_name=self.options.tool_name),
            tools=dict(self.code_tools),
        )
        counter = iter(range(1, 1 << 62))

        async def dispatch(name: str, arguments: dict[str, Any]) -> Any:
            part = ToolCallPart(
                tool_name=name, args=arguments, tool_call_id=f"{parent_id}-{next(counter)}"
            )
            # a tool needing approval reaches here only once eager_rt's approve= allowed it
            approved = self.code_tools[name].tool_def.kind == "unapproved"
            result = await manager.handle_call(
                part, approved=approved, wrap_validation_errors=False
            )
            if isinstance(result, ToolReturn):
                result = result.return_value
            elif isinstance(result, ToolDenied):
                raise PermissionError(f"the call of {name} was denied: {result.message}")
            return to_jsonable_python(result)

        return [
            bridge(t.tool_def, dispatch, read_only=self._read_only(t.tool_def),
                   timeout=self.options.tool_timeout)
            for t in self.code_tools.values()
        ]  # fmt: skip

    def _read_only(self, tool_def: ToolDefinition) -> bool:
        meta = tool_def.metadata or {}
        return tool_def.name in self.options.read_only or meta.get("read_only") is True

    async def result(self, tool_call_id: str, code: str, ctx: RunContext[Any]) -> TurnResult | str:
        """The run of a call: the one streamed, or (never streamed) one started now.

        Past ``turn_timeout`` the run is cancelled (the statement running is
        interrupted) and the model is told so, in place of a report.
        """
        call = self.calls.get(tool_call_id)
        if call is None or call.task is None:
            call = self.start(tool_call_id, ctx)
            call.feed(json.dumps({"code": code}))
            call.close()
        call.close()  # its stream is over by the time pydantic-ai calls the tool
        assert call.task is not None
        limit = self.options.turn_timeout
        done, _ = await asyncio.wait([call.task], timeout=limit)
        if done:
            return call.task.result()
        call.task.cancel()
        await asyncio.gather(call.task, return_exceptions=True)
        return (
            f"The code did not finish within {limit:g} s and was stopped. Statements that "
            "had finished keep their effects in the session; the one running was interrupted."
        )

    async def aclose(self) -> None:
        """Cancel what still runs, then close the session and the backend opened here."""
        self.closed = True
        # every call's run, finished ones too: a result never asked for (arguments
        # pydantic-ai rejected) is collected here rather than reported as lost
        tasks: list[asyncio.Task[Any]] = [c.task for c in self.calls.values() if c.task]
        for c in self.calls.values():
            c.close()
        for task in tasks:
            task.cancel()  # a no-op for a finished one
        tasks.extend(self.cancels)
        if self.starting is not None:
            self.starting.cancel()  # a no-op once it is done; its outcome is gathered below
            tasks.append(self.starting)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.scope.aclose()


class _StoppableModel(WrapperModel):
    """The run's model, unchanged, except that its open streams are known to the run."""

    def __init__(self, wrapped: Model, run: _RunState) -> None:
        super().__init__(wrapped)
        self.eager_run = run

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[Any],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        async with self.wrapped.request_stream(
            messages, model_settings, model_request_parameters, run_context
        ) as stream:
            live = self.eager_run.live
            live.append(stream)
            try:
                yield stream
            finally:
                live[:] = [s for s in live if s is not stream]


class _StreamWatch:
    """One model response's events: which parts are ``run_code`` calls, fed as they stream."""

    def __init__(self, run: _RunState, ctx: RunContext[Any]) -> None:
        self.run = run
        self.ctx = ctx
        self.name = run.options.tool_name
        self.by_index: dict[int, _CodeCall] = {}

    @property
    def stopped(self) -> bool:
        return any(call.cut for call in self.by_index.values())

    def observe(self, event: AgentStreamEvent) -> None:
        if isinstance(event, PartStartEvent):
            part = event.part
            if isinstance(part, ToolCallPart) and part.tool_name == self.name:
                call = self.run.start(part.tool_call_id, self.ctx)
                self.by_index[event.index] = call
                call.feed(part.args)
        elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, ToolCallPartDelta):
            delta_call = self.by_index.get(event.index)
            if delta_call is not None:
                call = delta_call
                if event.delta.tool_call_id:
                    self.run.rename(call, event.delta.tool_call_id)
                call.feed(event.delta.args_delta)
        elif isinstance(event, PartEndEvent):
            ended = self.by_index.get(event.index)
            if ended is not None and isinstance(event.part, ToolCallPart):
                self.run.rename(ended, event.part.tool_call_id)
                ended.close()

    def end(self) -> None:
        """The response is over (or was cut): no call of it gets more fragments."""
        for call in self.by_index.values():
            call.close()


@dataclass
class _EagerToolset(WrapperToolset[AgentDepsT]):
    """The agent's toolset with the selected tools moved behind ``run_code``."""

    capability: EagerCodeMode[AgentDepsT] | None = None

    def _selected(self, tool_def: ToolDefinition) -> bool:
        if tool_def.kind not in ("function", "unapproved"):
            return False  # external (deferred) tools are answered by the caller, not the code
        chosen = self.options.tools
        if chosen == "all":
            return True
        if callable(chosen):
            return bool(chosen(tool_def))
        return tool_def.name in chosen

    @property
    def options(self) -> EagerCodeMode[AgentDepsT]:
        assert self.capability is not None
        return self.capability

    async def get_tools(self, ctx: RunContext[AgentDepsT]) -> dict[str, ToolsetTool[AgentDepsT]]:
        name = self.options.tool_name
        tools = await self.wrapped.get_tools(ctx)
        if name in tools:
            raise ValueError(f"the agent already has a tool named {name!r}; set tool_name=")
        native = {k: t for k, t in tools.items() if not self._selected(t.tool_def)}
        moved = {k: t for k, t in tools.items() if k not in native}
        names = [python_name(k) for k in moved]
        if len(set(names)) != len(names):
            raise ValueError(f"two tools get the same Python name in the code: {sorted(names)}")
        run = self.options._run
        if run is not None:
            run.wrapped = self.wrapped
            run.code_tools = moved
        native[name] = ToolsetTool(
            toolset=self,
            tool_def=ToolDefinition(
                name=name,
                description=self._description(moved),
                parameters_json_schema=_SCHEMA,
                metadata={"code_arg_name": "code", "code_arg_language": "python"},
            ),
            max_retries=1,
            args_validator=_ARGS.validator,  # type: ignore[arg-type]
        )
        return native

    def _description(self, moved: dict[str, ToolsetTool[AgentDepsT]]) -> str:
        text = (self.options.description or RUN_CODE_INTRO) + "\n\n" + STREAMABLE_CODE_PROMPT
        if not moved:
            return text

        def noop(_name: str, _args: dict[str, Any]) -> Any:
            raise RuntimeError("a description's stub is rendered, never called")

        stubs = "\n\n".join(
            render(bridge(t.tool_def, noop, read_only=False), t.tool_def) for t in moved.values()
        )
        return (
            f"{text}\nThese async functions are defined in the session; call them with "
            "`await` (top-level `await` works; `await asyncio.gather(...)` runs calls at once). "
            "A failed call raises ToolError.\n\n"
            f"```python\n{stubs}\n```"
        )

    async def call_tool(
        self,
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[AgentDepsT],
        tool: ToolsetTool[AgentDepsT],
    ) -> Any:
        if name != self.options.tool_name or tool.toolset is not self:
            return await self.wrapped.call_tool(name, tool_args, ctx, tool)
        run = self.options._run
        if run is None:
            raise RuntimeError(f"{name} is only available inside an agent run")
        turn = await run.result(ctx.tool_call_id or name, str(tool_args["code"]), ctx)
        if isinstance(turn, str):
            return ToolReturn(return_value=turn, metadata={"status": "turn_timeout"})
        return ToolReturn(return_value=turn.text, metadata=turn.data)


def _valid_arguments(part: ToolCallPart) -> bool:
    try:
        return isinstance(part.args_as_dict(raise_if_invalid=True).get("code"), str)
    except ValueError:
        return False


# -- the session's state in the tool result ----------------------------------------------


def _defined_names(code: str) -> list[str]:
    """Names the top-level statements of ``code`` bind (assignments, defs, imports)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.extend((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
        else:
            names.extend(_stored(node))
    return list(dict.fromkeys(n for n in names if not n.startswith("_")))


_OWN_SCOPE = (
    ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Lambda,
    ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
)  # fmt: skip


def _stored(node: ast.AST) -> list[str]:
    """Names assigned by ``node`` in the module's scope (comprehensions have their own)."""
    if isinstance(node, ast.Name):
        return [node.id] if isinstance(node.ctx, ast.Store) else []
    if isinstance(node, _OWN_SCOPE):
        return []
    return [name for child in ast.iter_child_nodes(node) for name in _stored(child)]


def _with_session_state(turn: TurnResult) -> TurnResult:
    """Tell the model what the session still holds after a failure, so it does not redo it."""
    if turn.ok or turn.run is None or turn.run.error is None or turn.run.error.state_lost:
        return turn
    names = _defined_names(turn.run.error.code_before)
    if not names:
        return turn
    shown = ", ".join(names[:40]) + (" ..." if len(names) > 40 else "")
    turn.text += (
        "\n\nThe session keeps what the code that ran defined "
        f"({shown}); reuse it instead of running that code again."
    )
    turn.data["session_names"] = names
    return turn
