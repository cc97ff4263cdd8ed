"""The framed worker: one persistent Python interpreter that runs code for a host.

This file is the other end of :mod:`eager_rt.backends._framed`. The host sends
it as source over the worker's stdin (see :mod:`eager_rt.backends._protocol`,
which defines the wire format for both ends and travels in the same payload),
so the same launch works on a local interpreter, in a virtualenv, or inside a
read-only container where nothing is installed. It therefore depends on the
standard library only, runs on any CPython >= 3.8 and imports nothing from
eager_rt. ``docs/protocol.md`` describes the conversation.

The code runs with script semantics, so that a program executed in chunks
prints exactly what one run of it prints: a bare expression shows nothing, and
matplotlib figures are displayed (as ``image/png``) by ``plt.show()`` only,
never flushed at the end of an execution. ``display(obj)`` is a builtin that
sends the object's IPython ``_repr_*_`` MIME bundle.

The channel is private: at start-up the worker moves its original stdin and
stdout to high, close-on-exec descriptors, points fd 0 at /dev/null and fds 1
and 2 at pipes it drains into ``stream`` frames. Nothing user code writes, at
any level (print, ``os.write(1, ...)``, a child process, closing fd 1), can
reach or corrupt the channel.
"""

from __future__ import annotations
import __future__

import base64
import builtins
import codecs
import collections
import contextlib
import fcntl
import functools
import importlib.util
import io
import json
import linecache
import os
import resource
import select
import signal
import sys
import threading
import time
import traceback
import types
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

_T = TypeVar("_T")

#: lets code ``await`` at top level (``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT``, without importing ast)
_TOP_LEVEL_AWAIT = 0x2000
_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE: such code is a coroutine to run
#: how often the main thread, waiting while another thread reads the channel, lets a
#: held SIGINT raise
_HELD_WAIT_S = 0.05
_CHANNEL_FD_MIN = 200  # keep the channel away from the low fds user code tends to close
_FLUSH_THRESHOLD = 1 << 16  # a line-buffered stream also flushes when this much is pending
_READ_SIZE = 1 << 16
_DRAIN_READS = 16  # reads of _READ_SIZE per pipe per pass: fd output goes out in bounded steps
_ERROR_TEXT = 1 << 18  # characters of an error's message or traceback a done frame carries
#: the real os._exit (install() wraps os._exit to send pending text first)
_hard_exit = os._exit
_SIGINT = {signal.SIGINT}
_PIPE_BUF = getattr(select, "PIPE_BUF", 512)  # a pipe write this small is atomic
# output coalescing: up to _BURST text frames go out at once in any _COALESCE_S
# window; beyond that, complete lines wait for the end of the window
_COALESCE_S = 0.005
_BURST = 8
#: the deepest stack searched for the running top-level statement (deeper: output unplaced)
_STATEMENT_WALK = 64


def _bundled(name: str) -> types.ModuleType:
    """A module shipped in the payload, loaded once as ``_eager_rt<name>``.

    Imported on the host (tests do), the worker has no payload: it takes the
    package's own module.
    """
    if "_BUNDLED" not in globals():
        return importlib.import_module("eager_rt.backends." + name)
    qualified = "_eager_rt" + name
    module = sys.modules.get(qualified)
    if module is None:
        source = globals()["_BUNDLED"][name]
        module = types.ModuleType(qualified)
        sys.modules[qualified] = module
        exec(compile(source, f"<eager_rt {name.strip('_')}>", "exec"), module.__dict__)
    return module


#: the wire format (``_protocol``), bound when the worker starts (see ``main``)
if TYPE_CHECKING:
    import asyncio

    from eager_rt.backends import _protocol as protocol
else:
    protocol = None


# --------------------------------------------------------------------------- channel


class _SigintHold:
    """``with hold:`` on the main thread: a SIGINT that comes inside the block raises only
    once the block is left (other threads run no signal handler: nothing to hold).

    The channel's bookkeeping must never be cut half-way by a KeyboardInterrupt:
    a lock taken inside ``Condition.__enter__`` and never released, or a reader
    flag left set, hangs the worker for good. A counter the handler reads, not
    the signal mask: blocking SIGINT runs pending handlers as the call returns,
    and one raising there would leave the signal blocked.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.pending = False  # a SIGINT came inside: re-delivered when the block ends
        self._main = threading.main_thread().ident

    def __enter__(self) -> None:
        if threading.get_ident() == self._main:
            self.depth += 1

    def __exit__(self, *exc: object) -> None:
        if threading.get_ident() == self._main:
            self.depth -= 1
            if not self.depth and self.pending:
                self.pending = False
                signal.pthread_kill(self._main, signal.SIGINT)  # its handler runs now

    def defer(self) -> bool:
        """For the SIGINT handler: True if the signal must wait for the block's end."""
        if self.depth:
            self.pending = True
        return bool(self.depth)


class _Channel:
    """The private framed channel. ``lock`` also orders fd output against frames.

    One thread at a time reads (the *reader*); any thread may wait for a tool
    reply. Whoever reads files every complete frame: a tool ``reply`` under
    its call number, anything else in ``inbox`` for the serve loop.
    """

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self.lock = threading.RLock()
        self.hold = _SigintHold()
        self._frames = protocol.FrameDecoder()
        self._poller = select.poll()
        self._poller.register(rfd, select.POLLIN)
        #: the read end of the signal wakeup fd (see :meth:`watch_signals`), -1 before
        self.signal_fd = -1
        self._signal_w = -1
        self._signal_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        self._cond = threading.Condition(threading.Lock())
        self._reading = False
        self._eof = False
        self.inbox: collections.deque[dict[str, Any]] = collections.deque()
        self._replies: dict[int, dict[str, Any]] = {}
        self._awaited: set[int] = set()
        # calls awaited on an event loop: their future, resolved by whoever files the reply
        self._futures: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        # loops whose reader of the channel fd stood down while another thread read
        self._parked: set[asyncio.AbstractEventLoop] = set()
        #: the execution the main thread runs (None while idle) and what to call
        #: there when an ``interrupt`` frame for it arrives during a tool wait
        self.running_id: Any = None
        self.on_interrupt: Callable[[], None] | None = None

    def recv(self) -> dict[str, Any] | None:
        """The next host frame that is not a tool reply, or None once the host went away."""
        return self._pump(lambda: self.inbox.popleft() if self.inbox else None, False)

    def await_reply(self, call: int, send: Callable[[], None]) -> dict[str, Any] | None:
        """Send tool call ``call`` with ``send``, block until the host replies (None: it went away).

        The call is registered before it is sent: a thread reading meanwhile
        files the reply instead of dropping it. In the main thread the wait
        ends with KeyboardInterrupt on an interrupt, like any blocking call
        of user code; the reply, if it comes later, is dropped.
        """
        try:
            with self.hold, self._cond:
                self._awaited.add(call)
            send()
            # only the main thread gets signals: only there must the wait be interruptible
            main = threading.current_thread() is threading.main_thread()
            return self._pump(lambda: self._replies.pop(call, None), main)
        finally:
            with self.hold, self._cond:
                self._awaited.discard(call)
                self._replies.pop(call, None)

    def _pump(
        self, ready: Callable[[], dict[str, Any] | None], interruptible: bool
    ) -> dict[str, Any] | None:
        while True:
            if interruptible:
                self._interrupt_arrived()
            reader = False
            try:
                with self.hold, self._cond:
                    found = ready()
                    if found is not None or self._eof:
                        return found
                    if self._reading:
                        # another thread reads; a SIGINT held meanwhile is raised
                        # when the block ends, so the main thread looks up often
                        self._cond.wait(_HELD_WAIT_S if interruptible else None)
                        continue
                    self._reading = reader = True
                # poll with SIGINT deliverable: an interrupt ends the wait
                if interruptible and not self._wait_interruptibly():
                    continue  # woken by a signal whose handler did not raise
                if not self._fill():
                    self._set_eof()
            finally:
                if reader:
                    self._stop_reading()

    def watch_signals(self) -> None:
        """Make every signal to this process wake the channel's interruptible waits.

        A signal that lands after the interpreter last checked for one but
        before it blocks in ``poll`` or ``epoll_wait`` would otherwise wait for
        the next frame: an interrupt of code waiting for a slow tool would be
        lost. Call in the main thread.
        """
        wake_r, wake_w = os.pipe()
        self.signal_fd = _high_fd(wake_r)
        wake_w_high = _high_fd(wake_w)
        os.close(wake_r)
        os.close(wake_w)
        for fd in (self.signal_fd, wake_w_high):
            os.set_blocking(fd, False)
        self._signal_w = wake_w_high
        signal.set_wakeup_fd(wake_w_high, warn_on_full_buffer=False)
        self._signal_poller = select.poll()
        self._signal_poller.register(self.rfd, select.POLLIN)
        self._signal_poller.register(self.signal_fd, select.POLLIN)

    def rearm_signals(self) -> None:
        """Before an execution: put the wakeup fd back if the code's event loop cleared it."""
        if self.signal_fd < 0:
            return
        previous = signal.set_wakeup_fd(self._signal_w, warn_on_full_buffer=False)
        if previous not in (-1, self._signal_w):
            signal.set_wakeup_fd(previous)  # one the code set (its own loop's): leave it

    def wake_loop_on_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        """Have ``loop`` (in the main thread) wake for every signal, like the waits above."""
        if (
            self.signal_fd >= 0
            and loop not in self._signal_loops
            and threading.current_thread() is threading.main_thread()
        ):
            loop.add_reader(self.signal_fd, self.drain_signals)
            self._signal_loops.add(loop)

    def drain_signals(self) -> None:
        """Empty the wakeup pipe; the signals' handlers run on their own."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self.signal_fd, _READ_SIZE):
                pass

    def _wait_interruptibly(self) -> bool:
        """Block until a frame arrives (True) or a signal came (False)."""
        if self.signal_fd < 0:
            while not self._poller.poll(-1):
                pass
            return True
        readable = False
        for fd, _ in self._signal_poller.poll(-1):
            if fd == self.signal_fd:
                self.drain_signals()
            else:
                readable = True
        return readable

    async def await_reply_async(self, call: int, send: Callable[[], None]) -> dict[str, Any] | None:
        """:meth:`await_reply` for a coroutine: the running loop reads the channel.

        The loop watches the channel fd while a call waits, so the reply
        wakes it once, with no thread in between. While another thread is
        the reader, the loop stands down and that thread resolves the future.
        Cancelling the awaiting task (an interrupt does) drops a later reply.
        ``send`` sends the call once the reply has somewhere to go.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        registered = False
        try:
            with self.hold:
                with self._cond:
                    if self._eof:
                        return None
                    self._awaited.add(call)
                    self._futures[call] = (loop, future)
                    registered = True
                    watching = any(o is loop for o, f in self._futures.values() if f is not future)
                self.wake_loop_on_signals(loop)  # an interrupt must end the wait (watch_signals)
                if not watching:
                    loop.add_reader(self.rfd, self._loop_read, loop)
            send()
            reply: dict[str, Any] | None = await future
            return reply
        finally:
            if registered:
                with self.hold:
                    with self._cond:
                        self._awaited.discard(call)
                        self._replies.pop(call, None)
                        self._futures.pop(call, None)
                        last = not any(other is loop for other, _ in self._futures.values())
                        if last:
                            self._parked.discard(loop)
                    if last:
                        loop.remove_reader(self.rfd)

    def _loop_read(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop's reader callback: file what arrived, never block the loop."""
        with self.hold:
            with self._cond:
                if self._reading:  # another thread reads: it files our replies, then re-arms us
                    self._parked.add(loop)
                    loop.remove_reader(self.rfd)
                    return
                self._reading = True
            try:
                # a thread may have read the bytes between the wake-up and here
                if select.select([self.rfd], [], [], 0)[0] and not self._fill():
                    self._set_eof()
            finally:
                self._stop_reading()
        self._interrupt_arrived()

    def _stop_reading(self) -> None:
        with self.hold:
            with self._cond:
                self._reading = False
                self._cond.notify_all()
                parked, self._parked = self._parked, set()
            for loop in parked:  # a loop that stood down for us watches the fd again
                with contextlib.suppress(RuntimeError):  # that loop was closed meanwhile
                    loop.call_soon_threadsafe(self._rearm, loop)

    def _rearm(self, loop: asyncio.AbstractEventLoop) -> None:
        with self.hold:
            with self._cond:
                waiting = any(other is loop for other, _ in self._futures.values())
            if waiting:
                loop.add_reader(self.rfd, self._loop_read, loop)
        if waiting:
            self._interrupt_arrived()  # the thread that read may have filed one

    def _interrupt_arrived(self) -> None:
        """In a tool wait of the main thread: act on an ``interrupt`` frame for its execution.

        The host sends that frame, then SIGINT. A tool wait reads the channel
        anyway, so the frame alone ends it: the interrupt holds even if the
        signal comes late or not at all. ``on_interrupt`` raises, or not when
        the signal already did (the worker keeps count).
        """
        if (
            not self.inbox  # the common case, on every reply: nothing to look at
            or self.on_interrupt is None
            or threading.current_thread() is not threading.main_thread()
        ):
            return
        if self._take_interrupts(lambda exec_id: exec_id == self.running_id, limit=1):
            self.on_interrupt()

    def _set_eof(self) -> None:
        with self.hold, self._cond:
            self._eof = True
            self._cond.notify_all()
            for call in list(self._futures):
                self._resolve(call, None)

    def _resolve(self, call: int, reply: dict[str, Any] | None) -> None:
        """Hand ``reply`` to the future awaiting ``call`` (``_cond`` held)."""
        import asyncio

        loop, future = self._futures.pop(call)
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            _settle(future, reply)
        else:
            with contextlib.suppress(RuntimeError):  # that loop was closed meanwhile
                loop.call_soon_threadsafe(_settle, future, reply)

    def _fill(self) -> bool:
        """Read what is there and file every complete frame; False at the end of the channel.

        Held, so no KeyboardInterrupt falls between the read and the filing
        and loses a frame.
        """
        with self.hold:
            chunk = os.read(self.rfd, _READ_SIZE)
            if chunk:
                self._frames.feed(chunk)
                with self._cond:
                    while (message := self._frames.next()) is not None:
                        if message.get("op") == protocol.Op.REPLY:
                            if message.get("call") in self._futures:
                                self._resolve(message["call"], message)
                            elif message.get("call") in self._awaited:
                                self._replies[message["call"]] = message
                        else:
                            self.inbox.append(message)
        return bool(chunk)

    def input_waiting(self) -> bool:
        """Whether a frame (or part of one) from the host is already here."""
        return bool(self.inbox) or self._frames.pending or bool(self._poller.poll(0))

    def interrupt_queued(self, exec_id: Any) -> bool:
        """Whether the host asked, in an ``interrupt`` frame, to stop execution ``exec_id``.

        The host writes that frame just before it sends SIGINT, so a SIGINT that
        reached the worker before the execution began finds it here. Interrupt
        frames are taken out of the inbox; any other frame stays queued.
        """
        with self.hold:
            with self._cond:
                reading = self._reading
            if not reading and self._poller.poll(0):
                self._fill()
            return exec_id in self._take_interrupts(lambda _: True)

    def _take_interrupts(self, which: Callable[[Any], bool], limit: int | None = None) -> list[Any]:
        """Take the ``interrupt`` frames for the executions ``which`` accepts; their ids."""
        taken: list[Any] = []
        with self.hold, self._cond:
            kept: collections.deque[dict[str, Any]] = collections.deque()
            for message in self.inbox:
                if (
                    message.get("op") == protocol.Op.INTERRUPT
                    and (limit is None or len(taken) < limit)
                    and which(message.get("id"))
                ):
                    taken.append(message.get("id"))
                else:
                    kept.append(message)
            self.inbox = kept
        return taken

    def send(self, message: dict[str, Any]) -> None:
        data = protocol.encode(message)
        with self.lock:
            # a pipe write of up to PIPE_BUF bytes is atomic: whole or not at all
            if len(data) <= _PIPE_BUF and os.write(self.wfd, data) == len(data):
                return
            # Several writes: a KeyboardInterrupt between two of them would
            # leave half a frame, so SIGINT waits until the frame is out
            with self.hold:
                view = memoryview(data)
                while view:
                    written = os.write(self.wfd, view)
                    view = view[written:]


def _settle(future: asyncio.Future[Any], reply: dict[str, Any] | None) -> None:
    """Resolve ``future`` on its loop's thread, unless it was cancelled meanwhile."""
    if not future.done():
        future.set_result(reply)


# --------------------------------------------------------------------------- the worker


class _Buffer:
    """Text written to one of the code's streams and not sent yet (the worker's side)."""

    __slots__ = ("at_line_start", "fd", "name", "parts", "size")

    def __init__(self, name: str, fd: int) -> None:
        self.name = name
        self.fd = fd
        self.parts: list[str] = []
        self.size = 0
        self.at_line_start = True


def _text_stream(worker: Worker, buf: _Buffer) -> io.TextIOBase:
    """``sys.stdout``/``sys.stderr``: text that becomes ``stream`` frames.

    Line-buffered, and coalesced: a complete line, or an explicit flush, goes
    out at once unless ``_BURST`` frames already went out in the current
    ``_COALESCE_S`` window; then the drain thread sends it when the window
    ends. Sparse prints are streamed immediately without waking any thread,
    and a tight print loop (``flush=True`` or not) costs a few frames per
    window, not one per line. Writing to one stream first sends what the other
    holds, so stdout/stderr interleaving is exact.

    The class is made here, around ``worker``, so that the object user code
    sees as ``sys.stdout`` holds no attribute leading to the worker or its
    channel: only this closure does.
    """

    class _OutStream(io.TextIOBase):
        encoding = "utf-8"
        errors = "strict"
        mode = "w"
        line_buffering = True
        name = f"<{buf.name}>"

        @property
        def buffer(self) -> io.FileIO:
            # bytes written here go through the fd pipe, which is drained in order
            worker.guarded(worker.send_text)
            return io.FileIO(buf.fd, "w", closefd=False)

        def writable(self) -> bool:
            return True

        def reconfigure(self, **options: Any) -> None:
            """Accepted and ignored: the text is always UTF-8 and flushed per line.

            Scripts often call ``sys.stdout.reconfigure(encoding="utf-8")``; that
            must not fail here.
            """

        def isatty(self) -> bool:
            return False

        def fileno(self) -> int:
            return buf.fd

        def close(self) -> None:
            # user code closing sys.stdout must not cost the session its output
            self.flush()

        @property
        def closed(self) -> bool:
            return False

        def write(self, s: str) -> int:
            if not isinstance(s, str):
                raise TypeError(f"write() argument must be str, not {type(s).__name__}")
            if s:
                if worker.forked:
                    os.write(buf.fd, s.encode("utf-8", "replace"))
                elif worker.captured is not None:
                    worker.captured.append((buf.name, s))
                elif worker.output_left == 0:
                    # past the cap: count it and return, no frame, no syscall
                    with worker.channel.lock:
                        worker.drop(buf.name, protocol.output_size(s))
                else:
                    line = None
                    if worker.statements:  # asked once a line: the rest of it stays with it
                        line = worker.statement_line() if buf.at_line_start else worker.text_line
                    worker.guarded(worker.write_text, buf, s, line)
            return len(s)

        def flush(self) -> None:
            # a flush is coalesced like a line; os._exit sends what waits (see install)
            if buf.parts and not worker.forked:
                worker.guarded(worker.line_done)

    return _OutStream()


class Worker:
    """State of the one interpreter: the user namespace, the streams, the channel."""

    def __init__(self, channel: _Channel, private_stderr: int) -> None:
        self.channel = channel
        self.private_stderr = private_stderr
        self.exec_id: Any = None
        self.running = False  # SIGINT raises KeyboardInterrupt only while this is set
        self.idle_sigint = False  # a SIGINT came while no code ran
        # Each interrupt of the host is a frame, then a SIGINT; whichever the
        # code meets first raises KeyboardInterrupt, the other is then absorbed
        self.signals_owed = 0  # interrupts raised from their frame: their SIGINT is absorbed
        self.frames_owed = 0  # SIGINTs that raised in this execution: a frame read later is too
        self.window_start = 0.0  # time.monotonic() when the current coalescing window began
        self.window_frames = 0  # stream frames sent in that window
        self.timer_armed = False  # coalesced text is waiting for the drain thread
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.forked = False
        self.memory_limit: int | None = None
        #: the execution whose output is being written, None while idle (background output)
        self.stream_id: Any = None
        #: the execution's code has several top-level statements: output says which wrote it
        self.statements = False
        self.cell_name = ""  # the running execution's file name (``<cell-N>``)
        #: the stream line of the top-level statement the held text came from (None: unknown)
        self.text_line: int | None = None
        self._code = ""  # the running execution's code, for statement_line
        self._starts: list[int] | None = None
        self._statements = _bundled("_statements")
        self._module_code: types.CodeType | None = None  # the running execution's, once seen
        self._last_lineno: int | None = None  # the line statement_line looked up last
        self._last_start: int | None = None  # and the start of its statement
        self.max_output: int | None = None  #: bytes of output each execution may send
        self.output_left: int | None = None  # what is left of it now
        self.dropped = 0  # bytes past the cap, not sent; said in a "dropped" frame
        self.dropped_name = "stdout"  # the stream where dropping began
        self.flags = 0
        self.loop: Any = None  # the event loop of top-level ``await``, made at first use
        self.pid = os.getpid()
        self.namespace = self._make_main()
        self._decoders: dict[int, Any] = {}
        self._fd_names: dict[int, str] = {}
        self._fd_keep: dict[int, int] = {}
        self._poll = select.poll()
        self.stdout = _Buffer("stdout", 1)
        self.stderr = _Buffer("stderr", 2)
        #: while not None, text for stdout/stderr is collected here, not sent
        self.captured: list[tuple[str, str]] | None = None
        self.figures = _bundled("_figures").FigureRenderer(self.capture, self.write_named)
        self._future_mask = 0
        for feature in __future__.all_feature_names:
            self._future_mask |= getattr(__future__, feature).compiler_flag

    # -- set-up

    @staticmethod
    def _make_main() -> dict[str, Any]:
        """A fresh ``__main__``, so user classes and functions pickle like a script's."""
        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = main
        return main.__dict__

    def redirect_fds(self) -> None:
        """Point fds 1 and 2 at pipes drained by a thread, fd 0 at /dev/null."""
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        for fd, name in ((1, "stdout"), (2, "stderr")):
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.dup2(w, fd)
            # a spare write end: restores fd 1/2 if user code closes them, and
            # keeps the pipe open so the drain never sees EOF
            self._fd_keep[fd] = _high_fd(w)
            os.close(w)
            self._fd_names[r] = name
            self._poll.register(r, select.POLLIN)
            self._decoders[r] = codecs.getincrementaldecoder("utf-8")("replace")
        # (a closure, not the bound method: a Thread object is visible to user code)
        _daemon("eager_rt-drain", lambda: self._drain_loop())

    def watch_host(self) -> None:
        """End the worker the moment the host's end of the channel closes, even while busy.

        The serve loop sees the host go only when it reads, which it does not
        while code runs; without this a worker whose host was killed would run
        a ``while True`` on forever (in a container, keep the container up).
        """
        rfd = self.channel.rfd
        _daemon("eager_rt-host-watch", lambda: _exit_on_hangup(rfd))

    def install(self) -> None:
        """Put the worker's hooks where user code looks: streams, builtins, signals.

        Each is a closure or an object that holds none of the worker's state,
        so nothing user code can reach by attributes (``sys.stdout._worker``)
        or by asking the garbage collector who refers to those objects leads
        to the channel. (Code that walks closures or stack frames on purpose
        still can; what it cannot do is end an execution: see the nonce.)
        """
        worker = self
        stdout, stderr = _text_stream(self, self.stdout), _text_stream(self, self.stderr)
        sys.stdout = sys.__stdout__ = stdout  # type: ignore[assignment,misc]
        sys.stderr = sys.__stderr__ = stderr  # type: ignore[assignment,misc]
        sys.stdin = sys.__stdin__ = open(os.devnull)  # type: ignore[misc]  # noqa: SIM115
        sys.argv = [""]
        builtins.input = _no_input

        def display(*objs: Any, **kwargs: Any) -> None:
            """Show each object as its richest MIME bundle (the ``_repr_*_`` protocol)."""
            worker.display(*objs)

        builtins.display = display  # type: ignore[attr-defined]
        _bundled("_tool_wire").install(
            lambda request: worker.call_tool(request),
            lambda request: worker.acall_tool(request),
        )
        os.environ.setdefault("MPLBACKEND", "Agg")
        sys.meta_path.insert(0, _PyplotHook(lambda caller: worker.send_figures(caller)))

        def on_sigint(signum: int, frame: types.FrameType | None) -> None:
            if worker.signals_owed:
                # the SIGINT of an interrupt raised when its frame came; it may come
                # late (Podman's client relays it), even during a later execution
                worker.signals_owed -= 1
                return
            if not worker.running:
                # stale (its execution already ended) or early (the next one has
                # not started yet): _run() asks the channel which
                worker.idle_sigint = True
                return
            if worker.channel.hold.defer():
                return  # re-delivered once the channel's bookkeeping or frame is done
            worker.frames_owed += 1
            raise KeyboardInterrupt

        def on_interrupt_frame() -> None:
            if worker.frames_owed:
                worker.frames_owed -= 1  # its SIGINT has raised already
                return
            worker.signals_owed += 1
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, on_sigint)
        self.channel.on_interrupt = on_interrupt_frame
        real_exit = os._exit

        @functools.wraps(real_exit)
        def _exit(status: int) -> NoReturn:
            # text a flush left to the coalescing timer goes out before the end
            if not worker.forked:
                with contextlib.suppress(BaseException):
                    worker.guarded(worker.send_text)
            real_exit(status)

        os._exit = _exit
        os.register_at_fork(after_in_child=lambda: worker.after_fork())

    def apply_options(self, options: dict[str, Any]) -> None:
        self.figures.ahead = bool(options.get("prerender_figures", True))
        cap = options.get("max_output")
        self.max_output = self.output_left = None if cap is None else int(cap)
        limit = options.get("memory_limit")
        if limit:
            self.memory_limit = int(limit)
            resource.setrlimit(resource.RLIMIT_AS, (self.memory_limit, self.memory_limit))

    def after_fork(self) -> None:
        # a forked child (multiprocessing) must never write frames: its prints
        # go to the fd pipes, which the parent drains
        self.forked = True
        fds = [self.channel.rfd, self.channel.wfd, self.channel.signal_fd]
        with contextlib.suppress(ValueError):  # forked from a thread: not ours to change
            fds.append(signal.set_wakeup_fd(-1))  # its signals must not wake the worker
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)

    # -- output (every frame goes out under the channel lock, through guarded())

    def guarded(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn`` holding the channel lock, with SIGINT held off until it returns.

        A KeyboardInterrupt raised half-way through writing a frame would
        corrupt the channel: one that comes meanwhile is raised once the frame
        is out (see :class:`_SigintHold`; other threads need no hold).
        """
        with self.channel.hold, self.channel.lock:
            return fn(*args)

    def _send_stream(self, name: str, text: str, line: int | None = None) -> None:
        left = self.output_left
        if left is not None:
            size = protocol.output_size(text)
            if size > left:  # the cap: keep what fits, count the rest
                head = protocol.cut_text(text, left) if left else ""
                self.drop(name, size - protocol.output_size(head))
                self.output_left = 0
                if not head:
                    return
                text = head
            else:
                self.output_left = left - size
        step = protocol.FRAME_TEXT
        for start in range(0, len(text), step):  # no frame grows with the text
            frame = {
                "type": protocol.Msg.STREAM,
                "id": self.stream_id,
                "name": name,
                "text": text[start : start + step] if len(text) > step else text,
            }
            if line is not None:
                frame["line"] = line
            self.channel.send(frame)
        now = time.monotonic()
        if now - self.window_start >= _COALESCE_S:
            self.window_start = now
            self.window_frames = 0
        self.window_frames += 1

    def drop(self, name: str, count: int) -> None:
        if not self.dropped:
            self.dropped_name = name
        self.dropped += count

    def report_dropped(self) -> None:
        """Say how much output the cap held back since the last report (caller holds the lock)."""
        if self.dropped:
            self.channel.send(
                {
                    "type": protocol.Msg.DROPPED,
                    "id": self.stream_id,
                    "name": self.dropped_name,
                    "bytes": self.dropped,
                }
            )
            self.dropped = 0

    def send_text(self) -> None:
        """Send what both streams hold now (at most one holds text: see write_text)."""
        self.timer_armed = False
        for stream in (self.stdout, self.stderr):
            if stream.parts:
                text = "".join(stream.parts)
                stream.parts = []
                stream.size = 0
                self._send_stream(stream.name, text, self.text_line)

    def write_text(self, stream: _Buffer, text: str, line: int | None = None) -> None:
        other = self.stderr if stream is self.stdout else self.stdout
        if other.parts or (line != self.text_line and stream.parts):
            self.send_text()  # a frame holds one stream's text, of one statement
        self.text_line = line
        if stream.at_line_start:
            # fd output found now was written after every text we hold (the
            # previous line's first write checked too) and before this text:
            # send in exactly that order (within a line, order is not checked)
            ready = self._poll.poll(0)
            if ready:
                self.send_text()
                for r, _ in ready:
                    self._drain_one(r)
        stream.at_line_start = text[-1] == "\n"
        stream.parts.append(text)
        stream.size += len(text)
        if stream.size >= _FLUSH_THRESHOLD:
            self.send_text()
        elif "\n" in text:
            self.line_done()

    def line_done(self) -> None:
        """A line is complete: send it now, or when the coalescing interval is up."""
        if self.window_frames < _BURST or time.monotonic() - self.window_start >= _COALESCE_S:
            self.send_text()
        elif not self.timer_armed:
            self.timer_armed = True
            with contextlib.suppress(BlockingIOError):
                os.write(self._wake_w, b"\0")

    def drain_fds(self) -> None:
        """Forward whatever sits in the fd pipes now. Caller holds the channel lock."""
        for r, _ in self._poll.poll(0):  # one syscall when, as usual, both are empty
            self._drain_one(r)

    def _drain_one(self, r: int) -> None:
        chunks = []
        # bounded: a child writing without pause must not keep this loop (and the lock)
        for _ in range(_DRAIN_READS):
            try:
                chunk = os.read(r, _READ_SIZE)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            if not chunk:
                break
            chunks.append(chunk)
        if chunks:
            text = self._decoders[r].decode(b"".join(chunks))
            if text:
                self._send_stream(self._fd_names[r], text)

    def _drain_loop(self) -> None:
        """Forward fd-level output as it comes, and coalesced text when its interval is up."""
        fds = [*self._fd_names, self._wake_r]
        while True:
            timeout = None
            if self.timer_armed:
                timeout = max(0.0, self.window_start + _COALESCE_S - time.monotonic())
            try:
                ready, _, _ = select.select(fds, [], [], timeout)
            except InterruptedError:
                continue
            except OSError:
                return
            self.guarded(self._on_wake, ready)

    def _on_wake(self, ready: list[int]) -> None:
        if self._wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, _READ_SIZE)
        pipes = [r for r in ready if r != self._wake_r]
        if pipes:
            self.send_text()  # Python-level text written before this fd output
            for r in pipes:
                self._drain_one(r)
        elif self.timer_armed and time.monotonic() - self.window_start >= _COALESCE_S:
            self.send_text()

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[tuple[str, str]]]:
        """Collect what stdout/stderr receive meanwhile, for work done between executions."""
        collected: list[tuple[str, str]] = []
        self.captured = collected
        try:
            yield collected
        finally:
            self.captured = None

    def write_named(self, name: str, text: str) -> None:
        """Write as user code's ``print`` would, to ``sys.stdout``/``sys.stderr``."""
        (sys.stdout if name == "stdout" else sys.stderr).write(text)

    def display(self, *objs: Any, **kwargs: Any) -> None:
        """The ``display()`` builtin: MIME bundles from the IPython ``_repr_*_`` protocol."""
        for obj in objs:
            data, metadata = _mime_bundle(obj, self.figures)
            self.send_display(data, metadata)

    def send_display(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        if self.forked:
            return  # a forked child has no channel (and maybe a lock held forever)
        line = self.statement_line() if self.statements else None
        self.guarded(self._send_display, data, metadata, line)

    def statement_line(self) -> int | None:
        """The line of the code's top-level statement that runs now in this thread.

        Found by walking up the stack to the execution's module frame, which
        only the main thread's stack leads to (not another thread's, not a
        task's): only asked while an execution with several statements runs,
        once per line of text, so it is kept lean. The module's code object
        is recognised by identity once found, a write straight from it (a
        print at the top level, in a loop) is found without walking, and the
        last line looked up is remembered.
        """
        frame: types.FrameType | None = sys._getframe(2)  # the writer's caller
        module = self._module_code
        if frame is None or frame.f_code is not module:
            frame = self._module_frame(frame)
            if frame is None:
                return None
        lineno = frame.f_lineno
        if lineno != self._last_lineno:
            # the statement's first line, not the line within it (a loop's
            # body): text of one statement stays in one frame
            if self._starts is None:
                self._starts = self._statements.starts(self._code)
            self._last_start = int(self._statements.statement_at(self._starts, lineno))
            self._last_lineno = lineno
        return self._last_start

    def _module_frame(self, frame: types.FrameType | None) -> types.FrameType | None:
        """The execution's module frame on the stack from ``frame`` up, if it is there."""
        for _ in range(_STATEMENT_WALK):
            if frame is None:
                return None
            code = frame.f_code
            if code is self._module_code or (
                code.co_name == "<module>" and code.co_filename == self.cell_name
            ):
                self._module_code = code
                return frame
            frame = frame.f_back
        return None

    def _send_display(
        self, data: dict[str, Any], metadata: dict[str, Any], line: int | None = None
    ) -> None:
        self.send_text()
        self.drain_fds()
        left = self.output_left
        if left is not None:
            size = protocol.display_size(data)
            if size > left:
                self.drop("display", size)
                self.output_left = 0
                return
            self.output_left = left - size
        frame = {"type": protocol.Msg.DISPLAY, "id": self.stream_id, "data": data}
        frame["metadata"] = metadata
        if line is not None:
            frame["line"] = line
        self.channel.send(frame)

    def send_figures(self, caller: types.FrameType | None = None) -> None:
        """Every open matplotlib figure as an ``image/png`` display, then closed.

        ``caller``: the frame that called ``plt.show()``; when that is the
        last statement of the code, what drawing does to a figure rendered
        ahead may be left until the execution is over (see ``_figures``).
        """
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return
        try:
            numbers = plt.get_fignums()
        except Exception:  # noqa: BLE001 - a broken pyplot must not break the session
            return
        # parsing the code is worth it only if a figure may be shown from a child
        last = caller is not None and self.figures.rendering_ahead() and self._ends_the_code(caller)
        for num in numbers:
            fig = plt.figure(num)
            try:
                data = _figure_bundle(fig, self.figures.png(fig, last_statement=last))
            except Exception as exc:  # noqa: BLE001
                self.write_named("stderr", f"could not render figure {num}: {exc!r}\n")
                continue
            finally:
                if not self.figures.unsettled(fig):
                    plt.close(fig)  # else once settled, after the execution
            self.send_display(data, {})

    def _ends_the_code(self, frame: types.FrameType) -> bool:
        """``frame`` is the code's own top level, in its last statement, a call ``….show(…)``.

        Then no user code runs after the show in this execution.
        """
        filename = f"<cell-{self.exec_id}>"
        if frame.f_code.co_filename != filename or frame.f_code.co_name != "<module>":
            return False
        import ast

        try:
            last = ast.parse("".join(linecache.getlines(filename))).body[-1]
        except (SyntaxError, IndexError):
            return False
        if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)):
            return False
        func = last.value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        end = last.end_lineno or last.lineno
        return name == "show" and last.lineno <= frame.f_lineno <= end

    # -- execution

    def execute(self, exec_id: Any, code: str, nonce: Any) -> None:
        """Run one execution; its ``done`` carries ``nonce``, which only this frame holds.

        (Kept in this call's locals, not on the worker, where code that found
        the channel would find it too.)
        """
        if self.dropped or self.stdout.parts or self.stderr.parts:
            self.guarded(self._end_idle)
        self.exec_id = self.stream_id = exec_id
        self.output_left = self.max_output
        self.channel.rearm_signals()
        self.cell_name = f"<cell-{exec_id}>"
        self.statements = self._statements.several(code)
        self.text_line = None
        self._code, self._starts = code, None
        self._module_code, self._last_lineno, self._last_start = None, None, None
        for fd, keep in self._fd_keep.items():
            os.dup2(keep, fd)  # user code may have closed fd 1 or 2
        # Script semantics: figures are displayed by plt.show(), never behind the
        # code's back at the end of an execution. A program run in chunks (eager)
        # often builds one figure over several executions; flushing it at the
        # end of the first would show an empty plot and lose the real one.
        status, error = self._run(exec_id, code)
        while True:
            try:
                self.guarded(self._finish, exec_id, nonce, status, error)
                return
            except KeyboardInterrupt:
                # a SIGINT handler installed by user code raised after the code
                # ended; "done" must still go out, or the host would wait forever
                continue

    def _finish(
        self, exec_id: Any, nonce: Any, status: str, error: dict[str, Any] | None
    ) -> None:
        # one pass under the lock: pending text, fd output, then "done", in order
        self.send_text()
        self.drain_fds()
        self.report_dropped()
        self.channel.send(
            {
                "type": protocol.Msg.DONE,
                "id": exec_id,
                "nonce": nonce,
                "status": status,
                "error": error,
            }
        )
        # what threads of the code write from now on is background output,
        # under a fresh budget (reported at the next execution's start)
        self.stream_id = None
        self.output_left = self.max_output
        self.statements, self.text_line, self._code, self._starts = False, None, "", None

    def _end_idle(self) -> None:
        """Before an execution: send the background text still held and what was dropped."""
        self.send_text()
        self.report_dropped()

    def _run(self, exec_id: Any, code: str) -> tuple[str, dict[str, Any] | None]:
        filename = f"<cell-{exec_id}>"
        lines = code.splitlines(True)
        linecache.cache[filename] = (len(code), None, lines, filename)
        self.frames_owed = 0  # (a signal owed stays owed: see on_sigint)
        self.channel.running_id = exec_id
        try:
            self.running = True
            try:
                if self.idle_sigint:
                    self.idle_sigint = False
                    if self.channel.interrupt_queued(exec_id):
                        raise KeyboardInterrupt("interrupted before the code started")
                compiled = compile(code, filename, "exec", self.flags | _TOP_LEVEL_AWAIT, True)
                self.flags |= compiled.co_flags & self._future_mask
                if compiled.co_flags & _CO_COROUTINE:
                    self._run_coroutine(eval(compiled, self.namespace))  # noqa: S307
                else:
                    exec(compiled, self.namespace)
            finally:
                self.running = False
                self.channel.running_id = None
        except KeyboardInterrupt as exc:
            return "interrupted", _error_info(exc, exc.__traceback__, filename)
        except MemoryError as exc:
            if self.memory_limit:
                self._die_of_memory(exc)
            return "error", _error_info(exc, exc.__traceback__, filename)
        except BaseException as exc:  # noqa: BLE001 - SystemExit too: the worker lives on
            return "error", _error_info(exc, exc.__traceback__, filename)
        return "ok", None

    def _run_coroutine(self, coro: Any) -> None:
        """Code with a top-level ``await``: run it on the worker's one event loop.

        The loop persists, so tasks the code leaves behind run on at its next
        top-level ``await``, as in IPython.
        """
        import asyncio

        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            self.channel.wake_loop_on_signals(self.loop)
        task = self.loop.create_task(coro)
        try:
            self.loop.run_until_complete(task)
        except BaseException:
            if not task.done():  # interrupted while the loop waited: end the code's task
                task.cancel()
                with contextlib.suppress(BaseException):
                    self.loop.run_until_complete(task)
            raise

    def peek(self, peek_id: Any, names: list[Any]) -> dict[str, Any]:
        """The values of ``names`` that are plain data, read without running user code."""
        wire = _bundled("_tool_wire")
        values = {}
        for name in names:
            if isinstance(name, str) and name in self.namespace:
                value = self.namespace[name]
                if wire.plain(value):
                    values[name] = wire.encode(value)
        return {"type": protocol.Msg.PEEKED, "id": peek_id, "values": values}

    def call_tool(self, request: dict[str, Any]) -> dict[str, Any]:
        """The tool bridge's transport: send a ``call`` frame, wait for its ``reply``."""
        if self.forked:
            raise RuntimeError("host tools cannot be called from a forked child process")
        message = {"type": protocol.Msg.CALL, "id": self.exec_id, **request}
        if self.statements:
            message["line"] = self.statement_line()
        reply = self.channel.await_reply(
            request["call"], lambda: self.guarded(self._send_call, message)
        )
        if reply is None:
            raise RuntimeError("the host went away while a tool call was waiting")
        return reply

    async def acall_tool(self, request: dict[str, Any]) -> dict[str, Any]:
        """:meth:`call_tool` for async stubs: the reply wakes the awaiting loop directly."""
        if self.forked:
            raise RuntimeError("host tools cannot be called from a forked child process")
        message = {"type": protocol.Msg.CALL, "id": self.exec_id, **request}
        if self.statements:
            message["line"] = self.statement_line()
        reply = await self.channel.await_reply_async(
            request["call"], lambda: self.guarded(self._send_call, message)
        )
        if reply is None:
            raise RuntimeError("the host went away while a tool call was waiting")
        return reply

    def _send_call(self, message: dict[str, Any]) -> None:
        self.send_text()  # what the code printed before the call goes out before it
        self.drain_fds()
        self.channel.send(message)

    def settle_figures(self) -> None:
        """After an execution: finish the shows it left to finish (see ``_figures``)."""
        try:
            self.figures.settle()
        except KeyboardInterrupt:
            # a raising SIGINT handler of the user's, in a late interrupt: settle
            # goes on with the figures it had not reached
            self.figures.settle()

    def render_ahead(self) -> None:
        """Idle: warm matplotlib up, start rendering changed figures before ``plt.show()``."""
        try:
            self.figures.render_ahead(self.channel.input_waiting)
        except KeyboardInterrupt:
            # a raising SIGINT handler of the user's cut the warm-up short;
            # figures are rendered at plt.show() only from now on
            self.figures.ahead = False

    def _die_of_memory(self, exc: MemoryError) -> None:
        """Out of ``memory_limit``: end like an OOM-killed container would."""
        said = f": {exc}" if str(exc) else ""
        reason = (
            f"out of memory: the code exceeded memory_limit={self.memory_limit} bytes "
            f"(MemoryError{said})"
        )
        try:
            self.channel.send({"type": protocol.Msg.FATAL, "reason": reason})
        finally:
            os.kill(os.getpid(), signal.SIGKILL)

    def serve(self) -> None:
        channel = self.channel
        while True:
            try:
                self.render_ahead()
                message = channel.recv()
            except KeyboardInterrupt:
                # only if user code put back a raising SIGINT handler: idle, ignore it
                continue
            if message is None:
                return
            op = message.get("op")
            if op == protocol.Op.EXECUTE:
                self.figures.request_arrived()
                self.execute(message.get("id"), message.get("code", ""), message.get("nonce"))
                self.settle_figures()
                self.figures.idle_started()
            elif op == protocol.Op.INTERRUPT:
                pass  # for an execution that has ended: the SIGINT came too late
            elif op == protocol.Op.PEEK:
                channel.send(self.peek(message.get("id"), message.get("names") or []))
            elif op == protocol.Op.PING:
                channel.send({"type": protocol.Msg.PONG})
            elif op == protocol.Op.SHUTDOWN:
                return
            else:
                channel.send({"type": protocol.Msg.FATAL, "reason": f"unknown op {op!r}"})


def _high_fd(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _CHANNEL_FD_MIN)


def _daemon(name: str, target: Callable[[], None]) -> None:
    """A worker thread that never takes SIGINT from the main thread, which runs the code."""

    def run() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGINT)
        target()

    threading.Thread(target=run, name=name, daemon=True).start()


def _exit_on_hangup(rfd: int) -> None:
    """Block until the channel's writer (the host) is gone, then end the process at once."""
    poller = select.poll()
    # no POLLIN: frames waiting to be read must not wake this thread; a hang-up
    # (pipe) or the peer's shutdown (socket: POLLRDHUP) always does
    poller.register(rfd, getattr(select, "POLLRDHUP", 0))
    while True:
        try:
            if poller.poll():
                break
        except InterruptedError:
            continue
    # not the wrapped os._exit: with the host gone a write may block for ever
    _hard_exit(0)


def _cut(text: str) -> str:
    """Bound one field of an error report: a done frame stays small whatever was raised."""
    if len(text) <= _ERROR_TEXT:
        return text
    return f"{text[:_ERROR_TEXT]}[... {len(text) - _ERROR_TEXT} characters dropped]"


def _no_input(prompt: object = "") -> str:
    raise EOFError("input() is not available: the code runs without a terminal")


# --------------------------------------------------------------------------- errors


def _error_info(
    exc: BaseException, tb: types.TracebackType | None, filename: str
) -> dict[str, Any]:
    """``ename``/``evalue``/traceback lines/``lineno``, with the worker's own frames cut off."""
    # the first entry is the worker frame that ran exec(); the user's start after it
    while tb is not None and tb.tb_frame.f_globals is globals():
        tb = tb.tb_next
    # the outermost frame of the executed code: the top-level statement that ran
    lineno = None
    walk = tb
    while walk is not None and lineno is None:
        if walk.tb_frame.f_code.co_filename == filename:
            lineno = walk.tb_lineno
        walk = walk.tb_next
    if lineno is None and isinstance(exc, SyntaxError) and exc.filename == filename:
        lineno = exc.lineno
    try:
        text = _cut("".join(traceback.format_exception(type(exc), exc, tb)))
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the error
        text = f"{type(exc).__name__}: <unprintable>\n"
    try:
        own_syntax = isinstance(exc, SyntaxError) and exc.filename == filename
        # the cell's own name ("(<cell-3>, line 2)") is ours, not the user's: lineno says it
        evalue = _cut(str(exc.msg) if own_syntax else str(exc))  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        evalue = "<unprintable>"
    return {
        "ename": type(exc).__name__,
        "evalue": evalue,
        "traceback": text.rstrip("\n").split("\n"),
        "lineno": lineno,
    }


# --------------------------------------------------------------------------- rich output

_REPR_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("text/latex", "_repr_latex_"),
    ("application/json", "_repr_json_"),
    ("application/javascript", "_repr_javascript_"),
)


def _jsonable(mime: str, value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        if mime.startswith("image/") and mime != "image/svg+xml":
            return base64.b64encode(bytes(value)).decode("ascii")
        return bytes(value).decode("utf-8", "replace")
    return value


def _mime_bundle(obj: Any, figures: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    data: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    if _is_figure(obj):
        return _figure_bundle(obj, figures.png(obj)), metadata
    method = getattr(obj, "_repr_mimebundle_", None)
    if callable(method) and not isinstance(obj, type):
        result = method(include=None, exclude=None)
        if isinstance(result, tuple):
            result, meta = result
            metadata.update(meta or {})
        for mime, value in (result or {}).items():
            data[mime] = _jsonable(mime, value)
    for mime, name in _REPR_METHODS:
        if mime in data:
            continue
        method = getattr(obj, name, None)
        if not callable(method) or isinstance(obj, type):
            continue
        value = method()
        if value is None:
            continue
        if isinstance(value, tuple):
            value, meta = value
            metadata[mime] = meta
        data[mime] = _jsonable(mime, value)
    data.setdefault("text/plain", repr(obj))
    json.dumps(data)  # fail here, in the caller's code, rather than in the channel
    return data, metadata


def _is_figure(obj: Any) -> bool:
    return type(obj).__module__.startswith("matplotlib.") and hasattr(obj, "savefig")


def _figure_bundle(fig: Any, png: bytes) -> dict[str, Any]:
    return {
        "image/png": base64.b64encode(png).decode("ascii"),
        "text/plain": repr(fig),
    }


class _PyplotHook:
    """Import hook: once ``matplotlib.pyplot`` is loaded, ``plt.show()`` displays the figures.

    Patching at import time (not after an execution) matters: a script that
    imports pyplot and calls ``show()`` in one go must not hit Agg's "cannot
    show" warning on stderr. ``show_figures`` is a closure: the hook sits in
    ``sys.meta_path``, where user code can see it.
    """

    def __init__(self, show_figures: Callable[[types.FrameType | None], None]) -> None:
        self._show = show_figures
        self._busy = False

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "matplotlib.pyplot" or self._busy:
            return None
        self._busy = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _PatchingLoader(spec.loader, self._show)  # type: ignore[assignment]
        return spec


class _PatchingLoader:
    def __init__(
        self, loader: Any, show_figures: Callable[[types.FrameType | None], None]
    ) -> None:
        self._loader = loader
        self._show = show_figures

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        show_figures = self._show

        def show(*args: Any, **kwargs: Any) -> None:
            show_figures(sys._getframe(1))

        show.__doc__ = "Display every open figure as an image/png output and close it."
        module.show = show  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


# --------------------------------------------------------------------------- entry point


def main(cwd_on_path: bool = False) -> None:
    """Serve the host; ``cwd_on_path``: give user code the working directory on sys.path."""
    # the original stdin/stdout become the private channel, out of user code's reach
    global protocol
    protocol = _bundled("_protocol")
    rfd = _high_fd(0)
    wfd = _high_fd(1)
    private_stderr = _high_fd(2)
    channel = _Channel(rfd, wfd)
    init = channel.recv()
    if init is None:
        return
    mismatch = protocol.version_mismatch(init.get("protocol"), protocol.VERSION)
    if init.get("op") != protocol.Op.INIT or mismatch:
        reason = mismatch or f"expected an init frame first, got {init.get('op')!r}"
        channel.send({"type": protocol.Msg.FATAL, "reason": reason})
        return
    worker = Worker(channel, private_stderr)
    worker.watch_host()
    worker.redirect_fds()
    worker.install()
    channel.watch_signals()
    if cwd_on_path:
        sys.path.insert(0, "")  # as for ``python -c``: modules beside the data import
    try:
        worker.apply_options(init.get("options") or {})
    except Exception as exc:  # noqa: BLE001
        channel.send({"type": protocol.Msg.FATAL, "reason": f"bad worker options: {exc!r}"})
        return
    channel.send(
        {
            "type": protocol.Msg.READY,
            "pid": os.getpid(),
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "protocol": protocol.VERSION,
        }
    )
    try:
        worker.serve()
        worker.figures.stop()
    except BaseException:  # noqa: BLE001 - a worker bug: say why on the private stderr
        os.write(private_stderr, traceback.format_exc().encode("utf-8", "replace"))
        os._exit(70)
    os._exit(0)
