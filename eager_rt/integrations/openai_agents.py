"""Eager code execution for the OpenAI Agents SDK (``openai-agents``, import name ``agents``).

The switch, for an agent that already has its model and tools::

    from eager_rt.integrations.openai_agents import EagerCode

    eager = EagerCode(backend="docker")
    agent = eager.agent(agent)  # + a run_code tool, executed while the model writes it
    result = Runner.run_streamed(agent, "Which region grew fastest?")

Where it hooks in: the SDK's public :class:`agents.models.interface.Model`.
:meth:`EagerCode.agent` clones the agent with a :class:`EagerModel` around its
model and a ``run_code`` function tool added. Every model call goes through
``stream_response`` (also under ``Runner.run``: ``get_response`` streams too),
whose events are the Responses stream events for both the Responses and the
Chat Completions model. The wrapper passes each event on unchanged (so
``RawResponsesStreamEvent`` consumers see what they always saw) and feeds the
``response.function_call_arguments.delta`` fragments of each ``run_code`` call
through :func:`~eager_rt.sources.tool_json.adecode_argument` into
:func:`eager_rt.agent.arun_turn`: statements run while later ones are written.

When a statement fails, the wrapper stops reading the model's stream (the SDK
model closes its HTTP response, so generation and billing stop) and ends the
response itself with ``response.output_item.done`` / ``response.completed``
events holding the ``run_code`` call cut after the failing statement. The
runner then invokes ``run_code`` as usual; the tool does not run anything, it
waits for the eager run of that call and returns its
:class:`~eager_rt.agent.TurnResult` text (what ran, the output, the error,
what did not run, the side effects), the model's repair turn.

The agent's other function tools are host tools of the code
(:mod:`eager_rt.tools`): a ``@function_tool`` function is called directly
(its own signature, docstring and validation); other function tools through
their ``on_invoke_tool``. ``read_only=`` names the ones that may be speculated.

Sessions: one per agent run, started when the first ``run_code`` call of the
run begins streaming and closed when the run ends. The run is told by the SDK's
model-run owner and its end by the model's run-end cleanup call, the hooks the
SDK gives run-scoped model resources (``agents.models._run_context``,
``Model._cleanup_on_run_end``; private, pinned by the tests).
:meth:`EagerCode.aclose` (or ``async with EagerCode(...)``) closes whatever is
still open, whatever the SDK does.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from agents import Agent, FunctionTool, RunContextWrapper
from agents.items import ModelResponse, TResponseStreamEvent
from agents.models.interface import Model
from agents.models.multi_provider import MultiProvider
from agents.tool_context import ToolContext
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemDoneEvent,
)

from eager_rt.agent import TurnResult, arun_turn
from eager_rt.closing import AsyncClosing
from eager_rt.events import Event, Interrupted
from eager_rt.executor import Backend
from eager_rt.integrations._eager_calls import RUN_CODE_DESCRIPTION, Scope, StreamingCall
from eager_rt.integrations._signatures import OMITTED
from eager_rt.tools import DEFAULT_TOOL_TIMEOUT, Tool, as_tools, tool

__all__ = ["RUN_CODE_DESCRIPTION", "EagerCode", "EagerModel", "host_tools"]


_END = object()  # ends the model's event inbox


@dataclass(frozen=True)
class _Failed:
    """The model's stream raised ``error``."""

    error: Exception


def _run_owner() -> object | None:
    """The SDK's handle on the run that is calling the model (None outside a run)."""
    try:
        from agents.models._run_context import get_model_run_owner
    except ImportError:  # pragma: no cover - the SDK moved it; the tests pin it
        return None
    return get_model_run_owner()


# --------------------------------------------------------------------------- host tools


def host_tools(
    agent_tools: Iterable[Any],
    *,
    read_only: Collection[str] = (),
    exclude: Collection[str] = (),
) -> list[Tool]:
    """The agent's function tools as eager_rt host tools, by the name the model knows.

    A ``@function_tool`` function that takes no run context is called directly
    (``FunctionTool.__wrapped__``); any other function tool through its
    ``on_invoke_tool`` with a signature read from its JSON schema. Tools that
    are not function tools (hosted tools, handoffs) are left out.
    """
    found: list[Tool] = []
    for t in agent_tools:
        if not isinstance(t, FunctionTool) or t.name in exclude:
            continue
        fn = _direct_callable(t)
        if fn is None:
            fn = _invoker(t)
        timeout = t.timeout_seconds or DEFAULT_TOOL_TIMEOUT
        found.append(tool(fn, name=t.name, read_only=t.name in read_only, timeout=timeout))
    return found


def _direct_callable(t: FunctionTool) -> Callable[..., Any] | None:
    try:
        fn = t.__wrapped__
    except AttributeError:
        return None
    params = list(inspect.signature(fn).parameters.values())
    if not params:
        return fn
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: go through the SDK
        return None
    first = typing.get_origin(hints.get(params[0].name)) or hints.get(params[0].name)
    if isinstance(first, type) and issubclass(first, RunContextWrapper):
        return None  # wants the run context: the SDK's invoker supplies one
    return fn


_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}


def _invoker(t: FunctionTool) -> Callable[..., Awaitable[Any]]:
    """``t`` called through the SDK, as a function with the parameters of its schema."""
    schema = t.params_json_schema
    properties: dict[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    params = []
    for name, prop in properties.items():
        kind = prop.get("type") if isinstance(prop, dict) else None
        annotation = _JSON_TYPES.get(kind, Any) if isinstance(kind, str) else Any
        # left out unless given: the stub sends "default", the host then passes nothing
        default = inspect.Parameter.empty if name in required else prop.get("default", OMITTED)
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )
        )
    counter = itertools.count(1)

    async def invoke(**kwargs: Any) -> Any:
        arguments = json.dumps(kwargs)
        ctx: ToolContext[Any] = ToolContext(
            context=None,
            tool_name=t.name,
            tool_call_id=f"eager_rt_{next(counter)}",
            tool_arguments=arguments,
        )
        return await t.on_invoke_tool(ctx, arguments)

    invoke.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    invoke.__name__ = t.name
    invoke.__doc__ = t.description
    return invoke


class _Written(str):
    """A string annotation, shown as it was written (not quoted)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def _as_written(annotation: Any) -> Any:
    return _Written(annotation) if isinstance(annotation, str) else annotation


def _signature_line(t: Tool) -> str:
    """``def name(params) -> result: first line of the doc`` (``async def``: await it)."""
    sig = t.signature
    shown = sig.replace(
        parameters=[
            p.replace(annotation=_as_written(p.annotation)) for p in sig.parameters.values()
        ],
        return_annotation=_as_written(sig.return_annotation),
    )
    head = f"{'async def' if t.is_async else 'def'} {t.name}{shown}"
    summary = t.doc.strip().splitlines()[0] if t.doc.strip() else ""
    return f"- {head}" + (f": {summary}" if summary else "")


# --------------------------------------------------------------------------- one run


@dataclass(eq=False)
class _Item:
    """A ``run_code`` item of the model's response, and its eager run."""

    output_index: int
    item_id: str | None
    call: StreamingCall


# --------------------------------------------------------------------------- the model


class EagerModel(Model):
    """A model that runs its ``run_code`` calls while it streams them (see the module doc)."""

    def __init__(self, inner: Model, eager: EagerCode, tools: Iterable[Tool] = ()) -> None:
        self.inner = inner
        self.eager = eager
        self.tools = list(tools)  #: the host tools its code may call

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """Streams, so that ``Runner.run`` executes eagerly too."""
        final: Response | None = None
        async for event in self.stream_response(*args, **kwargs):
            if isinstance(event, ResponseCompletedEvent):
                final = event.response
        if final is None:
            from agents.exceptions import ModelBehaviorError

            raise ModelBehaviorError("the model's stream ended without a completed response")
        return ModelResponse(
            output=final.output, usage=_usage(final), response_id=final.id, request_id=None
        )

    async def stream_response(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        owner = _run_owner()
        reader = _Reader(self.eager, self.eager._scope(owner), self.tools)
        # the SDK model's generator keeps tracing state in context variables: it lives
        # its whole life (start, cancel, close) in this one task
        pump = asyncio.get_running_loop().create_task(
            reader.pump(self.inner.stream_response(*args, **kwargs)),
            name="eager_rt-openai-agents-stream",
        )
        try:
            while (event := await reader.next_event()) is not None:
                reader.read(event)
                yield event
            if reader.stopped is not None:
                pump.cancel()  # the SDK model closes its HTTP response on the way out
                for event in await reader.cut_response():
                    yield event
        finally:
            reader.finish()
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)

    async def _cleanup_on_run_end(self, owner: object) -> None:
        """The SDK's run-end call: close that run's session."""
        await self.eager._close_scope(owner)
        await self.inner._cleanup_on_run_end(owner)

    async def close(self) -> None:
        await self.inner.close()

    def get_retry_advice(self, request: Any) -> Any:
        return self.inner.get_retry_advice(request)


def _usage(response: Response) -> Usage:
    u = response.usage
    if u is None:
        return Usage(requests=1)
    return Usage(
        requests=1,
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        total_tokens=u.total_tokens,
        input_tokens_details=u.input_tokens_details,
        output_tokens_details=u.output_tokens_details,
    )


class _Reader:
    """Reads one model stream's events: starts, feeds and, on a failure, cuts ``run_code`` calls."""

    def __init__(self, eager: EagerCode, scope: Scope, tools: list[Tool]) -> None:
        self.eager = eager
        self.scope = scope
        self.tools = tools
        self.calls: dict[int, _Item] = {}  # by output index (Chat Completions ids are fake)
        self.done_items: list[Any] = []
        self.response: Response | None = None
        self.sequence = 0
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.stop = asyncio.Event()
        self.stopped: _Item | None = None

    async def pump(self, stream: AsyncIterator[Any]) -> None:
        """Move the model's events to the inbox (closing the stream however it ends)."""
        try:
            async for event in stream:
                self.inbox.put_nowait(event)
        except Exception as exc:  # noqa: BLE001 - handed to the reader, which raises it
            self.inbox.put_nowait(_Failed(exc))
        else:
            self.inbox.put_nowait(_END)
        finally:
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                await closer()

    async def next_event(self) -> Any | None:
        """The next event, or None at the end or once a failure stopped the stream."""
        item = None if self.stop.is_set() else await self.inbox.get()
        if item is None or item is _END or self.stop.is_set():
            return None
        if isinstance(item, _Failed):
            raise item.error
        return item

    def read(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        self.sequence = max(self.sequence, getattr(event, "sequence_number", 0) or 0)
        if kind in ("response.created", "response.in_progress"):
            self.response = event.response
        elif kind == "response.output_item.added":
            item = event.item
            if getattr(item, "type", None) == "function_call" and item.name == self.eager.name:
                self._start(event.output_index, item)
        elif kind == "response.function_call_arguments.delta":
            entry = self.calls.get(event.output_index)
            if entry is not None:
                entry.call.feed(event.delta)
        elif kind == "response.function_call_arguments.done":
            entry = self.calls.get(event.output_index)
            if entry is not None:
                entry.call.close()
        elif kind == "response.output_item.done":
            self.done_items.append(event.item)
            entry = self.calls.get(event.output_index)
            if entry is not None:
                entry.call.close()
        elif kind == "response.completed":
            self.finish()

    def _start(self, index: int, item: Any) -> None:
        entry = _Item(index, getattr(item, "id", None), StreamingCall(item.call_id))
        self.calls[index] = entry
        task = entry.call.launch(
            self.scope,
            argument="code",
            tools=self.tools or None,
            on_event=lambda event: self._watch(entry, event),
            **self.eager.turn_options,
        )
        task.add_done_callback(lambda done: self.eager._report(item.call_id, done))
        self.eager._pending[item.call_id] = (self.scope, task)
        if item.arguments:
            entry.call.feed(item.arguments)

    def _watch(self, entry: _Item, event: Event) -> None:
        if isinstance(event, Interrupted) and self.stopped is None:
            self.stopped = entry
            self.stop.set()
            self.inbox.put_nowait(_END)  # wakes the reader

    def finish(self) -> None:
        """The stream is over, cut or failed: no call gets more arguments.

        A call whose JSON is incomplete fails to decode, so its cut-off last
        statement never runs.
        """
        for entry in self.calls.values():
            entry.call.close()

    async def cut_response(self) -> list[Any]:
        """The events that end the response after the call whose code failed."""
        cut = self.stopped
        assert cut is not None and cut.call.task is not None
        self.finish()
        for other in self.calls.values():  # started after it: never shown to the runner
            if other.output_index > cut.output_index and other.call.task is not None:
                other.call.task.cancel()
        result = await asyncio.shield(cut.call.task)
        item = ResponseFunctionToolCall(
            id=cut.item_id,
            call_id=cut.call.call_id,
            name=self.eager.name,
            arguments=json.dumps({"code": _code_through_failure(result)}),
            type="function_call",
            status="completed",
        )
        self.sequence += 1
        done = ResponseOutputItemDoneEvent(
            item=item,
            output_index=cut.output_index,
            sequence_number=self.sequence,
            type="response.output_item.done",
        )
        base = self.response or _empty_response()
        # the items the model finished, then the cut call; "incomplete": generation was stopped
        response = base.model_copy(
            update={"output": [*self.done_items, item], "status": "incomplete"}
        )
        self.sequence += 1
        completed = ResponseCompletedEvent(
            response=response, sequence_number=self.sequence, type="response.completed"
        )
        return [done, completed]


def _code_through_failure(result: TurnResult) -> str:
    """The call's code up to the end of the statement that failed (what the model is shown)."""
    run = result.run
    if run is None:
        return str(result.data.get("code_ran", ""))
    if run.error is None or not run.error.not_run:
        return run.code
    return run.code[: len(run.code) - len(run.error.not_run)]


def _empty_response() -> Response:
    return Response.model_validate(
        {
            "id": "resp_eager_rt",
            "object": "response",
            "created_at": 0,
            "model": "unknown",
            "output": [],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
        }
    )


# --------------------------------------------------------------------------- the switch


class EagerCode(AsyncClosing):
    """Eager ``run_code`` for agents: the tool, the model wrapper, a session per run.

    ``backend``: an eager_rt backend name (opened per run, with
    ``backend_options``) or a :class:`~eager_rt.executor.Backend` you own.
    ``tools``: extra host tools (eager_rt tools or functions) beside the
    agent's own function tools; ``read_only``: names of the agent's tools that
    change nothing (speculated with ``speculate=True``). Other keywords
    (``exec_timeout``, ``max_output_chars``, ``approve``, ``speculate``,
    ``hold_side_effects`` ...) go to :func:`eager_rt.agent.arun_turn`.
    ``on_result`` gets each call's :class:`~eager_rt.agent.TurnResult`.
    """

    def __init__(
        self,
        backend: str | Backend = "local",
        *,
        backend_options: dict[str, Any] | None = None,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        read_only: Collection[str] = (),
        agent_tools: bool = True,
        name: str = "run_code",
        description: str = RUN_CODE_DESCRIPTION,
        on_result: Callable[[str, TurnResult], None] | None = None,
        **turn_options: Any,
    ) -> None:
        self.backend = backend
        self.backend_options = dict(backend_options or {})
        self.extra_tools = list(tools)
        self.read_only = frozenset(read_only)
        self.agent_tools = agent_tools
        self.name = name
        self.on_result = on_result
        self.turn_options = turn_options
        self.description = description
        self.tool = self.code_tool()  #: ``run_code`` with the ``tools=`` functions listed
        self._scopes: dict[object, Scope] = {}
        self._pending: dict[str, tuple[Scope, asyncio.Task[TurnResult]]] = {}

    # -- wiring ----------------------------------------------------------------------

    def agent(self, agent: Agent[Any], *, model_provider: Any = None) -> Agent[Any]:
        """A clone of ``agent`` with ``run_code`` and its model wrapped (the agent is unchanged).

        A model given by name is resolved with ``model_provider`` (default: the
        SDK's ``MultiProvider``), as the runner would.
        """
        model = agent.model
        if not isinstance(model, Model):
            model = (model_provider or MultiProvider()).get_model(model)
        if isinstance(model, EagerModel):
            model = model.inner
        tools = [t for t in agent.tools if getattr(t, "name", None) != self.name]
        host = self.host_tools(agent)
        return agent.clone(tools=[*tools, self.code_tool(host)], model=self.model(model, host))

    def code_tool(self, host: Iterable[Tool] | None = None) -> FunctionTool:
        """The ``run_code`` function tool; its description lists the functions of the code."""
        listed = list(as_tools(self.extra_tools).values()) if host is None else list(host)
        description = self.description
        if listed:
            description += "\nFunctions you can call in the code:\n" + "\n".join(
                _signature_line(t) for t in listed
            )
        return FunctionTool(
            name=self.name,
            description=description,
            params_json_schema={
                "type": "object",
                "properties": {"code": {"type": "string", "description": "The Python code."}},
                "required": ["code"],
                "additionalProperties": False,
            },
            on_invoke_tool=self._invoke,
            strict_json_schema=True,
        )

    def model(self, model: Model, tools: Iterable[Tool] = ()) -> EagerModel:
        """``model`` with its ``run_code`` calls executed while they stream, calling ``tools``."""
        return EagerModel(model, self, tools)

    def host_tools(self, agent: Any) -> list[Tool]:
        """What the code of ``agent``'s ``run_code`` may call: ``tools=``, then its own."""
        extra = as_tools(self.extra_tools)
        own = (
            []
            if not self.agent_tools
            else host_tools(
                getattr(agent, "tools", ()), read_only=self.read_only, exclude={self.name, *extra}
            )
        )
        return [*extra.values(), *own]

    # -- sessions --------------------------------------------------------------------

    def _scope(self, owner: object | None) -> Scope:
        key = self if owner is None else owner
        scope = self._scopes.get(key)
        if scope is None:
            scope = self._scopes[key] = Scope(self.backend, self.backend_options)
        return scope

    async def _close_scope(self, owner: object) -> None:
        scope = self._scopes.pop(owner, None)
        if scope is not None:
            self._forget(scope)
            await scope.aclose()

    def _forget(self, scope: Scope) -> None:
        for call_id in [k for k, (s, _) in self._pending.items() if s is scope]:
            del self._pending[call_id]

    @property
    def open_sessions(self) -> int:
        """Runs whose session is still open (0 once every run has ended)."""
        return len(self._scopes)

    async def aclose(self) -> None:
        """Close every session still open (runs that are still going lose theirs)."""
        scopes, self._scopes = list(self._scopes.values()), {}
        self._pending.clear()
        for scope in scopes:
            await scope.aclose()

    # -- running ---------------------------------------------------------------------

    def _report(self, call_id: str, task: asyncio.Task[TurnResult]) -> None:
        if self.on_result is not None and not task.cancelled() and task.exception() is None:
            self.on_result(call_id, task.result())

    async def _invoke(self, ctx: ToolContext[Any], arguments: str) -> str:
        entry = self._pending.pop(ctx.tool_call_id, None)
        if entry is not None:
            _, task = entry
            return (await asyncio.shield(task)).text
        return await self._run_after(ctx, arguments)

    async def _run_after(self, ctx: ToolContext[Any], arguments: str) -> str:
        """A call that did not stream through an :class:`EagerModel`: run it now, on its own."""
        code = json.loads(arguments).get("code", "") if arguments.strip() else ""
        scope = Scope(self.backend, self.backend_options)
        try:
            tools = self.host_tools(ctx.agent)
            result = await arun_turn(
                [code], scope.session(), tools=tools or None, **self.turn_options
            )
        finally:
            await scope.aclose()
        if self.on_result is not None:
            self.on_result(ctx.tool_call_id, result)
        return result.text
