"""Eager execution for smolagents' ``CodeAgent``: each action runs while the model writes it.

smolagents streams the model's action (``model.generate_stream``), parses the
code out of ``<code>…</code>`` tags (or markdown fences) once the text is
complete, then hands it to its ``python_executor``. Here the three pieces are
replaced through the framework's own extension points:

* :class:`EagerPythonExecutor` is a smolagents ``PythonExecutor`` backed by an
  eager_rt session on any backend (full CPython, no import allow-list: the
  backend is the boundary). On its own (``CodeAgent(..., executor=...)``) it
  runs each finished action, like smolagents' remote executors.
* :class:`EagerModel` wraps the agent's model: during an action step every
  streamed delta is also fed, through the tag/fence extractor
  (:mod:`eager_rt.sources.tags`), to an eager_rt run on that session, and the
  model's stream is closed at the first failing statement.
* :class:`EagerCodeAgent` is a ``CodeAgent`` wired with both: the switch is
  ``EagerCodeAgent(tools=[...], model=model, backend="local")``.

The step's observation is built from the eager result exactly as smolagents
builds it from its own executors: the printed output as ``Execution logs``, an
error raised as ``InterpreterError("Code execution failed at line '…' due to:
…")`` for the repair step. The agent's tools (and managed agents) are eager_rt
host tools, callable from the code with their signatures; ``final_answer``
ends the code by raising ``FinalAnswerException`` (a ``BaseException``, as in
smolagents) in the session, and the executor reports the value as the final
answer.

Supported smolagents: 1.20 up to (not including) 2. Two conventions of the
agent's step are relied on and tested: ``CodeAgent._step_stream`` (the step
method subclasses implement, wrapped here, not copied) and the executor's
``state["_print_outputs"]`` (the agent reads it for the logs printed before an
error).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import inspect
import pickle
import re
import threading
import types
import typing
import warnings
from collections.abc import AsyncIterator, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import smolagents
from smolagents import CodeAgent, Model, Tool
from smolagents.local_python_executor import (
    DEFAULT_MAX_LEN_OUTPUT,
    MAX_EXECUTION_TIME_SECONDS,
    CodeOutput,
    InterpreterError,
    PythonExecutor,
)
from smolagents.memory import ActionStep
from smolagents.models import ChatMessage, ChatMessageStreamDelta, agglomerate_stream_deltas
from smolagents.utils import truncate_content

from eager_rt.executor import Backend, Session
from eager_rt.registry import open_backend
from eager_rt.result import RunError, RunResult
from eager_rt.runtime import arun_stream
from eager_rt.sources.boundary import BOUNDARY
from eager_rt.sources.fences import FenceExtractor, Segment
from eager_rt.sources.tags import SMOLAGENTS_FENCE_LANGUAGES, CodeBlockExtractor
from eager_rt.sync import Portal
from eager_rt.tools import DEFAULT_TOOL_TIMEOUT
from eager_rt.tools import Tool as HostTool

__all__ = [
    "SUPPORTED_SMOLAGENTS",
    "EagerCodeAgent",
    "EagerMismatchWarning",
    "EagerModel",
    "EagerPythonExecutor",
]

#: the smolagents versions this adapter is tested with: [low, high)
SUPPORTED_SMOLAGENTS = ((1, 20), (2, 0))


def _check_version(version: str) -> None:
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    low, high = SUPPORTED_SMOLAGENTS
    if not low <= numbers < high:
        raise ImportError(
            f"eager_rt.integrations.smolagents supports smolagents >= {low[0]}.{low[1]}, "
            f"< {high[0]}; found {version}"
        )


_check_version(smolagents.__version__)

#: the host tool behind the session's ``final_answer``
_FINAL = "_eager_final_answer"
#: the host tool that hands the agent's variables to the session
_VARIABLES = "_eager_variables"

#: defined once per session (again after it lost its state): smolagents' final-answer
#: semantics, a BaseException so that ``except Exception`` in the code cannot swallow it
_PRELUDE = f'''
class FinalAnswerException(BaseException):
    """final_answer() was called: the action ends here."""


def final_answer(*args, **kwargs):
    """Provides a final answer to the given problem."""
    {_FINAL}(*args, **kwargs)
    raise FinalAnswerException("final_answer() was called")
'''

_LOAD_VARIABLES = (
    f"import pickle as _eager_pickle\n"
    f"globals().update(_eager_pickle.loads({_VARIABLES}()))\n"
    f"del _eager_pickle\n"
)


class EagerMismatchWarning(UserWarning):
    """The code smolagents parsed differs from the code that ran while the model wrote it."""


# --------------------------------------------------------------------------- tools


#: smolagents' input/output type names (``AUTHORIZED_TYPES``) as Python annotations
_TYPES: dict[str, Any] = {
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": float,
    "array": list,
    "object": dict,
    "null": None,
}


def _annotation(kind: Any) -> Any:
    if isinstance(kind, list):  # a union of type names
        return typing.Union[tuple(_annotation(k) for k in kind)]  # noqa: UP007 - built at runtime
    return _TYPES.get(kind, Any)  # any, image, audio: not checked here


def _signature(target: Any) -> inspect.Signature:
    """The tool's call signature from its declared ``inputs``, the schema the model is shown.

    Defaults come from ``forward`` where it has them, else a nullable input
    defaults to None.
    """
    try:
        declared = inspect.signature(target.forward).parameters
    except (AttributeError, TypeError, ValueError):
        declared = {}  # type: ignore[assignment]
    params = []
    for name, spec in dict(getattr(target, "inputs", {}) or {}).items():
        annotation = _annotation(spec.get("type", "any"))
        default: Any = inspect.Parameter.empty
        own = declared.get(name)
        if own is not None and own.default is not own.empty:
            default = own.default
        elif spec.get("nullable"):
            default = None
        if default is None and annotation not in (Any, None):
            annotation = annotation | None
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=default,
                annotation=annotation,
            )
        )
    params.sort(key=lambda p: p.default is not inspect.Parameter.empty)  # required ones first
    returns = _annotation(getattr(target, "output_type", "any"))
    return inspect.Signature(params, return_annotation=returns)


def _host_tool(
    name: str, target: Any, *, read_only: bool, timeout: float | None, as_name: str | None = None
) -> HostTool:
    """An agent tool (or managed agent) as an eager_rt host tool with its declared signature."""
    signature = _signature(target)

    def call(*args: Any, **kwargs: Any) -> Any:
        return target(**signature.bind(*args, **kwargs).arguments)

    call.__signature__ = signature  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    call.__annotations__["return"] = signature.return_annotation
    call.__name__ = call.__qualname__ = as_name or name
    call.__doc__ = str(getattr(target, "description", "") or "")
    return HostTool(call, as_name or name, read_only=read_only, timeout=timeout)


# --------------------------------------------------------------------------- the stream


_END = object()


class _Feed:
    """Text pieces handed from the agent's thread to a run on the portal's loop.

    ``pieces()`` is the run's token source; the run closes it when it stops
    pulling (the end, or the first failing statement), which sets ``stopped``
    for the feeding thread to notice at its next delta.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self.stopped = threading.Event()

    def put(self, item: object) -> None:
        if not self.stopped.is_set():
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def pieces(self) -> AsyncIterator[str]:
        try:
            while True:
                item = await self._queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item  # the model's stream failed: the cut statement never runs
                yield cast(str, item)
        finally:
            self.stopped.set()


class _Extractor(typing.Protocol):
    def feed(self, text: str) -> list[Segment]: ...

    def close(self) -> list[Segment]: ...


def _extractor(tags: tuple[str, str]) -> _Extractor:
    """The incremental reader of the agent's code blocks, as its parser reads them."""
    if tags == ("```python", "```"):  # code_block_tags="markdown"
        return FenceExtractor(SMOLAGENTS_FENCE_LANGUAGES)
    return CodeBlockExtractor(*tags)  # tags, or the markdown fallback


@dataclass(eq=False)
class _Pending:
    """The eager run of the current action step, until the executor takes its result."""

    feed: _Feed
    extractor: _Extractor
    future: concurrent.futures.Future[RunResult] | None = None
    ended: bool = False
    answer: list[Any] = field(default_factory=list)

    def write(self, text: str) -> bool:
        """Feed model text; False once the run has stopped (the model should stop too)."""
        for seg in self.extractor.feed(text):
            self._put(seg)
        return not self.feed.stopped.is_set()

    def end(self, error: BaseException | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        if error is None:
            for seg in self.extractor.close():
                self._put(seg)
            self.feed.put(_END)
        else:
            self.feed.put(error)

    def _put(self, seg: Segment) -> None:
        if seg.kind == "code":
            self.feed.put(seg.text)
        elif seg.closes:
            self.feed.put(BOUNDARY)


# --------------------------------------------------------------------------- executor


class EagerPythonExecutor(PythonExecutor):  # type: ignore[misc]
    """A smolagents ``PythonExecutor`` on an eager_rt session, on any backend.

    ``backend`` is a registered backend name (``"local"``, ``"docker"``, ...,
    opened with ``backend_options`` and closed by :meth:`cleanup`) or a
    :class:`~eager_rt.executor.Backend` the caller owns. The session starts
    here (within ``start_timeout``) and keeps its state across actions.

    Bounds: each execution ``exec_timeout`` seconds (smolagents' own default,
    30), each tool call ``tool_timeout``, and waiting for an action's result
    after the model finished writing it ``timeout``. ``read_only_tools`` names
    tools that change nothing (eager_rt may then start their calls ahead of
    the code when ``speculate`` is on).

    ``runs`` keeps every action's :class:`~eager_rt.result.RunResult` (code,
    timeline, figures); ``state["_print_outputs"]`` the last action's logs,
    where smolagents looks for the output printed before an error.
    """

    def __init__(
        self,
        backend: str | Backend = "local",
        *,
        backend_options: Mapping[str, Any] | None = None,
        session_options: Mapping[str, Any] | None = None,
        exec_timeout: float | None = MAX_EXECUTION_TIME_SECONDS,
        tool_timeout: float | None = DEFAULT_TOOL_TIMEOUT,
        timeout: float | None = 600.0,
        start_timeout: float | None = 120.0,
        read_only_tools: Iterable[str] = (),
        speculate: bool = False,
        max_print_outputs_length: int | None = None,
    ) -> None:
        self.exec_timeout = exec_timeout
        self.tool_timeout = tool_timeout
        self.timeout = timeout
        self.read_only_tools = frozenset(read_only_tools)
        self.speculate = speculate
        self.max_print_outputs_length = max_print_outputs_length or DEFAULT_MAX_LEN_OUTPUT
        self.state: dict[str, Any] = {"_print_outputs": ""}
        self.runs: list[RunResult] = []
        self._tools: dict[str, HostTool] = {}
        self._final_answer: HostTool | None = None
        self._pending: _Pending | None = None
        self._answer_box: list[Any] = []  # the running action's final answer, once given
        self._prelude_defined = False
        self._closed = False
        self._portal = Portal("eager_rt-smolagents")
        self._own_backend = isinstance(backend, str)
        try:
            self.backend: Backend = (
                open_backend(backend, **dict(backend_options or {}))
                if isinstance(backend, str)
                else backend
            )
            self.session: Session = self.backend.session(**dict(session_options or {}))
            wait = None if start_timeout is None else start_timeout + 5.0
            self._portal.call(self.session.start(start_timeout), wait)
        except BaseException:
            self.cleanup()
            raise

    # ------------------------------------------------------------- smolagents' interface

    def send_tools(self, tools: dict[str, Any]) -> None:
        """The agent's tools and managed agents, as host tools the code calls by name."""
        converted: dict[str, HostTool] = {}
        final: HostTool | None = None
        for name, target in tools.items():
            if name == "final_answer":
                final = _host_tool(
                    name, target, read_only=False, timeout=self.tool_timeout, as_name=_FINAL
                )
                continue
            converted[name] = _host_tool(
                name, target, read_only=name in self.read_only_tools, timeout=self.tool_timeout
            )
        if final is not None:
            final = self._recording(final)
        self._tools, self._final_answer = converted, final

    def send_variables(self, variables: dict[str, Any]) -> None:
        """Bind the agent's variables in the session (pickled here, loaded there).

        Host to sandbox only: the session unpickles the host's own data, so
        any value whose class the session can import crosses; nothing from the
        sandbox is ever unpickled on the host.
        """
        if not variables:
            return
        try:
            payload = pickle.dumps(dict(variables))
        except Exception as exc:  # noqa: BLE001 - pickling fails many ways; say which value
            raise TypeError(
                f"the agent's variables must be picklable to reach the session: {exc}"
            ) from exc

        def variables_payload() -> bytes:
            return payload

        loader = HostTool(variables_payload, _VARIABLES, read_only=True, timeout=60.0)
        result = self._portal.call(
            arun_stream([_LOAD_VARIABLES], self.session, tools=[loader], exec_timeout=60.0),
            self.timeout,
        )
        if not result.ok:
            raise InterpreterError(f"the variables could not be sent: {_describe(result)}")

    def __call__(self, code_action: str) -> CodeOutput:
        """The outcome of the step's code: its eager run when there was one, else run it now."""
        pending, self._pending = self._pending, None
        result: RunResult | None = None
        answer: list[Any] = []
        if pending is not None:
            pending.end()
            result = self._wait(pending)
            answer = pending.answer
            if not result.code.strip():
                result = None  # no block was read while streaming (bare code?): run what was parsed
            elif result.ok and _normalized(result.code) != _normalized(code_action):
                warnings.warn(
                    "the code smolagents parsed differs from the code that ran eagerly; "
                    "the observation reports what ran",
                    EagerMismatchWarning,
                    stacklevel=2,
                )
        if result is None:
            pending = self._start([code_action])
            pending.end()
            result = self._wait(pending)
            answer = pending.answer
        self.runs.append(result)
        return self._code_output(result, answer)

    def cleanup(self) -> None:
        """End any run, close the session (and the backend it opened) and the portal. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.discard_pending()
            session = getattr(self, "session", None)
            if session is not None:
                self._portal.call(session.close(), 60.0)
            backend = getattr(self, "backend", None)
            if backend is not None and self._own_backend:
                self._portal.call(backend.aclose(), 60.0)
        finally:
            self._portal.close()

    # ------------------------------------------------------------- the eager step

    def open_stream(self, code_block_tags: tuple[str, str]) -> _Pending:
        """Start the step's eager run; the model's text goes to ``write``, then ``end``."""
        self.discard_pending()
        self._pending = self._start(None, _extractor(code_block_tags))
        return self._pending

    def discard_pending(self) -> None:
        """A step ended without taking its run's result (unparsable output, an error)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        pending.end(RuntimeError("the action step ended before its code was taken"))
        with contextlib.suppress(InterpreterError):
            self._wait(pending)

    # ------------------------------------------------------------- internals

    def _start(self, pieces: list[str] | None, extractor: _Extractor | None = None) -> _Pending:
        if self._closed:
            raise RuntimeError("the executor was cleaned up")
        feed = _Feed(self._portal.loop)
        pending = _Pending(feed, extractor or CodeBlockExtractor())
        source: Any = pieces if pieces is not None else feed.pieces()
        if pieces is not None:
            pending.ended = True
        pending.future = asyncio.run_coroutine_threadsafe(
            self._arun(source, pending), self._portal.loop
        )
        return pending

    async def _arun(self, source: Any, pending: _Pending) -> RunResult:
        tools = list(self._tools.values())
        if self._final_answer is not None:
            self._answer_box = pending.answer
            tools.append(self._final_answer)
            if not self._prelude_defined:
                await self._define_prelude()
        result = await arun_stream(
            source,
            self.session,
            tools=tools,
            exec_timeout=self.exec_timeout,
            speculate=bool(self.speculate and self.read_only_tools),
            on_error="interrupt",
        )
        if result.error is not None and result.error.state_lost:
            self._prelude_defined = False
        return result

    async def _define_prelude(self) -> None:
        result = await self.session.execute(_PRELUDE, timeout=60.0)
        if not result.ok:
            why = result.error.evalue if result.error else result.detail
            raise RuntimeError(f"final_answer could not be defined in the session: {why}")
        self._prelude_defined = True

    def _recording(self, final: HostTool) -> HostTool:
        """``final``, storing the answer it returns for the executor to report."""
        inner = final.fn

        def record(*args: Any, **kwargs: Any) -> None:
            self._answer_box.append(inner(*args, **kwargs))

        record.__signature__ = inspect.signature(inner).replace(  # type: ignore[attr-defined]
            return_annotation=None
        )
        record.__annotations__ = {**inner.__annotations__, "return": None}
        record.__name__ = record.__qualname__ = _FINAL
        record.__doc__ = inner.__doc__
        return HostTool(record, _FINAL, timeout=final.timeout)

    def _wait(self, pending: _Pending) -> RunResult:
        assert pending.future is not None
        try:
            result = pending.future.result(self.timeout)
        except TimeoutError:
            pending.future.cancel()
            raise InterpreterError(
                f"Code execution did not finish within {self.timeout} s; it was stopped"
            ) from None
        return result

    def _code_output(self, result: RunResult, answer: list[Any]) -> CodeOutput:
        logs = truncate_content(
            "".join(o.text for o in result.outputs if o.kind in ("stdout", "stderr")),
            max_length=self.max_print_outputs_length,
        )
        self.state["_print_outputs"] = logs
        error = result.error
        if error is not None and error.ename == "FinalAnswerException" and answer:
            return CodeOutput(output=answer[-1], logs=logs, is_final_answer=True)
        if error is not None or not result.ok:
            raise InterpreterError(_describe(result, self.exec_timeout))
        return CodeOutput(output=None, logs=logs, is_final_answer=False)


def _normalized(code: str) -> str:
    """Code compared as smolagents joins blocks: stripped lines, blank lines left out."""
    return "\n".join(line.rstrip() for line in code.splitlines() if line.strip())


def _describe(result: RunResult, exec_timeout: float | None = None) -> str:
    """The run's failure in the words of smolagents' own interpreter, for the repair step."""
    error: RunError | None = result.error
    if error is None:
        return f"Code execution ended with status {result.status}"
    statement = error.statement.strip()
    if error.kind == "timeout":
        limit = f"{exec_timeout:g} s" if exec_timeout is not None else "its time limit"
        text = (
            f"Code execution failed at line '{statement}' due to: TimeoutError: "
            f"it ran longer than {limit} and was stopped"
        )
    elif error.kind == "syntax":
        text = f"Code parsing failed on line {error.lineno} due to: {error.ename}: {error.evalue}"
        if statement:
            text += f"\n{statement}"
    elif statement:
        text = f"Code execution failed at line '{statement}' due to: {error.ename}: {error.evalue}"
    else:
        text = f"Code execution failed due to: {error.ename}: {error.evalue}"
    if error.state_lost:
        text += "\nThe session was restarted: variables defined before are gone."
    return text


# --------------------------------------------------------------------------- model


class EagerModel(Model):  # type: ignore[misc]
    """The agent's model, feeding each action step's stream to the executor as it arrives.

    Armed by :class:`EagerCodeAgent` for its action steps only (a planning
    step or the final summary is passed through untouched). When the eager
    run stops at a failing statement, the model's stream is closed at its next
    delta, so generation (and billing) stops; the agent receives the text up to
    there. ``generate`` goes through the stream too, so ``stream_outputs=False``
    runs eagerly as well. Other attributes are the wrapped model's.
    """

    def __init__(
        self,
        model: Model,
        executor: EagerPythonExecutor,
        code_block_tags: tuple[str, str] = ("<code>", "</code>"),
    ) -> None:
        super().__init__(
            flatten_messages_as_text=getattr(model, "flatten_messages_as_text", False),
            model_id=getattr(model, "model_id", None),
        )
        self.model = model
        self.executor = executor
        self.code_block_tags = code_block_tags
        self.armed = False
        #: whether the last armed stream was closed early because the code failed
        self.stopped_early = False

    def __getattr__(self, name: str) -> Any:
        model = self.__dict__.get("model")
        if model is None:
            raise AttributeError(name)
        return getattr(model, name)

    def generate_stream(
        self,
        messages: list[ChatMessage | dict[str, Any]],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, str] | None = None,
        tools_to_call_from: list[Tool] | None = None,
        **kwargs: Any,
    ) -> Generator[ChatMessageStreamDelta, None, None]:
        stream = self.model.generate_stream(
            messages,
            stop_sequences=stop_sequences,
            response_format=response_format,
            tools_to_call_from=tools_to_call_from,
            **kwargs,
        )
        if not self.armed:
            yield from stream
            return
        self.stopped_early = False
        pending = self.executor.open_stream(self.code_block_tags)
        try:
            for delta in stream:
                going = pending.write(delta.content) if delta.content else True
                yield delta
                if not going:
                    self.stopped_early = True
                    break
        except BaseException as exc:  # the model failed, or the agent stopped reading
            pending.end(exc if isinstance(exc, Exception) else RuntimeError("stream abandoned"))
            raise
        finally:
            _close_chain(stream)
        pending.end()

    def generate(
        self,
        messages: list[ChatMessage | dict[str, Any]],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, str] | None = None,
        tools_to_call_from: list[Tool] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        if not self.armed:
            return self.model.generate(
                messages,
                stop_sequences=stop_sequences,
                response_format=response_format,
                tools_to_call_from=tools_to_call_from,
                **kwargs,
            )
        deltas = list(
            self.generate_stream(
                messages,
                stop_sequences=stop_sequences,
                response_format=response_format,
                tools_to_call_from=tools_to_call_from,
                **kwargs,
            )
        )
        return cast(ChatMessage, agglomerate_stream_deltas(deltas))

    def to_dict(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.model.to_dict())


def _close_chain(stream: Generator[Any, None, None]) -> None:
    """Close ``stream`` and the generators it is iterating, innermost first.

    A model's ``generate_stream`` iterates an SDK stream it does not expose,
    and SDK streams keep their HTTP response in a reference cycle (the OpenAI
    SDK's ``Stream`` and its own generator) that only a garbage collection
    would finalise: closing the outer generator alone leaves the connection
    open and the provider generating. The generators a suspended generator is
    iterating are on its frame (``gc.get_referents``); closing them from the
    innermost out runs their ``finally`` blocks, which release the response.
    """
    chain: list[Generator[Any, None, None]] = []
    seen: set[int] = set()
    todo = [stream]
    while todo and len(chain) < 64:
        gen = todo.pop()
        if id(gen) in seen:
            continue
        seen.add(id(gen))
        chain.append(gen)
        todo.extend(r for r in gc.get_referents(gen) if isinstance(r, types.GeneratorType))
    for gen in reversed(chain):
        with contextlib.suppress(Exception):
            gen.close()


# --------------------------------------------------------------------------- agent


_LITERAL = re.compile(r"[^\\.^$*+?{}\[\]|()]*")


class EagerCodeAgent(CodeAgent):  # type: ignore[misc]
    """A ``CodeAgent`` whose actions run while the model writes them, on an eager_rt backend.

    ``EagerCodeAgent(tools=[...], model=model, backend="local")``: every other
    argument is ``CodeAgent``'s (``executor_type``/``executor_kwargs`` aside:
    pass ``backend``/``backend_options`` or an :class:`EagerPythonExecutor`).
    Use it as a context manager, or call ``cleanup()``, to close the session.
    Code block tags must be literal text (the default ``<code>``/``</code>``,
    or ``"markdown"``).
    """

    def __init__(
        self,
        tools: list[Tool],
        model: Model,
        *,
        backend: str | Backend = "local",
        backend_options: Mapping[str, Any] | None = None,
        executor: EagerPythonExecutor | None = None,
        exec_timeout: float | None = MAX_EXECUTION_TIME_SECONDS,
        read_only_tools: Iterable[str] = (),
        speculate: bool = False,
        **kwargs: Any,
    ) -> None:
        for name in ("executor_type", "executor_kwargs"):
            if name in kwargs:
                raise TypeError(f"EagerCodeAgent takes backend=/executor=, not {name}=")
        own = executor is None
        if executor is None:
            executor = EagerPythonExecutor(
                backend,
                backend_options=backend_options,
                exec_timeout=exec_timeout,
                read_only_tools=read_only_tools,
                speculate=speculate,
                max_print_outputs_length=kwargs.get("max_print_outputs_length"),
            )
        try:
            eager_model = EagerModel(model, executor)
            super().__init__(tools=tools, model=eager_model, executor=executor, **kwargs)
            tags = tuple(self.code_block_tags)
            if len(tags) != 2 or not all(_LITERAL.fullmatch(t) for t in tags):
                raise ValueError(
                    f"eager execution reads literal code block tags; got {self.code_block_tags!r}"
                )
            eager_model.code_block_tags = (tags[0], tags[1])
        except BaseException:
            if own:
                executor.cleanup()
            raise

    @property
    def eager_model(self) -> EagerModel:
        return cast(EagerModel, self.model)

    def _step_stream(self, memory_step: ActionStep) -> Generator[Any, None, None]:
        """smolagents' own action step, with the model's stream armed for eager execution."""
        model = self.eager_model
        model.armed = True
        try:
            yield from super()._step_stream(memory_step)
        finally:
            model.armed = False
            cast(EagerPythonExecutor, self.python_executor).discard_pending()
