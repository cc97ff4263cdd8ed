"""Host tools as the sandbox sees them: the value codec and the call bridge.

This module runs on both sides. In the sandbox (shipped inside the worker's
payload, or inside the IPython setup of a Jupyter kernel or an E2B context)
it is what the generated tool stubs call: ``__eager_rt_tools__.call(name,
arguments)`` turns the arguments into plain JSON, hands them to the backend's
transport and turns the reply back into a value or a :class:`ToolError`. On
the host, :mod:`eager_rt.tools` uses the same codec, so a value means the same
on both ends. It depends on the standard library only (any CPython >= 3.8).

Values: JSON (str, int, float, bool, None, lists and dicts with str keys),
plus bytes; tuples travel as lists. Objects with ``tolist()`` from numpy
(arrays, numpy scalars) are converted. Nothing else crosses: a value the codec
cannot express raises ``TypeError`` in the sandbox, before the host is asked.
"""

from __future__ import annotations

import base64
import builtins
import itertools
import threading
from collections.abc import Awaitable, Callable
from typing import Any

BYTES = "$bytes"  #: ``{"$bytes": base64}`` is a bytes value
ESCAPED = "$dict"  #: ``{"$dict": {...}}`` is a dict whose own keys start with "$"
DEFAULT = "$default"  #: ``{"$default": true}``: the argument was left to the tool's default
#: what a call request the host's handler gets holds: the tool, its arguments, the call's
#: number, and the first line of the statement that made it (code of several statements)
REQUEST_FIELDS = ("tool", "args", "call", "line")


class ToolError(Exception):
    """A host tool failed. ``tool``, ``type`` and ``message`` say which, with what."""

    def __init__(self, tool: str, type: str, message: str) -> None:
        super().__init__(f"tool {tool}() failed: {type}: {message}")
        self.tool = tool
        self.type = type
        self.message = message


class _Default:
    """Marks a stub parameter left to the host function's own default (not a literal)."""

    def __repr__(self) -> str:
        return "<tool default>"


TOOL_DEFAULT = _Default()


#: exact types that cross as they are (a subclass takes the slow, checked path)
_AS_IS = frozenset({str, int, float, bool, type(None)})


class _Stuck(TypeError):
    """A part of a value that cannot cross; ``trail`` is its path, innermost first."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "{path} is a set; ..." with the path left out
        self.trail: list[str] = []


def encode(value: Any, path: str = "value") -> Any:
    """``value`` as plain JSON; raises TypeError naming the first part that cannot cross.

    ``path`` names ``value`` in that message; the path of the part is only
    worked out when something fails, so a large value costs one walk.
    """
    try:
        return _encode(value)
    except _Stuck as stuck:
        where = path + "".join(reversed(stuck.trail))
        raise TypeError(where + stuck.reason) from None


def _encode(value: Any) -> Any:
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is list or kind is tuple:
        out = []
        for i, v in enumerate(value):
            if type(v) in _AS_IS:
                out.append(v)
                continue
            try:
                out.append(_encode(v))
            except _Stuck as stuck:
                stuck.trail.append(f"[{i}]")
                raise
        return out
    if kind is dict:
        result = {}
        escape = False
        for k, v in value.items():
            if type(k) is not str:
                raise _Stuck(f" has a key of type {type(k).__name__}; keys must be str")
            if k[:1] == "$":
                escape = True
            if type(v) in _AS_IS:
                result[k] = v
                continue
            try:
                result[k] = _encode(v)
            except _Stuck as stuck:
                stuck.trail.append(f"[{k!r}]")
                raise
        return {ESCAPED: result} if escape else result
    return _encode_other(value)


def _encode_other(value: Any) -> Any:
    """Subclasses of the plain types, byte-likes, the default marker, numpy values."""
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {BYTES: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return _encode(list(value))
    if isinstance(value, dict):
        if any(not isinstance(k, str) for k in value):
            bad = next(k for k in value if not isinstance(k, str))
            raise _Stuck(f" has a key of type {type(bad).__name__}; keys must be str")
        return _encode({str.__str__(k): v for k, v in value.items()})
    if value is TOOL_DEFAULT:
        return {DEFAULT: True}
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return _encode(value.tolist())
    raise _Stuck(
        f" is a {type(value).__name__}; tool values must be str, int, float, bool, "
        "None, bytes, or lists and dicts of them"
    )


_PLAIN_SCALARS = (str, int, float, bool, type(None), bytes)


def plain(value: Any, budget: int = 1 << 20) -> bool:
    """Whether ``value`` is plain data, read without running any code of its own.

    Only the exact built-in types (no subclass can override ``__eq__`` or
    ``__iter__``), nested lists, tuples and str-keyed dicts of them, and at
    most ``budget`` elements and characters in all: what the runtime may read
    out of a session to speculate on (:meth:`Session.peek`).
    """
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _PLAIN_SCALARS:
            budget -= len(item) if kind in (str, bytes) else 1
        elif kind is list or kind is tuple:
            stack.extend(item)
            budget -= len(item) + 1
        elif kind is dict:
            if any(type(k) is not str for k in item):
                return False
            stack.extend(item.values())
            budget -= len(item) + 1
        else:
            return False
        if budget < 0:
            return False
    return True


def decode(data: Any) -> Any:
    """The value :func:`encode` made ``data`` from (tuples come back as lists)."""
    kind = type(data)
    if kind is list:
        return [v if type(v) in _AS_IS else decode(v) for v in data]
    if kind is dict:
        if len(data) == 1:
            if BYTES in data:
                return base64.b64decode(data[BYTES])
            if ESCAPED in data:
                return {k: decode(v) for k, v in data[ESCAPED].items()}
            if DEFAULT in data:
                return TOOL_DEFAULT
        return {k: v if type(v) in _AS_IS else decode(v) for k, v in data.items()}
    return data


def reply_value(reply: dict[str, Any]) -> Any:
    """A host reply as the value the call returns, or the :class:`ToolError` it raises."""
    if reply.get("ok"):
        return decode(reply.get("value"))
    error = reply.get("error") or {}
    raise ToolError(
        str(reply.get("tool", "?")), str(error.get("type", "Error")), str(error.get("message", ""))
    )


class Bridge:
    """What the stubs call: ``__eager_rt_tools__`` in the sandbox's builtins."""

    ToolError = ToolError
    DEFAULT = TOOL_DEFAULT

    def __init__(
        self,
        transport: Callable[[dict[str, Any]], dict[str, Any]],
        atransport: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        # request -> reply, blocking; called from any thread of the code
        self._transport = transport
        # the same, awaited on the caller's running loop (None: wait on a thread)
        self._atransport = atransport
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def call(self, name: str, arguments: dict[str, Any]) -> Any:
        """Call host tool ``name``; blocks this thread until the host replies."""
        return reply_value(self._transport(self._request(name, arguments)))

    async def acall(self, name: str, arguments: dict[str, Any]) -> Any:
        """The async form: calls run concurrently, the loop goes on meanwhile.

        With an async transport the reply wakes the loop directly (one
        wake-up); otherwise the blocking wait happens on an executor thread.
        """
        request = self._request(name, arguments)
        if self._atransport is not None:
            return reply_value(await self._atransport(request))
        import asyncio

        reply = await asyncio.get_running_loop().run_in_executor(None, self._transport, request)
        return reply_value(reply)

    def _request(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The request for one call, numbered (calls come from any thread)."""
        request = {"tool": name, "args": encode(arguments, "the arguments of " + name + "()")}
        with self._lock:
            request["call"] = next(self._ids)
        return request


def install(
    transport: Callable[[dict[str, Any]], dict[str, Any]],
    atransport: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None,
) -> Bridge:
    """Put the bridge where generated stubs look for it."""
    bridge = Bridge(transport, atransport)
    builtins.__eager_rt_tools__ = bridge  # type: ignore[attr-defined]
    return bridge
