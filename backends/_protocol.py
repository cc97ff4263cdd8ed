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
VERSION = 4
HEADER_SIZE = 4
#: a frame larger than this is a protocol error (a corrupted length prefix);
#: the worker never writes one (output is split, error reports are cut)
MAX_FRAME = 1 << 30
#: characters of output text per ``stream`` frame, at most: a frame stays below
#: 12 bytes a character (an escaped surrogate pair) times this, whatever is printed
FRAME_TEXT = 1 << 16


class Op:
    """Host -> worker: the ``op`` of a frame."""

    INIT = "init"  #: ``{"op", "protocol": VERSION, "options": {...}}``, once, first
    #: ``{"op", "id": n, "code": str, "nonce": str}``; the ``done`` of execution n must
    #: carry the same nonce, so a frame forged by the code cannot end it
    EXECUTE = "execute"
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
    #: ``{"type", "id": n | None, "name": "stdout"|"stderr", "text"}``; ``id`` None:
    #: written while no execution ran (a thread of earlier code)
    STREAM = "stream"
    #: ``{"type", "id": n | None, "data": {mime: value}, "metadata": {...}}``
    DISPLAY = "display"
    #: ``{"type", "id": n | None, "name", "bytes": k}``: k bytes of output past the
    #: ``max_output`` cap were not sent; once, before ``done`` (or, idle, at the next one)
    DROPPED = "dropped"
    #: ``{"type", "id", "nonce", "status": "ok"|"error"|"interrupted", "error": None|{...}}``
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
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"a frame of {len(body)} bytes exceeds the limit of {MAX_FRAME}")
    return len(body).to_bytes(HEADER_SIZE, "big") + body


def output_size(text: str) -> int:
    """Bytes ``text`` takes in UTF-8: what ``max_output`` counts, on both ends alike."""
    if text.isascii():  # O(1) in CPython: the common case costs nothing
        return len(text)
    step = 1 << 20  # bounded memory, even for a line of hundreds of megabytes
    return sum(
        len(text[i : i + step].encode("utf-8", "surrogatepass")) for i in range(0, len(text), step)
    )


def display_size(data: dict[str, Any]) -> int:
    """What a ``display`` bundle counts against ``max_output``: its values' sizes."""
    total = 0
    for value in data.values():
        if isinstance(value, str):
            total += output_size(value)
        else:
            total += len(json.dumps(value, separators=(",", ":")))
    return total


def cut_text(text: str, limit: int) -> str:
    """The longest prefix of ``text`` that is at most ``limit`` bytes in UTF-8."""
    head = text[:limit].encode("utf-8", "surrogatepass")  # each char is >= 1 byte
    if len(head) <= limit:
        return text[:limit]
    head = head[:limit]
    start = len(head) - 1  # back to the first byte of the last character
    while start > 0 and head[start] & 0xC0 == 0x80:
        start -= 1
    lead = head[start] if head else 0
    size = 1 if lead < 0x80 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    if start + size > len(head):  # that character was cut in two: leave it out
        head = head[:start]
    return head.decode("utf-8", "surrogatepass")


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
    # not in sys.modules: user code must not find the worker by name
    "_m=types.ModuleType('_eager_rt_worker')\n"
    "exec(compile(_s,'<eager_rt worker>','exec'),_m.__dict__)\n"
    "del _r,_s\n"
    "_m.main(_c)\n"
)

#: modules the worker uses besides its own; it runs from source sent over a
#: pipe, so they travel inside its payload (as ``_BUNDLED``) instead of being imported
BUNDLED_MODULES = ("_protocol", "_figures", "_tool_wire", "_statements")

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
