"""Host tools the generated code can call, on every backend.

``arun_stream(..., tools=[search, eager_rt.tool(send_mail, read_only=False)])``
gives the session one function per tool, with the tool's name, signature and
docstring (a generated stub). The stub sends its arguments, as plain JSON, to
the host through the backend's channel; :class:`ToolHost` validates them
against the tool's signature (pydantic's ``validate_call``), runs the tool
(a sync tool on a thread, an async one on the loop), and sends back the value
or the error, which the sandbox raises as ``ToolError(tool, type, message)``.
Nothing from the sandbox is unpickled or evaluated here: arguments are JSON
(plus bytes) decoded by :mod:`eager_rt.backends._tool_wire`.

An async tool gets an async stub, so ``await asyncio.gather(a(1), b(2))`` in
the generated code runs both calls at once. Every call is recorded
(:class:`ToolCall`, ``RunResult.tool_calls``) and reported live
(``ToolCallStarted`` / ``ToolCallFinished`` events). ``docs/tools.md`` has the
whole story: read-only tools, speculation, approval and the ledger.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import keyword
import threading
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from eager_rt import clock
from eager_rt.backends import _tool_wire as wire

if TYPE_CHECKING:
    from eager_rt.speculation import SpeculationSummary

__all__ = [
    "DEFAULT_TOOL_THREADS",
    "DEFAULT_TOOL_TIMEOUT",
    "Approval",
    "Tool",
    "ToolCall",
    "ToolHost",
    "as_tools",
    "canonical",
    "stub_arguments",
    "stub_source",
    "tool",
]

#: a reply to the sandbox: ``{"ok": True, "value": ...}`` or ``{"ok": False, "error": {...}}``
Reply = dict[str, Any]
#: a backend's thread-safe sender of one call's reply (the request's ``respond``)
Respond = Callable[[Reply], None]
#: decides whether a call of a tool that requires approval may run: (tool, arguments) -> allowed
Approval = Callable[["Tool", dict[str, Any]], "bool | Awaitable[bool]"]


#: seconds a tool call may take unless its declaration says otherwise
DEFAULT_TOOL_TIMEOUT = 300.0
#: threads one run's sync tools may occupy at once (further calls wait for one)
DEFAULT_TOOL_THREADS = 16
#: seconds an ``inline`` tool's call may hold the event loop before a warning says so
INLINE_BUDGET = 0.1


@dataclass(frozen=True, slots=True)
class Tool:
    """A host function the generated code may call, and how it may be called.

    * ``read_only``: calling it changes nothing anywhere, so it may be called
      ahead of the code (speculation) and more than once.
    * ``timeout``: seconds one call may take (default
      :data:`DEFAULT_TOOL_TIMEOUT`, bounded like everything the code starts;
      None lifts it); past it the sandbox gets a ``ToolError`` of type
      ``TimeoutError``.
    * ``requires_approval``: each call waits, the code paused mid-statement,
      for the run's approval callback.
    * ``inline``: a sync function that never blocks (no I/O, no sleep, a quick
      computation) runs on the event loop itself instead of a thread, which
      saves two thread switches per call; one that blocks would stall the
      whole run while it runs, and ``timeout`` cannot stop it.
    """

    fn: Callable[..., Any]
    name: str
    read_only: bool = False
    timeout: float | None = DEFAULT_TOOL_TIMEOUT
    requires_approval: bool = False
    inline: bool = False
    signature: inspect.Signature = field(init=False, repr=False, compare=False)
    is_async: bool = field(init=False, repr=False, compare=False)
    #: the signature has ``*args``
    variadic: bool = field(init=False, repr=False, compare=False)
    #: the validating wrapper, built at the first call (pydantic is imported then)
    _validated: list[Callable[..., Any]] = field(
        init=False, repr=False, compare=False, default_factory=list
    )

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or keyword.iskeyword(self.name):
            raise ValueError(f"a tool's name must be a Python identifier, not {self.name!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, not {self.timeout!r}")
        object.__setattr__(self, "signature", inspect.signature(self.fn))
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.fn))
        kinds = {p.kind for p in self.signature.parameters.values()}
        object.__setattr__(self, "variadic", inspect.Parameter.VAR_POSITIONAL in kinds)
        if self.inline and self.is_async:
            raise ValueError(
                f"inline is for sync tools; {self.name}() is async (it runs on the loop)"
            )

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.fn) or ""

    def validated(self) -> Callable[..., Any]:
        """``fn`` behind pydantic's ``validate_call``, noting in the call's record that it ran.

        Built once per tool. A signature pydantic cannot model (a parameter
        annotated with an arbitrary class) is only bound, not validated.
        """
        if not self._validated:
            from pydantic import validate_call

            marked = _marks_ran(self.fn)
            try:
                self._validated.append(validate_call(marked))
            except Exception:  # noqa: BLE001 - a signature pydantic cannot model: bind-checked only
                self._validated.append(marked)
        return self._validated[0]


@overload
def tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    read_only: bool = False,
    timeout: float | None = DEFAULT_TOOL_TIMEOUT,
    requires_approval: bool = False,
    inline: bool = False,
) -> Tool: ...


@overload
def tool(
    fn: None = None,
    *,
    name: str | None = None,
    read_only: bool = False,
    timeout: float | None = DEFAULT_TOOL_TIMEOUT,
    requires_approval: bool = False,
    inline: bool = False,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    read_only: bool = False,
    timeout: float | None = DEFAULT_TOOL_TIMEOUT,
    requires_approval: bool = False,
    inline: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Declare how a host function may be called: ``tool(fn, read_only=True)`` or ``@tool(...)``."""

    def make(f: Callable[..., Any]) -> Tool:
        return Tool(
            f,
            name or str(getattr(f, "__name__", "")),
            read_only=read_only,
            timeout=timeout,
            requires_approval=requires_approval,
            inline=inline,
        )

    return make if fn is None else make(fn)


def as_tools(items: Iterable[Tool | Callable[..., Any]]) -> dict[str, Tool]:
    """Tools by name; a plain callable is a tool with the defaults (not read-only)."""
    tools: dict[str, Tool] = {}
    for item in items:
        t = item if isinstance(item, Tool) else tool(item)
        if t.name in tools:
            raise ValueError(f"two tools are named {t.name!r}")
        tools[t.name] = t
    return tools


# --------------------------------------------------------------------------- stubs


def _literal(value: Any) -> str | None:
    """Source text that evaluates to ``value`` in the sandbox, if it is a plain literal."""
    try:
        wire.encode(value)
    except TypeError:
        return None
    text = repr(value)
    try:
        import ast

        return text if ast.literal_eval(text) == value else None
    except (ValueError, SyntaxError):
        return None


def _annotation(annotation: Any) -> str:
    """An annotation's text, as the stub shows it (a string one, as it was written)."""
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def _stub(t: Tool) -> str:
    params: list[str] = []
    passed: list[str] = []
    kinds = [p.kind for p in t.signature.parameters.values()]
    star_done = False
    for index, p in enumerate(t.signature.parameters.values()):
        if p.kind is p.KEYWORD_ONLY and not star_done:
            params.append("*")
            star_done = True
        text = p.name
        if p.annotation is not p.empty:
            text += f": {_annotation(p.annotation)!r}"
        if p.kind is p.VAR_POSITIONAL:
            text = "*" + text
            star_done = True
        elif p.kind is p.VAR_KEYWORD:
            text = "**" + text
        elif p.default is not p.empty:
            literal = _literal(p.default)
            text += "=" + (literal if literal is not None else "__eager_rt_tools__.DEFAULT")
        params.append(text)
        if p.kind is p.POSITIONAL_ONLY and (
            index + 1 == len(kinds) or kinds[index + 1] is not p.POSITIONAL_ONLY
        ):
            params.append("/")
        passed.append(f"{p.name!r}: {p.name}")
    returns = ""
    if t.signature.return_annotation is not t.signature.empty:
        returns = f" -> {_annotation(t.signature.return_annotation)!r}"
    call = "await __eager_rt_tools__.acall" if t.is_async else "__eager_rt_tools__.call"
    prefix = "async def" if t.is_async else "def"
    doc = f"    {t.doc!r}\n" if t.doc else ""
    return (
        f"{prefix} {t.name}({', '.join(params)}){returns}:\n"
        f"{doc}"
        f"    return {call}({t.name!r}, {{{', '.join(passed)}}})\n"
    )


def stub_source(tools: Mapping[str, Tool]) -> str:
    """Python that defines every tool's stub in the session (needs ``__eager_rt_tools__``)."""
    parts = [_stub(t) for t in tools.values()]
    parts.append("ToolError = __eager_rt_tools__.ToolError\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------- host side


@dataclass(slots=True)
class ToolCall:
    """One call of a host tool, as it happened."""

    id: int
    tool: str
    arguments: dict[str, Any]
    #: seconds from the run's start (``eager_rt.clock`` readings minus the start)
    started: float
    ended: float | None = None
    ok: bool | None = None
    error: str | None = None  #: "TypeName: message" when it failed
    read_only: bool = False
    speculative: bool = False  #: started by the runtime ahead of the code
    claimed: bool = True  #: the code made this call (a speculative one the code never made: False)
    approved: bool | None = None  #: for tools that require approval
    #: the tool's function was called: its arguments were valid and any approval given
    ran: bool = False
    #: a speculative call's arguments came from ``"literal"`` text or ``"session"`` values
    origin: str | None = None
    #: when the code made a speculative call (s from the run's start; None: never)
    claimed_at: float | None = None
    #: the first line, in the executed code, of the statement that made the call (code of
    #: several statements, when the backend can tell; None otherwise)
    line: int | None = None

    @property
    def wasted(self) -> bool:
        """A speculative call the code never made."""
        return self.speculative and not self.claimed

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    @property
    def hidden(self) -> float:
        """Seconds of this call the code did not wait for (it ran ahead, speculatively)."""
        if not self.speculative or self.claimed_at is None or self.ended is None:
            return 0.0
        return max(0.0, min(self.ended, self.claimed_at) - self.started)


#: the record of the call being performed, for :func:`_marks_ran` (a task or thread's own)
_current: contextvars.ContextVar[ToolCall | None] = contextvars.ContextVar(
    "eager_rt_tool_call", default=None
)


def _marks_ran(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, noting in the current record that it was called (after validation passed)."""

    def note() -> None:
        record = _current.get()
        if record is not None:
            record.ran = True

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def marked_async(*args: Any, **kwargs: Any) -> Any:
            note()
            return await fn(*args, **kwargs)

        return marked_async

    @functools.wraps(fn)
    def marked(*args: Any, **kwargs: Any) -> Any:
        note()
        return fn(*args, **kwargs)

    return marked


def canonical(arguments: Mapping[str, Any]) -> str:
    """One text per argument set, for matching a call against a speculated one."""
    return json.dumps(wire.encode(dict(arguments)), sort_keys=True, separators=(",", ":"))


def stub_arguments(t: Tool, bound: inspect.BoundArguments) -> dict[str, Any]:
    """What ``t``'s stub sends for a call bound to its signature: every parameter, by name.

    A default the stub can write as a literal is sent as its value, any other
    as ``TOOL_DEFAULT``; ``*args`` as a list, ``**kwargs`` as a dict. The
    result has crossed the wire codec, as the stub's arguments do (tuples
    come back as lists), so it matches a real call's decoded arguments.
    """
    named: dict[str, Any] = {}
    for p in t.signature.parameters.values():
        if p.name in bound.arguments:
            value = bound.arguments[p.name]
        elif p.kind is p.VAR_POSITIONAL:
            value = ()
        elif p.kind is p.VAR_KEYWORD:
            value = {}
        else:
            literal = _literal(p.default)
            value = p.default if literal is not None else wire.TOOL_DEFAULT
        named[p.name] = value
    decoded: dict[str, Any] = wire.decode(wire.encode(named))
    return decoded


@dataclass(slots=True)
class _Speculation:
    """A call started ahead of the code (or queued to start), until the code claims it."""

    tool: Tool
    named: dict[str, Any]
    args: list[Any]
    kwargs: dict[str, Any]
    origin: str
    record: ToolCall | None = None
    task: asyncio.Future[Reply] | None = None


class ToolHost:
    """Runs the tool calls that come out of a session, and keeps their record.

    Hand it to ``Session.execute(..., tools=host)``; the backend calls it with
    each request (``{"tool", "args", "call"}``), which starts the call at once,
    and awaits the future it returns for the reply to send to the sandbox. An
    ``inline`` tool's reply is ready on return; a sync tool runs on one of the
    host's own threads (at most ``max_threads`` at once, further calls wait
    for one) and its reply is settled on the loop; an async tool, or a call
    that waits for approval, runs in a task. A request may carry
    ``respond``, the backend's thread-safe sender of that call's reply: a
    sync tool's thread then sends the reply itself as the function returns
    (the future still settles, for the books). ``t0`` is the run's start,
    for the records' times.

    The host owns its threads: :meth:`aclose` (or ``async with``) ends the
    run's calls and waits for them, so no tool thread outlives the run.
    """

    def __init__(
        self,
        tools: Mapping[str, Tool],
        *,
        approve: Approval | None = None,
        t0: float | None = None,
        on_call: Callable[[ToolCall], None] | None = None,
        on_return: Callable[[ToolCall], None] | None = None,
        max_threads: int = DEFAULT_TOOL_THREADS,
    ) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be >= 1, not {max_threads!r}")
        self.tools = dict(tools)
        self.approve = approve
        self.t0 = clock.now() if t0 is None else t0
        self.on_call = on_call
        self.on_return = on_return
        self.max_threads = max_threads
        self.calls: list[ToolCall] = []
        self._executor: ThreadPoolExecutor | None = None  # made at the first sync call
        self._threaded: set[_ThreadCall] = set()  # sync calls that may still hold a thread
        #: calls whose threads sent the reply, with their outcomes, to settle on the loop
        self._sent: deque[tuple[_ThreadCall, tuple[Reply, BaseException | None]]] = deque()
        self._closed = False
        # speculation (see eager_rt.speculation): off until allow_speculation()
        self._speculable: frozenset[str] = frozenset()
        self._max_speculative = 0
        self._speculative: dict[str, deque[_Speculation]] = {}  # by call key
        self._queued: deque[_Speculation] = deque()  # waiting for a slot
        self._in_flight = 0
        self._speculation_over = False

    async def __aenter__(self) -> ToolHost:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ the handler

    def __call__(self, request: Mapping[str, Any]) -> asyncio.Future[Reply]:
        """Start the call ``request`` asks for; the future of the reply for the sandbox."""
        loop = asyncio.get_running_loop()
        if self._sent:
            self._settle_sent()  # calls answered by their threads end before this one starts
        name = str(request.get("tool", ""))
        t = self.tools.get(name)
        if t is None:
            return _ready(loop, _error(name, "NameError", f"no tool named {name!r}"))
        if self._closed:
            return _ready(loop, _error(name, "RuntimeError", "the run is over: no tool calls now"))
        try:
            named = wire.decode(request.get("args") or {})
            if not isinstance(named, dict):
                raise TypeError("tool arguments must come as a mapping of parameter names")
            args, kwargs = self._rebuild(t, named)
        except (TypeError, ValueError) as exc:
            return _ready(loop, _error(name, type(exc).__name__, str(exc)))
        line = request.get("line")
        line = line if isinstance(line, int) else None
        spec = self._claim(t, named) if self._speculative else None
        if spec is not None and spec.task is not None and spec.record is not None:
            spec.record.claimed = True
            spec.record.claimed_at = clock.now() - self.t0
            spec.record.line = line
            return asyncio.shield(spec.task)  # its reply, error included, as made
        respond = request.get("respond")
        return self._start(
            loop, t, named, args, kwargs, self._record(t, named, line=line),
            respond=respond if callable(respond) else None,
        )  # fmt: skip

    def _start(
        self, loop: asyncio.AbstractEventLoop, t: Tool, named: dict[str, Any], args: list[Any],
        kwargs: dict[str, Any], record: ToolCall, *, respond: Respond | None = None,
    ) -> asyncio.Future[Reply]:  # fmt: skip
        """Run one call (the code's or a speculative one); the future of its reply."""
        if t.requires_approval or t.is_async:
            return loop.create_task(self._perform(t, named, args, kwargs, record))
        if t.inline:
            return _ready(loop, self._run_inline(t, args, kwargs, record))
        return self._run_threaded(loop, t, args, kwargs, record, respond)

    async def _perform(
        self, t: Tool, named: dict[str, Any], args: list[Any], kwargs: dict[str, Any],
        record: ToolCall,
    ) -> Reply:  # fmt: skip
        """A call that waits on the loop: for its approval, or for an async tool."""
        name = t.name
        try:
            if t.requires_approval:
                record.approved = await self._approved(t, named)
                if not record.approved:
                    raise PermissionError(f"the call of {name}() was not approved")
            if not t.is_async:  # approved: on with the sync tool (it settles its record)
                if t.inline:
                    return self._run_inline(t, args, kwargs, record)
                loop = asyncio.get_running_loop()
                return await self._run_threaded(loop, t, args, kwargs, record)
            _current.set(record)
            reply = _ok(name, await self._awaited(t, args, kwargs))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the sandbox
            self._finish(record, exc)
            return _error(name, type(exc).__name__, str(exc))
        except asyncio.CancelledError:
            self._cancelled(record)
            raise
        self._finish(record, None)
        return reply

    @staticmethod
    async def _awaited(t: Tool, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """An async tool's value, within its timeout (validation fails before it starts)."""
        call = t.validated()(*args, **kwargs)
        if t.timeout is None:
            return await call
        scope = asyncio.timeout(t.timeout)
        try:
            async with scope:
                return await call
        except TimeoutError:
            if scope.expired():
                raise TimeoutError(f"{t.name}() did not return within {t.timeout:g} s") from None
            raise

    def _run_inline(
        self, t: Tool, args: list[Any], kwargs: dict[str, Any], record: ToolCall
    ) -> Reply:
        """An ``inline`` tool's call, on the loop, start to end."""
        token = _current.set(record)
        began = time.perf_counter()  # real time: what the loop stalled for
        try:
            reply = _ok(t.name, t.validated()(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the sandbox
            self._finish(record, exc)
            return _error(t.name, type(exc).__name__, str(exc))
        finally:
            _current.reset(token)
        self._finish(record, None)
        if time.perf_counter() - began > INLINE_BUDGET:
            warnings.warn(
                f"tool {t.name}() is declared inline, and a call of it held the event loop "
                f"for over {INLINE_BUDGET * 1e3:g} ms (the run stalled meanwhile); "
                "declare it without inline=True",
                RuntimeWarning,
                stacklevel=2,
            )
        return reply

    def _run_threaded(
        self, loop: asyncio.AbstractEventLoop, t: Tool, args: list[Any], kwargs: dict[str, Any],
        record: ToolCall, respond: Respond | None = None,
    ) -> asyncio.Future[Reply]:  # fmt: skip
        """A sync tool's call on one of the host's threads; its reply is settled on the loop.

        With ``respond`` (the backend's thread-safe sender of this call's
        reply), the thread sends the reply itself as the function returns,
        sparing the sandbox the wait for the loop to wake up.
        """
        if self._executor is None:
            if self._closed:
                error = RuntimeError("the run is over: no tool calls now")
                self._finish(record, error)
                return _ready(loop, _error(t.name, "RuntimeError", str(error)))
            self._executor = ThreadPoolExecutor(self.max_threads, "eager_rt-tool")
        call = _ThreadCall(self, loop, t, record, respond)
        context = contextvars.copy_context()  # the caller's context, as asyncio.to_thread gives
        context.run(_current.set, record)
        self._threaded.add(call)
        # through the loop (not the executor directly), so loops that account for
        # their threads' work (eager_rt.testing.VirtualClockLoop) see it
        call.job = loop.run_in_executor(self._executor, call.run, context, args, kwargs)
        call.job.add_done_callback(call.landed)
        return call.reply

    def _cancelled(self, record: ToolCall) -> None:
        """A call's wait was cancelled: a speculative one is over (ended by end_speculation())."""
        if record.speculative and record.ended is None:
            why = "cancelled at the end of the run" + ("" if record.claimed else ", unclaimed")
            self._finish(record, asyncio.CancelledError(why))

    # ------------------------------------------------------------------ the end

    async def aclose(self, timeout: float | None = 60.0) -> None:
        """The run is over: end speculation, take no more calls, wait for the tool threads.

        Unclaimed speculative calls are cancelled (recorded as wasted), calls
        still waiting for a thread are dropped, and the calls running on a
        thread are waited for, so no thread outlives the run. A thread cannot
        be stopped: if some still run after ``timeout`` seconds, TimeoutError
        names them (their threads end as soon as their functions return).
        """
        self._closed = True
        await self.end_speculation()
        executor, self._executor = self._executor, None
        if executor is None:
            return
        executor.shutdown(wait=False, cancel_futures=True)  # calls waiting for a thread: dropped
        # joined on a helper thread: the loop goes on meanwhile (one hop, once per run)
        joined = asyncio.ensure_future(asyncio.to_thread(executor.shutdown, True))
        done, _ = await asyncio.wait({joined}, timeout=timeout)
        if not done:
            late = [c.record for c in self._threaded if c.state == "running"]
            names = ", ".join(f"{r.tool}() (call {r.id})" for r in late) or "none known"
            raise TimeoutError(f"tool calls still on their threads after {timeout} s: {names}")
        self._threaded.clear()
        self._settle_sent()

    def _settle_sent(self) -> None:
        """On the loop: the books of the calls whose tool threads sent the reply themselves."""
        while self._sent:
            call, (reply, error) = self._sent.popleft()
            call._settle(reply, error)

    # ------------------------------------------------------------------ speculation

    def allow_speculation(self, names: Iterable[str], *, max_in_flight: int = 8) -> None:
        """Let :meth:`speculate` start calls of ``names`` (read-only tools only), N at a time."""
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, not {max_in_flight!r}")
        allowed = frozenset(names)
        for name in allowed:
            t = self.tools.get(name)
            if t is None or not t.read_only or t.requires_approval:
                raise ValueError(f"tool {name!r} may not be speculated (read-only tools only)")
        self._speculable = allowed
        self._max_speculative = max_in_flight

    def speculate(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        origin: str = "literal",
    ) -> bool:
        """Start ``name(*args, **kwargs)`` ahead of the code; False if it may not or cannot.

        The arguments are bound to the tool's signature as its stub would send
        them, so ``weather("Oslo")`` and ``weather(city="Oslo")`` are one call.
        At most ``max_in_flight`` run at once; more wait for a slot. When the
        code makes the same call (name and canonical arguments), it receives
        this call's reply instead of a new call.
        """
        t = self.tools.get(name)
        if t is None or name not in self._speculable or self._speculation_over:
            return False
        if not t.read_only or t.requires_approval:  # allow_speculation checked; never relax it
            return False
        try:
            named = stub_arguments(t, t.signature.bind(*args, **(kwargs or {})))
            real_args, real_kwargs = self._rebuild(t, named)
            key = _key(t, named)
        except (TypeError, ValueError):
            return False  # the real call fails the same way, without us
        spec = _Speculation(t, named, real_args, real_kwargs, origin)
        self._speculative.setdefault(key, deque()).append(spec)
        self._queued.append(spec)
        self._pump()
        return True

    def _pump(self) -> None:
        while self._queued and self._in_flight < self._max_speculative:
            spec = self._queued.popleft()
            spec.record = self._record(spec.tool, spec.named, speculative=True, origin=spec.origin)
            spec.task = self._start(
                asyncio.get_running_loop(), spec.tool, spec.named, spec.args, spec.kwargs,
                spec.record,
            )  # fmt: skip
            self._in_flight += 1
            spec.task.add_done_callback(self._landed)

    def _landed(self, _task: asyncio.Future[Reply]) -> None:
        self._in_flight -= 1
        if not self._speculation_over:
            self._pump()

    def _claim(self, t: Tool, named: dict[str, Any]) -> _Speculation | None:
        """The oldest speculation of this exact call; one not started yet is dropped."""
        try:
            key = _key(t, named)
        except TypeError:
            return None
        entries = self._speculative.get(key)
        if not entries:
            return None
        spec = entries.popleft()
        if not entries:
            del self._speculative[key]
        if spec.task is None:
            self._queued.remove(spec)  # the code got there first: it makes the call itself
            return None
        return spec

    async def end_speculation(self) -> None:
        """Cancel the speculative calls the code never claimed (recorded as wasted).

        Calls still queued are dropped unrecorded. An async tool is cancelled;
        a sync tool still waiting for a thread never starts, one already
        running on a thread cannot be stopped (:meth:`aclose` waits for it).
        """
        self._speculation_over = True
        self._queued.clear()
        unclaimed = [s for entries in self._speculative.values() for s in entries]
        self._speculative.clear()
        tasks = [s.task for s in unclaimed if s.task is not None and not s.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def speculation(self) -> SpeculationSummary:
        """Calls speculated from literals and from session values, claimed and wasted so far."""
        from eager_rt.speculation import summarize

        return summarize(self.calls)

    # ------------------------------------------------------------------ pieces

    @staticmethod
    def _rebuild(t: Tool, named: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """The call's ``(args, kwargs)`` from the stub's parameter values, checked by binding."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        params = t.signature.parameters
        if not params.keys() >= named.keys():
            unknown = set(named) - set(params)
            raise TypeError(f"{t.name}() got unexpected arguments {sorted(unknown)}")
        positional = t.variadic
        for p in params.values():
            if p.name not in named:
                continue
            value = named[p.name]
            if value is wire.TOOL_DEFAULT:
                if positional and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                    value = p.default  # a later *args needs every earlier slot filled
                else:
                    continue
            if p.kind is p.VAR_POSITIONAL:
                args.extend(value if isinstance(value, list) else [value])
            elif p.kind is p.VAR_KEYWORD:
                if not isinstance(value, dict):
                    raise TypeError(f"**{p.name} must be a mapping")
                kwargs.update(value)
            elif p.kind is p.POSITIONAL_ONLY or (positional and p.kind is p.POSITIONAL_OR_KEYWORD):
                args.append(value)
            else:
                kwargs[p.name] = value
        t.signature.bind(*args, **kwargs)  # TypeError, as Python would raise it
        return args, kwargs

    async def _approved(self, t: Tool, named: dict[str, Any]) -> bool:
        if self.approve is None:
            raise PermissionError(f"{t.name}() requires approval and the run has no approve=")
        verdict = self.approve(t, named)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return bool(verdict)

    def _record(
        self, t: Tool, named: dict[str, Any], *, speculative: bool = False,
        origin: str | None = None, line: int | None = None,
    ) -> ToolCall:  # fmt: skip
        shown = {k: v for k, v in named.items() if v is not wire.TOOL_DEFAULT}
        record = ToolCall(
            id=len(self.calls) + 1,
            tool=t.name,
            arguments=shown,
            started=clock.now() - self.t0,
            read_only=t.read_only,
            speculative=speculative,
            claimed=not speculative,
            origin=origin,
            line=line,
        )
        self.calls.append(record)
        if self.on_call is not None:
            self.on_call(record)
        return record

    def _finish(self, record: ToolCall, error: BaseException | None) -> None:
        record.ended = clock.now() - self.t0
        record.ok = error is None
        if error is not None:
            record.error = f"{type(error).__name__}: {error}"
        if self.on_return is not None:
            self.on_return(record)


class _ThreadCall:
    """One call of a sync tool: run on a tool thread, settled on the loop.

    Whichever comes first settles the reply: the function's return (or
    raise), the tool's timeout, or the cancellation of the reply's future
    (the execution ended, or the run ended an unclaimed speculation). What
    the thread brings back after that is dropped. With ``respond``, the
    thread claims the reply under ``lock`` (the loop's timeout and
    cancellation claim it the same way), has the loop settle the books, and
    then sends the reply itself.
    """

    __slots__ = (
        "host", "job", "lock", "record", "reply", "respond", "sent", "settled",
        "state", "timer", "tool",
    )  # fmt: skip

    def __init__(
        self, host: ToolHost, loop: asyncio.AbstractEventLoop, t: Tool, record: ToolCall,
        respond: Respond | None = None,
    ) -> None:  # fmt: skip
        self.host = host
        self.tool = t
        self.record = record
        self.respond = respond
        self.lock = threading.Lock()
        #: the reply is decided (by the thread, the timeout or a cancellation)
        self.settled = False
        #: the thread decided it: the loop only settles the books
        self.sent = False
        self.reply: asyncio.Future[Reply] = loop.create_future()
        self.job: asyncio.Future[tuple[Reply, BaseException | None]] | None = None
        #: "queued" for a thread, "running" on one, "over" once the function returned
        self.state = "queued"
        self.timer = None if t.timeout is None else loop.call_later(t.timeout, self._expire)
        self.reply.add_done_callback(self._ended)

    def run(
        self, context: contextvars.Context, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[Reply, BaseException | None]:
        """On the tool thread: validate, call, encode; send the reply if we may."""
        self.state = "running"
        name = self.tool.name
        try:
            outcome: tuple[Reply, BaseException | None] = (
                _ok(name, context.run(self.tool.validated(), *args, **kwargs)),
                None,
            )
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the sandbox
            outcome = _error(name, type(exc).__name__, str(exc)), exc
        finally:
            self.state = "over"
        if self.respond is not None:
            with self.lock:
                mine, self.settled = not self.settled, True
                self.sent = mine
            if mine:
                # the books are settled on the loop as the job lands (no wake-up
                # of our own), and before the host takes the sandbox's next
                # call (ToolHost.__call__ settles first)
                self.host._sent.append((self, outcome))
                self.respond(outcome[0])
        return outcome

    def landed(self, job: asyncio.Future[tuple[Reply, BaseException | None]]) -> None:
        """The thread is done with the call (or the call was cancelled before)."""
        if self.state != "running":  # cancelled while running: aclose() still names it
            self.host._threaded.discard(self)
        if self.sent:
            self.host._settle_sent()
            return
        if job.cancelled() or self.reply.done():
            return  # cancelled, timed out meanwhile, or sent by the thread: settled already
        failure = job.exception()
        if failure is None:
            reply, error = job.result()
        else:  # a BaseException the function raised (SystemExit...)
            reply, error = _error(self.tool.name, type(failure).__name__, str(failure)), failure
        self._settle(reply, error)

    def _settle(self, reply: Reply, error: BaseException | None) -> None:
        if self.reply.done() and not self.sent:
            return  # the execution ended meanwhile (cancelled): the outcome is dropped
        self.host._finish(self.record, error)  # sent: the sandbox has it, whatever came since
        if not self.reply.done():
            self.reply.set_result(reply)

    def _expire(self) -> None:
        with self.lock:
            if self.settled:
                return
            self.settled = True
        if self.reply.done():
            return
        error = TimeoutError(f"{self.tool.name}() did not return within {self.tool.timeout:g} s")
        self.host._finish(self.record, error)
        self.reply.set_result(_error(self.tool.name, "TimeoutError", str(error)))

    def _ended(self, reply: asyncio.Future[Reply]) -> None:
        with self.lock:
            self.settled = True
        if self.timer is not None:
            self.timer.cancel()
        if reply.cancelled():
            if self.job is not None:
                self.job.cancel()  # still waiting for a thread: it never starts
            self.host._cancelled(self.record)


def _ok(tool: str, value: Any) -> Reply:
    """The reply for a value a tool returned (TypeError if it cannot cross)."""
    return {"ok": True, "tool": tool, "value": wire.encode(value, f"the value {tool}() returned")}


def _ready(loop: asyncio.AbstractEventLoop, reply: Reply) -> asyncio.Future[Reply]:
    future: asyncio.Future[Reply] = loop.create_future()
    future.set_result(reply)
    return future


def _key(t: Tool, named: Mapping[str, Any]) -> str:
    """One text per call: the tool's name and its canonical arguments."""
    return t.name + "\x00" + canonical(named)


def _error(tool: str, kind: str, message: str) -> Reply:
    return {"ok": False, "tool": tool, "error": {"type": kind, "message": message}}
