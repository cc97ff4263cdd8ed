"""Host tools inside an IPython kernel: the in-kernel half of the Jupyter and E2B channels.

The Jupyter and E2B backends run code in an IPython kernel, so the worker's
call/reply frames are not available; this module is what a tool stub's
``__eager_rt_tools__.call`` (:class:`._tool_wire.Bridge`) runs there instead.
It travels as source inside the kernel's setup script (:mod:`._ipython_setup`,
next to ``_tool_wire``) and depends on the standard library only. The host
imports it too, for the names both ends must agree on.

Every channel starts the same way. The calling thread **announces** the call
on iopub, as a ``display_data`` whose bundle holds only :data:`CALL_MIME` ->
the request, sent through the kernel's own session with the running cell as
parent. It is sent at once from any thread and nothing waits for it, so the
host starts every announced call as soon as it sees it, while the cell keeps
running: ``asyncio.gather(a(), b())`` runs both calls at the same time. A
comm message would not do: the kernel reads comm messages on the shell
channel, which is busy with the cell. The reply comes back another way:

* **Jupyter** (:class:`StdinTransport`): through the kernel's own input
  request, which ipykernel serves on the stdin channel *while a cell runs*.
  A waiting thread asks with the prompt :data:`PROMPT` + JSON ``{"calls":
  [requests not yet carried by a prompt], "wait": [ids of every call waiting],
  "part": n}``; the host answers once at least one reply is ready, with the
  JSON list of every ready reply (in pieces of at most a few MB, a gateway's
  websocket takes no more than 10 MiB per message: an answer that starts with
  ``+`` has more to come, ``=`` is the last piece; ``part`` counts the pieces
  the kernel holds, so a host can tell a lost sequence). ipykernel serves one
  input request at a time, so one thread asks at a time (the *asker*); the
  others wait for the asker to hand them their reply or, once it has its own,
  the asking role. Each request also rides on a prompt once, so a call whose
  announcement a gateway's rate limit dropped still reaches the host.
  ``input()`` in user code is not this: it never carries the marker.
* **E2B** (:class:`SocketTransport`): E2B's code-interpreter server sends
  ``allow_stdin: False`` and forwards no input request, but it streams every
  ``display_data`` (as a result with the MIME type in ``extra``) while the
  cell runs. The host delivers the replies by running a few lines in another
  code context of the same sandbox (:func:`delivery_code`), which connect to
  a Unix socket this kernel listens on, under a name only the session knows
  (in Linux's abstract namespace: nothing on disk to clean up, gone with the
  kernel).

:func:`peek` is the Jupyter backend's :meth:`Session.peek`: evaluated as a
user expression of a silent execution, it reads plain data only.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

#: how often a main thread waiting for a reply lets a pending signal's handler run:
#: ``_thread.interrupt_main()`` and signals caught by another thread wake no lock wait
SIGNAL_CHECK_S = 0.05
#: the MIME type of the mark before each statement of a cell of several (see mark_statements)
LINE_MIME = "application/vnd.eager-rt.line+json"
#: the running cell's statement starts (None: one statement) and the statement the last
#: mark named, which a tool call carries too (see mark_statements)
_cell: dict[str, Any] = {"starts": None, "line": None}
#: the MIME type of a call's announcement (a ``display_data`` bundle with this key alone)
CALL_MIME = "application/vnd.eager-rt.call+json"
#: starts the prompt of an input request that collects tool replies
PROMPT = "\x1eeager_rt.tools\x1e"
MORE = "+"  #: an answer piece with more to come
LAST = "="  #: the last piece of an answer
#: the most characters of one answer piece (a gateway's websocket takes 10 MiB a message,
#: and JSON escaping inside the message may double a piece)
PIECE = 2 << 20


def _with_line(request: dict[str, Any]) -> dict[str, Any]:
    """``request`` with the line of the statement that made it, when a mark named one."""
    line = _cell["line"]
    return request if line is None else {**request, "line": line}


def _signal_check() -> float | None:
    """The longest a wait may block without running signal handlers (see SIGNAL_CHECK_S)."""
    return SIGNAL_CHECK_S if threading.current_thread() is threading.main_thread() else None


def announcer(
    kernel: Any, topic: Any = None, mime: str = CALL_MIME
) -> Callable[[dict[str, Any]], None]:
    """Sends an announcement (a call's, by default) on iopub, from any thread, without waiting.

    The parent is the kernel's current shell request (ipykernel falls back to
    the last one in threads the cell started), so the host files it under the
    running execution. Both streams are flushed first, through the same iopub
    thread: what the code wrote before reaches the host before the announcement.
    """
    session = kernel.session
    iopub = kernel.iopub_socket

    def announce(request: dict[str, Any]) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        content = {"data": {mime: request}, "metadata": {}, "transient": {}}
        session.send(iopub, "display_data", content, parent=kernel.get_parent("shell"), ident=topic)

    return announce


def mark_statements(ip: Any, statements: Any) -> None:
    """Before each top-level statement of a cell of several, say its line (:data:`LINE_MIME`).

    IPython runs a cell's statements one by one through ``run_code``; the
    mark goes out on iopub after the text the previous statement wrote (see
    :func:`announcer`), so the host
    puts every output that follows under that statement (``Output.line``,
    the rule of ``_statements``). A cell of one statement pays nothing.
    """
    kernel = getattr(ip, "kernel", None)
    if kernel is None or getattr(ip.run_code, "eager_rt_marks", False):
        return  # no kernel to send on, or marked already
    topic = getattr(getattr(ip, "display_pub", None), "topic", None)
    announce = announcer(kernel, topic, LINE_MIME)

    def pre_execute() -> None:
        # a silent execution (setup, peek) gets no pre_run_cell
        _cell["starts"] = _cell["line"] = None

    def pre_run_cell(info: Any) -> None:
        code = getattr(info, "raw_cell", None) or ""
        _cell["starts"] = statements.starts(code) if statements.several(code) else None

    ip.events.register("pre_execute", pre_execute)
    ip.events.register("pre_run_cell", pre_run_cell)
    run_code = ip.run_code

    async def marked_run_code(code_obj: Any, result: Any = None, *, async_: bool = False) -> Any:
        starts = _cell["starts"]
        first = _first_line(code_obj) if starts is not None else None
        if starts is not None and first is not None:
            _cell["line"] = statements.statement_at(starts, first)
            announce({"line": _cell["line"]})
        return await run_code(code_obj, result, async_=async_)

    marked_run_code.eager_rt_marks = True  # type: ignore[attr-defined]
    ip.run_code = marked_run_code


def _first_line(code_obj: Any) -> int | None:
    """The first line of the statement a module code object runs.

    Code with a top-level ``await`` starts with instructions on the code's
    own first line (1), not the statement's: those do not count.
    """
    lines = getattr(code_obj, "co_lines", None)
    if lines is not None:
        found = {line for _, _, line in lines() if line}
    else:  # Python < 3.10
        import dis

        found = {line for _, line in dis.findlinestarts(code_obj)}
    if code_obj.co_flags & _CO_COROUTINE and len(found) > 1:
        found.discard(code_obj.co_firstlineno)
    return min(found) if found else None


_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect into the kernel


def marked_line(data: Any) -> int | None:
    """The line a statement mark (a bundle of :data:`LINE_MIME` alone) carries, else None."""
    if not isinstance(data, dict) or len(data) != 1:
        return None
    mark = data.get(LINE_MIME)
    line = mark.get("line") if isinstance(mark, dict) else None
    return line if isinstance(line, int) else None


def stdin_asker(kernel: Any) -> Callable[[str], str]:
    """The kernel's own input request, kept aside (script semantics replace ``raw_input``)."""
    request_input = kernel._input_request  # a private method: the real thing, whatever
    # user code or our setup does to raw_input and getpass

    def ask(prompt: str) -> str:
        ident = kernel._parent_ident["shell"]
        return str(request_input(prompt, ident, kernel.get_parent("shell"), password=False))

    return ask


class StdinTransport:
    """The Jupyter transport: announce on iopub, collect replies through input requests."""

    def __init__(
        self, announce: Callable[[dict[str, Any]], None], ask: Callable[[str], str]
    ) -> None:
        self._announce = announce
        self._ask = ask
        # ``with`` on the lock itself: taking it is one C call, so an interrupt cannot
        # land between the taking and the block (inside Condition.__enter__ it can,
        # and the lock would stay held)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiting: set[int] = set()
        self._replies: dict[int, dict[str, Any]] = {}
        self._unsent: list[dict[str, Any]] = []  # requests no prompt has carried yet
        self._asking = False

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        request = _with_line(request)
        call = int(request["call"])
        with self._lock:
            self._waiting.add(call)  # before the announcement: a reply may come back at once
            self._unsent.append(request)
        try:
            self._announce(request)
            with self._lock:
                while call not in self._replies:
                    if self._asking:
                        self._cond.wait(_signal_check())
                    else:
                        self._collect()
                return self._replies.pop(call)
        finally:
            with self._lock:
                self._waiting.discard(call)
                self._replies.pop(call, None)

    def _collect(self) -> None:
        """Ask the host for the ready replies, holding the asking role (lock held on entry)."""
        self._asking = True
        pieces: list[str] = []
        try:
            while True:
                calls, self._unsent = self._unsent, []
                query = {"calls": calls, "wait": sorted(self._waiting), "part": len(pieces)}
                self._cond.release()
                try:
                    try:
                        answer = self._ask(PROMPT + json.dumps(query))
                    except BaseException:
                        with self._lock:
                            self._unsent[:0] = calls  # the host may not have seen them
                        raise
                finally:
                    self._cond.acquire()
                pieces.append(answer[1:])
                if not answer.startswith(MORE):
                    break
            for reply in json.loads("".join(pieces)):
                call = reply.get("call")
                if call in self._waiting:  # else its caller gave up (interrupted)
                    self._replies[call] = reply
        finally:
            self._asking = False
            self._cond.notify_all()


class SocketTransport:
    """The E2B transport: announce on iopub, take replies from a Unix socket.

    The socket is made at the first call; a ``path`` that starts with a NUL
    is a name in the abstract namespace, any other a file (its directory is
    made, for this user only). Each connection carries one piece of one
    delivery (a JSON header line ``{"batch", "last"}``, then the piece);
    pieces of a batch arrive in order and together form the JSON list of its
    replies.
    """

    def __init__(self, announce: Callable[[dict[str, Any]], None], path: str) -> None:
        self._announce = announce
        self.path = path
        # ``with`` on the lock itself: taking it is one C call, so an interrupt cannot
        # land between the taking and the block (inside Condition.__enter__ it can,
        # and the lock would stay held)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiting: set[int] = set()
        self._replies: dict[int, dict[str, Any]] = {}
        self._partial: dict[str, list[bytes]] = {}
        self._server: socket.socket | None = None

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        request = _with_line(request)
        call = int(request["call"])
        self._listen()
        with self._lock:
            self._waiting.add(call)
        try:
            self._announce(request)
            with self._lock:
                while call not in self._replies:
                    self._cond.wait(_signal_check())
                return self._replies.pop(call)
        finally:
            with self._lock:
                self._waiting.discard(call)
                self._replies.pop(call, None)

    def _listen(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            if not self.path.startswith("\0"):
                os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
                if os.path.exists(self.path):
                    os.unlink(self.path)
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(self.path)
            server.listen(16)
            self._server = server
        thread = threading.Thread(target=self._serve, name="eager_rt tool replies", daemon=True)
        thread.start()

    def _serve(self) -> None:
        server = self._server
        assert server is not None
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                data = bytearray()
                while True:
                    chunk = connection.recv(1 << 16)
                    if not chunk:
                        break
                    data += chunk
            head, _, body = bytes(data).partition(b"\n")
            try:
                header = json.loads(head)
                self._take(str(header["batch"]), bool(header["last"]), body)
            except (ValueError, KeyError, TypeError):
                continue  # not a delivery of ours

    def _take(self, batch: str, last: bool, body: bytes) -> None:
        with self._lock:
            pieces = self._partial.setdefault(batch, [])
            pieces.append(body)
            if not last:
                return
            del self._partial[batch]
            for reply in json.loads(b"".join(pieces)):
                call = reply.get("call")
                if call in self._waiting:
                    self._replies[call] = reply
            self._cond.notify_all()


def delivery_code(path: str, batch: str, last: bool, piece: bytes) -> str:
    """The code the host runs in another context of the sandbox to hand a piece to the kernel."""
    header = json.dumps({"batch": batch, "last": last}).encode() + b"\n"
    return (
        "def __eager_rt_deliver(path, data):\n"
        "    import socket\n"
        "    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:\n"
        "        s.connect(path)\n"
        "        s.sendall(data)\n"
        f"__eager_rt_deliver({path!r}, {header + piece!r})\n"
        "del __eager_rt_deliver\n"
    )


class _Raw:
    """Text whose repr is itself: the JSON a user expression hands back, unquoted."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def peek(namespace: dict[str, Any], names: list[Any], wire: Any) -> _Raw:
    """The plain-data values of ``names``, as JSON; reads the namespace, runs nothing of its own."""
    values = {}
    for name in names:
        if type(name) is str and name in namespace:
            value = namespace[name]
            if wire.plain(value):
                values[name] = wire.encode(value)
    return _Raw(json.dumps(values))


def install(ip: Any, wire: Any, mode: str, path: str | None = None) -> None:
    """Put ``__eager_rt_tools__`` (and ``__eager_rt_peek__``) into the kernel's builtins.

    ``mode`` is ``"stdin"`` (Jupyter) or ``"socket"`` (E2B, with ``path``).
    """
    import builtins

    kernel = getattr(ip, "kernel", None)
    if kernel is None:

        def transport(request: dict[str, Any]) -> dict[str, Any]:
            raise RuntimeError("host tools need an ipykernel kernel")

    else:
        announce = announcer(kernel, getattr(getattr(ip, "display_pub", None), "topic", None))
        if mode == "socket":
            if not path:
                raise ValueError("the socket transport needs a path")
            transport = SocketTransport(announce, path)
        else:
            transport = StdinTransport(announce, stdin_asker(kernel))
    wire.install(transport)
    namespace = ip.user_ns

    def peek_names(names: list[Any]) -> _Raw:
        return peek(namespace, names, wire)

    builtins.__eager_rt_peek__ = peek_names  # type: ignore[attr-defined]
