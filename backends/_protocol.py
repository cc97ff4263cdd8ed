"""The worker protocol: the one definition of what host and worker say to each other.

Both ends import this module: the host (:mod:`eager_rt.backends._framed`) as
part of the package, the worker (:mod:`eager_rt.backends._worker`) from the
source the host ships to it at start-up. So it depends on the standard
library only and runs on any CPython >= 3.8. ``docs/protocol.md`` is the
specification in prose; this is its code.

Start-up: the host runs ``python -c BOOTSTRAP`` (:func:`worker_command`) with
the channel as the worker's stdin/stdout, writes :func:`worker_payload` (the
worker's source, length-prefixed), then the ``init`` frame. The worker answers
``ready`` or, if it cannot serve this host (another protocol version, bad
options), ``fatal`` with the reason.

Frames, both directions: a 4-byte big-endian length, then that many bytes of
ASCII JSON (one object).
"""

from __future__ import annotations

import json
import os
from typing import Any

#: bumped whenever a frame's meaning changes; host and worker must agree
VERSION = 3
HEADER_SIZE = 4
#: a frame larger than this is a protocol error (a corrupted length prefix)
MAX_FRAME = 1 << 30


class Op:
    """Host -> worker: the ``op`` of a frame."""

    INIT = "init"  #: ``{"op", "protocol": VERSION, "options": {...}}``, once, first
    EXECUTE = "execute"  #: ``{"op", "id": n, "code": str}``
    #: ``{"op", "id": n}``, written just before a SIGINT, so an interrupt that
    #: arrives before execution n began still stops it
    INTERRUPT = "interrupt"
    #: ``{"op", "call": k, "tool", "ok": bool, "value" | "error": {"type", "message"}}``:
    #: the host's answer to tool call k
    REPLY = "reply"
    #: ``{"op", "id": n, "names": [str]}``: the plain-data values of these names, answered
    #: by ``peeked``; served between executions only
    PEEK = "peek"
    PING = "ping"  #: answered by ``pong``
    SHUTDOWN = "shutdown"  #: the worker exits after the current frame


class Msg:
    """Worker -> host: the ``type`` of a frame."""

    READY = "ready"  #: ``{"type", "pid", "python", "executable", "protocol"}``
    STREAM = "stream"  #: ``{"type", "id", "name": "stdout"|"stderr", "text"}``
    DISPLAY = "display"  #: ``{"type", "id", "data": {mime: value}, "metadata": {...}}``
    #: ``{"type", "id", "status": "ok"|"error"|"interrupted", "error": None|{...}}``
    DONE = "done"
    #: ``{"type", "id", "call": k, "tool", "args": {param: value}}``: code of execution
    #: ``id`` calls a host tool; it waits for the ``reply`` with the same ``call``
    CALL = "call"
    #: ``{"type", "id", "values": {name: value}}``: the names of a ``peek`` bound to plain
    #: data (encoded like tool values); others are left out
    PEEKED = "peeked"
    PONG = "pong"
    FATAL = "fatal"  #: ``{"type", "reason"}``, sent just before the worker ends itself


class ProtocolError(ValueError):
    """The bytes on the channel are not frames of this protocol."""


def encode(message: dict[str, Any]) -> bytes:
    """One frame. ASCII-escaped JSON, so lone surrogates in text survive the trip."""
    body = json.dumps(message, separators=(",", ":")).encode("ascii")
    return len(body).to_bytes(HEADER_SIZE, "big") + body


def frame_length(header: bytes) -> int:
    """The body length a header announces; raises :class:`ProtocolError` if impossible."""
    n = int.from_bytes(header, "big")
    if n > MAX_FRAME:
        raise ProtocolError(f"frame length {n} exceeds the limit; the channel is corrupted")
    return n


def decode(body: bytes) -> dict[str, Any]:
    """A frame's body back into its message."""
    try:
        message = json.loads(body.decode("ascii"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ProtocolError(f"frame is not ASCII JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message


class FrameDecoder:
    """Turns bytes as they arrive, in any pieces, into messages; used by both ends."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need = -1  # body length of the frame at the front, once its header is in

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def pending(self) -> bool:
        """Bytes of a frame not yet returned are buffered."""
        return bool(self._buf)

    def next(self) -> dict[str, Any] | None:
        """The next complete message, or None until more bytes are fed."""
        buf = self._buf
        if self._need < 0:
            if len(buf) < HEADER_SIZE:
                return None
            self._need = frame_length(bytes(buf[:HEADER_SIZE]))
        end = HEADER_SIZE + self._need
        if len(buf) < end:
            return None
        body = bytes(buf[HEADER_SIZE:end])
        del buf[:end]
        self._need = -1
        return decode(body)


def init_frame(options: dict[str, Any]) -> dict[str, Any]:
    return {"op": Op.INIT, "protocol": VERSION, "options": options}


def version_mismatch(host: object, worker: object) -> str | None:
    """The sentence both ends use when their versions differ, else None."""
    if host == worker:
        return None
    return (
        f"protocol mismatch: the host speaks worker protocol {host}, the worker speaks {worker}; "
        "host and worker come from different eager_rt versions"
    )


# --------------------------------------------------------------------------- start-up

# The bootstrap reads the worker's source, length-prefixed, from fd 0 with raw
# reads (a buffered read could swallow the frames that follow), runs it as a
# module named ``_eager_rt_worker`` and calls its ``main()``.
BOOTSTRAP = (
    "import sys\n"
    # '' (the working directory) would let a json.py there shadow the worker's
    # own imports; it is put back for user code once the worker is loaded
    "_c=sys.path[:1]==[''] and sys.path.pop(0)==''\n"
    "import os,types\n"
    "def _r(n):\n"
    "    b=b''\n"
    "    while len(b)<n:\n"
    "        c=os.read(0,n-len(b))\n"
    "        if not c: raise SystemExit(0)\n"
    "        b+=c\n"
    "    return b\n"
    "_s=_r(int.from_bytes(_r(4),'big'))\n"
    "_m=types.ModuleType('_eager_rt_worker')\n"
    "sys.modules['_eager_rt_worker']=_m\n"
    "exec(compile(_s,'<eager_rt worker>','exec'),_m.__dict__)\n"
    "del _r,_s\n"
    "_m.main(_c)\n"
)

#: modules the worker uses besides its own; it runs from source sent over a
#: pipe, so they travel inside its payload (as ``_BUNDLED``) instead of being imported
BUNDLED_MODULES = ("_protocol", "_figures", "_tool_wire")

_payload: list[bytes] = []


def worker_command(python: str) -> list[str]:
    """The argv that starts a worker; :func:`worker_payload` must then be written to its stdin."""
    return [python, "-c", BOOTSTRAP]


def worker_payload() -> bytes:
    """The worker's source with its bundled modules, length-prefixed, as the bootstrap expects."""
    if not _payload:
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "_worker.py"), "rb") as f:
            source = f.read()
        bundled = {}
        for name in BUNDLED_MODULES:
            with open(os.path.join(here, name + ".py"), encoding="utf-8") as f:
                bundled[name] = f.read()
        source += f"\n_BUNDLED = {bundled!r}\n".encode()
        _payload.append(len(source).to_bytes(HEADER_SIZE, "big") + source)
    return _payload[0]
