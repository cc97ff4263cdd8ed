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
import inspect
import json
import keyword
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from eager_rt import clock
from eager_rt.backends import _tool_wire as wire

__all__ = [
    "Approval",
    "Tool",
    "ToolCall",
    "ToolHost",
    "as_tools",
    "stub_source",
    "tool",
]

#: a reply to the sandbox: ``{"ok": True, "value": ...}`` or ``{"ok": False, "error": {...}}``
Reply = dict[str, Any]
#: decides whether a call of a tool that requires approval may run: (tool, arguments) -> allowed
Approval = Callable[["Tool", dict[str, Any]], "bool | Awaitable[bool]"]


@dataclass(frozen=True, slots=True)
class Tool:
    """A host function the generated code may call, and how it may be called.

    * ``read_only``: calling it changes nothing anywhere, so it may be called
      ahead of the code (speculation) and more than once.
    * ``timeout``: seconds one call may take; past it the sandbox gets a
      ``ToolError`` of type ``TimeoutError``.
    * ``requires_approval``: each call waits, the code paused mid-statement,
      for the run's approval callback.
    """

    fn: Callable[..., Any]
    name: str
    read_only: bool = False
    timeout: float | None = None
    requires_approval: bool = False
    signature: inspect.Signature = field(init=False, repr=False, compare=False)
    is_async: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or keyword.iskeyword(self.name):
            raise ValueError(f"a tool's name must be a Python identifier, not {self.name!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, not {self.timeout!r}")
        object.__setattr__(self, "signature", inspect.signature(self.fn))
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.fn))

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.fn) or ""


@overload
def tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    read_only: bool = False,
    timeout: float | None = None,
    requires_approval: bool = False,
) -> Tool: ...


@overload
def tool(
    fn: None = None,
    *,
    name: str | None = None,
    read_only: bool = False,
    timeout: float | None = None,
    requires_approval: bool = False,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    read_only: bool = False,
    timeout: float | None = None,
    requires_approval: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Declare how a host function may be called: ``tool(fn, read_only=True)`` or ``@tool(...)``."""

    def make(f: Callable[..., Any]) -> Tool:
        return Tool(
            f,
            name or str(getattr(f, "__name__", "")),
            read_only=read_only,
            timeout=timeout,
            requires_approval=requires_approval,
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
            text += f": {inspect.formatannotation(p.annotation)!r}"
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
        returns = f" -> {inspect.formatannotation(t.signature.return_annotation)!r}"
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

    @property
    def wasted(self) -> bool:
        """A speculative call the code never made."""
        return self.speculative and not self.claimed

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


def canonical(arguments: Mapping[str, Any]) -> str:
    """One text per argument set, for matching a call against a speculated one."""
    return json.dumps(wire.encode(dict(arguments)), sort_keys=True, separators=(",", ":"))


class ToolHost:
    """Runs the tool calls that come out of a session, and keeps their record.

    Hand it to ``Session.execute(..., tools=host)``; the backend calls it with
    each request (``{"tool", "args", "call"}``) and returns its reply to the
    sandbox. ``t0`` is the run's start, for the records' times.
    """

    def __init__(
        self,
        tools: Mapping[str, Tool],
        *,
        approve: Approval | None = None,
        t0: float | None = None,
        on_call: Callable[[ToolCall], None] | None = None,
        on_return: Callable[[ToolCall], None] | None = None,
    ) -> None:
        self.tools = dict(tools)
        self.approve = approve
        self.t0 = clock.now() if t0 is None else t0
        self.on_call = on_call
        self.on_return = on_return
        self.calls: list[ToolCall] = []
        self._validated: dict[str, Callable[..., Any]] = {}

    # ------------------------------------------------------------------ the handler

    async def __call__(self, request: Mapping[str, Any]) -> Reply:
        name = str(request.get("tool", ""))
        t = self.tools.get(name)
        if t is None:
            return _error(name, "NameError", f"no tool named {name!r}")
        try:
            named = wire.decode(request.get("args") or {})
            if not isinstance(named, dict):
                raise TypeError("tool arguments must come as a mapping of parameter names")
            args, kwargs = self._rebuild(t, named)
        except (TypeError, ValueError) as exc:
            return _error(name, type(exc).__name__, str(exc))
        record = self._record(t, named)
        try:
            if t.requires_approval:
                record.approved = await self._approved(t, named)
                if not record.approved:
                    raise PermissionError(f"the call of {name}() was not approved")
            value = await self._invoke(t, args, kwargs)
            encoded = wire.encode(value, f"the value {name}() returned")
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the sandbox
            self._finish(record, exc)
            return _error(name, type(exc).__name__, str(exc))
        self._finish(record, None)
        return {"ok": True, "tool": name, "value": encoded}

    # ------------------------------------------------------------------ pieces

    @staticmethod
    def _rebuild(t: Tool, named: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """The call's ``(args, kwargs)`` from the stub's parameter values, checked by binding."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        params = list(t.signature.parameters.values())
        positional = any(p.kind is p.VAR_POSITIONAL for p in params)
        unknown = set(named) - {p.name for p in params}
        if unknown:
            raise TypeError(f"{t.name}() got unexpected arguments {sorted(unknown)}")
        for p in params:
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

    def _validated_fn(self, t: Tool) -> Callable[..., Any]:
        fn = self._validated.get(t.name)
        if fn is None:
            from pydantic import validate_call

            try:
                fn = validate_call(t.fn)
            except Exception:  # noqa: BLE001 - a signature pydantic cannot model: bind-checked only
                fn = t.fn
            self._validated[t.name] = fn
        return fn

    async def _invoke(self, t: Tool, args: list[Any], kwargs: dict[str, Any]) -> Any:
        fn = self._validated_fn(t)
        if t.is_async:
            job: Awaitable[Any] = fn(*args, **kwargs)
        else:
            job = asyncio.to_thread(fn, *args, **kwargs)
        if t.timeout is None:
            return await job
        try:
            return await asyncio.wait_for(job, t.timeout)
        except TimeoutError:
            raise TimeoutError(f"{t.name}() did not return within {t.timeout:g} s") from None

    async def _approved(self, t: Tool, named: dict[str, Any]) -> bool:
        if self.approve is None:
            raise PermissionError(f"{t.name}() requires approval and the run has no approve=")
        verdict = self.approve(t, named)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return bool(verdict)

    def _record(self, t: Tool, named: dict[str, Any], *, speculative: bool = False) -> ToolCall:
        shown = {k: v for k, v in named.items() if v is not wire.TOOL_DEFAULT}
        record = ToolCall(
            id=len(self.calls) + 1,
            tool=t.name,
            arguments=shown,
            started=clock.now() - self.t0,
            read_only=t.read_only,
            speculative=speculative,
            claimed=not speculative,
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


def _error(tool: str, kind: str, message: str) -> Reply:
    return {"ok": False, "tool": tool, "error": {"type": kind, "message": message}}
