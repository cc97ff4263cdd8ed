"""The worker protocol client: a :class:`Session` over one framed channel to a worker.

:class:`WorkerSession` speaks :mod:`~eager_rt.backends._protocol` to a worker
running :mod:`~eager_rt.backends._worker` and applies the one recovery policy
(:mod:`~eager_rt.backends._recovery`). How the worker is started, signalled,
killed and diagnosed is a :class:`~eager_rt.backends._process.WorkerProcess`
handed to it: a local subprocess, a Docker or a Podman container.

One background task per worker reads frames and routes them to the execution
in flight; an execution is a frame out and a future resolved by the ``done``
frame, so a trivial round trip costs two wake-ups and no task creation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from eager_rt.backends import _protocol as protocol
from eager_rt.backends import _tool_wire as wire
from eager_rt.backends._channel_writer import ChannelWriter
from eager_rt.backends._limits import (
    DEFAULT_EXEC_TIMEOUT,
    DEFAULT_MAX_OUTPUT,
    Limits,
    OutputBudget,
)
from eager_rt.backends._process import WorkerProcess
from eager_rt.backends._recovery import (
    DEFAULT_INTERRUPT_GRACE,
    Escalation,
    RecoveryPolicy,
    Supervised,
    Supervisor,
)

from eager_rt import clock
from eager_rt.executor import (
    BackendError,
    ErrorInfo,
    ExecResult,
    Output,
    OutputCallback,
    OutputKind,
    Session,
    SessionDead,
    Status,
    ToolHandler,
)

__all__ = ["WorkerSession"]

_EOF_GRACE = 0.5  # seconds the reader gets to drain a dead worker's last frames
_READ_SIZE = 1 << 16

_DONE_STATUS = {"ok": Status.OK, "error": Status.ERROR, "interrupted": Status.INTERRUPTED}


@dataclass(frozen=True, slots=True)
class _Gone:
    """The worker went away while an execution was in flight."""

    detail: str
    #: the session itself stopped it (close, restart): no recovery to do here
    by_session: bool = False


@dataclass(slots=True)
class _Pending:
    """The execution in flight: where its frames go and how it must end."""

    id: int
    #: the secret the ``done`` of this execution must carry (code cannot forge one)
    nonce: str
    future: asyncio.Future[dict[str, Any] | _Gone]
    on_output: OutputCallback | None
    budget: OutputBudget
    tools: ToolHandler | None = None
    outputs: list[Output] = field(default_factory=list)
    callback_error: BaseException | None = None
    #: tool calls being answered; whatever is left when the execution ends is cancelled
    calls: set[asyncio.Future[dict[str, Any]]] = field(default_factory=set)
    #: the host asked the code to stop (else a KeyboardInterrupt is the code's own error)
    interrupted: bool = False


class WorkerSession(Supervised, Session):
    """A :class:`Session` over the framed worker that ``process`` runs.

    Options, the same on every worker-style backend: ``interrupt_grace``
    (seconds interrupted code gets before the worker is killed and restarted)
    and ``auto_restart`` (see :mod:`~eager_rt.backends._recovery`);
    ``start_timeout`` for the restarts this class performs on its own;
    ``prerender_figures`` (default True): while it waits for the next
    execution, the worker warms matplotlib's renderer once pyplot is imported
    and has a forked child render changed figures, so ``plt.show()`` finds them
    ready without any drawing user code could see before the show (see
    ``_figures``); False renders them at ``plt.show()`` only.
    ``exec_timeout`` and ``max_output``: the session's :class:`Limits`
    (wall time of an execution given no timeout; bytes of output kept per
    execution, the rest dropped with a notice); ``None`` turns either off.

    Background output, written by threads of earlier code while no execution
    runs, is never dropped silently: it goes to :attr:`on_background_output`
    when that is set, else it is kept (under the same ``max_output``) and put
    first in the next execution's outputs.

    What this class guarantees on top of the process: an interrupt is sent as
    an ``interrupt`` frame and then SIGINT, so it stops its execution even if it
    reaches the worker before the code starts; a death is noticed through the
    channel's end or :meth:`WorkerProcess.wait_exit`, whichever comes first,
    also between executions (the next ``execute`` then restarts, or raises
    ``SessionDead``); a cancelled ``execute`` stops its code before the
    cancellation propagates.
    """

    def __init__(
        self,
        process: WorkerProcess,
        *,
        python: str = "python3",
        interrupt_grace: float = DEFAULT_INTERRUPT_GRACE,
        auto_restart: bool = True,
        start_timeout: float = 60.0,
        prerender_figures: bool = True,
        exec_timeout: float | None = DEFAULT_EXEC_TIMEOUT,
        max_output: int | None = DEFAULT_MAX_OUTPUT,
    ) -> None:
        self.process = process
        self.limits = Limits(exec_timeout=exec_timeout, max_output=max_output)
        #: called with each piece of background output as it arrives; None: keep it
        #: for the next execution's result
        self.on_background_output: OutputCallback | None = None
        self._background: list[Output] = []
        # the nonces: unpredictable to the code (seeded from the OS), cheap to draw
        self._nonces = random.Random(os.urandom(32))
        self._background_budget = self.limits.budget()
        self.python = python
        self.supervisor = Supervisor(
            RecoveryPolicy(interrupt_grace=interrupt_grace, auto_restart=auto_restart),
            unit=process.unit,
        )
        self.prerender_figures = prerender_figures
        self.start_timeout = start_timeout
        self.worker_info: dict[str, Any] = {}  #: the ``ready`` frame of the current worker
        self._writer: ChannelWriter | None = None
        self._generation = 0  # bumped at every launch; stale watchers check it
        self._running = False  # a worker is up and answering
        self._closed = False  # close() was called and no start() since: never boot again
        self._idle_death: str | None = None  # why the worker died between executions
        self._fatal: str | None = None  # the worker's last words, from a "fatal" frame
        self._pending: _Pending | None = None
        self._next_id = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._death_settled: asyncio.Future[None] | None = None
        self._peeks: dict[int, asyncio.Future[dict[str, Any]]] = {}

    def worker_options(self) -> dict[str, Any]:
        """The init frame's options: the session's, then the process's own."""
        return {
            "prerender_figures": self.prerender_figures,
            "max_output": self.limits.max_output,
            **self.process.worker_options(),
        }

    # ------------------------------------------------------------------ Session

    @property
    def alive(self) -> bool:
        return self._running

    async def start(self, timeout: float | None = None) -> None:
        if self._running:
            return
        self._closed = False
        await self._boot(timeout)

    async def restart(self, timeout: float | None = None) -> None:
        self._closed = False
        await self._shutdown_worker()
        await self._boot(timeout)

    async def interrupt(self) -> None:
        if self._pending is not None and self._running:
            await self._interrupt(self._pending)

    async def _interrupt(self, pending: _Pending) -> None:
        """Stop execution ``pending``, even if the worker has not begun running it yet."""
        if self._running and self._writer is not None:
            pending.interrupted = True
            self._send({"op": protocol.Op.INTERRUPT, "id": pending.id})
            await self.process.send_interrupt(int(self.worker_info.get("pid", 0)))

    async def close(self) -> None:
        self._closed = True  # a recovery in flight must not start a new worker
        await self._shutdown_worker()

    async def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
        tools: ToolHandler | None = None,
    ) -> ExecResult:
        async with self.supervisor.turn():
            return await self._execute(code, timeout, on_output, tools)

    async def peek(
        self, names: Sequence[str], *, timeout: float | None = 10.0
    ) -> dict[str, Any] | None:
        """The plain-data values bound to ``names``, read between executions (no code runs)."""
        async with self.supervisor.turn():
            if not self._running:
                return {}
            self._next_id += 1
            peek_id = self._next_id
            answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._peeks[peek_id] = answer
            try:
                self._send({"op": protocol.Op.PEEK, "id": peek_id, "names": list(names)})
                message = await asyncio.wait_for(answer, timeout)
            except TimeoutError:
                return {}
            finally:
                self._peeks.pop(peek_id, None)
        values = message.get("values") or {}
        return {str(name): wire.decode(value) for name, value in values.items()}

    async def _execute(
        self,
        code: str,
        timeout: float | None,
        on_output: OutputCallback | None,
        tools: ToolHandler | None,
    ) -> ExecResult:
        note = await self._revive()
        timeout = self.limits.timeout(timeout)
        self._next_id += 1
        future = asyncio.get_running_loop().create_future()
        pending = _Pending(
            self._next_id,
            f"{self._nonces.getrandbits(64):016x}",
            future,
            on_output,
            self.limits.budget(),
            tools,
        )
        self._pending = pending
        spell = self._background_budget  # output of the idle spell that ends now
        if self._background or spell.dropped or spell.left != self.limits.max_output:
            self._attach_background(pending)
        started = clock.now()
        try:
            self._send(
                {"op": protocol.Op.EXECUTE, "id": pending.id, "code": code, "nonce": pending.nonce}
            )
            escalation = await self.supervisor.supervise(
                pending.future,
                timeout=timeout,
                interrupt=lambda: self._interrupt(pending),
                kill=lambda: self._kill(pending),
            )
            ended = clock.now()
        except asyncio.CancelledError:
            # The caller gave up: stop the code before the cancellation goes on,
            # so nothing keeps running behind its back. (Awaiting the future
            # directly means the cancellation cancelled it too.)
            finished = pending.future.done() and not pending.future.cancelled()
            if self._running and not finished:
                cleanup = self._spawn(self._abandon(pending))
                with contextlib.suppress(asyncio.CancelledError):
                    # cancelled again: the clean-up goes on, owned by the session
                    await asyncio.shield(cleanup)
            raise
        finally:
            self._pending = None
            await _end_calls(pending)

        notice = pending.budget.notice()
        if notice is not None:
            self._deliver(pending, notice)
        outcome = pending.future.result()
        result = ExecResult(
            Status.OK, pending.outputs, started=started, ended=ended, state_lost=bool(note)
        )
        if isinstance(outcome, _Gone):
            await self._recover(outcome, result, killed=escalation is Escalation.KILLED)
        else:
            self._apply_done(outcome, result, escalation, timeout, pending.interrupted)
        if note:
            result.detail = f"{note}; {result.detail}" if result.detail else note
        if pending.callback_error is not None:
            raise pending.callback_error
        return result

    async def _revive(self) -> str:
        """Before an execution: restart a worker that died while idle, if allowed; say so."""
        if not self._running and self._death_settled is not None:
            await asyncio.shield(self._death_settled)
        if self._running:
            return ""
        if self._idle_death is None or not self.auto_restart:
            raise SessionDead(self.supervisor.not_alive(self._idle_death))
        note = self.supervisor.idle_death(self._idle_death)
        await self._boot(self.start_timeout)
        return note

    # ------------------------------------------------------------------ execution helpers

    def _apply_done(
        self,
        done: dict[str, Any],
        result: ExecResult,
        escalation: Escalation,
        timeout: float | None,
        interrupted: bool,
    ) -> None:
        status = _DONE_STATUS.get(str(done.get("status")), Status.ERROR)
        if status is Status.INTERRUPTED and not interrupted:
            status = Status.ERROR  # the code interrupted itself (raise KeyboardInterrupt)
        elif status is Status.INTERRUPTED and escalation is Escalation.INTERRUPTED:
            status = Status.TIMEOUT
            result.detail = self.supervisor.timed_out(timeout)
        elif status is Status.INTERRUPTED:
            result.detail = self.supervisor.interrupted()
        result.status = status
        error = done.get("error")
        if isinstance(error, dict):
            result.error = ErrorInfo(
                ename=str(error.get("ename", "")),
                evalue=str(error.get("evalue", "")),
                traceback=[str(line) for line in error.get("traceback") or []],
                lineno=error.get("lineno") if isinstance(error.get("lineno"), int) else None,
            )

    async def _recover(self, gone: _Gone, result: ExecResult, *, killed: bool) -> None:
        """The worker is gone mid-execution: report why, then restart when that is the policy."""
        result.state_lost = True
        if gone.by_session:
            # close() or restart() ended it; whoever called them owns what follows
            result.status = Status.DIED
            result.detail = gone.detail
            return
        await self._shutdown_worker()
        if killed:
            result.status = Status.TIMEOUT
            cause = self.supervisor.ignored_interrupt(after_timeout=True)
        else:
            result.status = Status.DIED
            cause = gone.detail
        result.detail = await self.supervisor.recover(
            cause, lambda: self._boot(self.start_timeout), forced=killed, closed=self._closed
        )

    async def _kill(self, pending: _Pending) -> None:
        """The code ignored the interrupt: end the worker (the caller restarts it)."""
        await self.process.terminate()
        if not pending.future.done():
            pending.future.set_result(_Gone("killed after the interrupt was ignored"))

    async def _abandon(self, pending: _Pending) -> None:
        """Stop the code of a cancelled execute(): interrupt, and kill + restart if it holds on."""
        pending.future = asyncio.get_running_loop().create_future()  # the reader settles this one
        escalation = await self.supervisor.stop(
            pending.future,
            interrupt=lambda: self._interrupt(pending),
            kill=lambda: self._kill(pending),
        )
        outcome = pending.future.result()
        if isinstance(outcome, dict):
            return  # it stopped; the state is kept
        if outcome.by_session:
            return  # close() or restart() took over
        # it would not stop (or the worker died meanwhile): start afresh
        forced = escalation is Escalation.KILLED
        await self._shutdown_worker()
        await self.supervisor.recover(
            outcome.detail,
            lambda: self._boot(self.start_timeout),
            forced=forced,
            closed=self._closed,
        )

    def _send(self, message: dict[str, Any]) -> None:
        if self._writer is None:
            raise SessionDead("the worker channel is closed")
        self._writer.write(protocol.encode(message))

    # ------------------------------------------------------------------ lifecycle

    async def _boot(self, timeout: float | None) -> None:
        """Launch a worker, hand it its source and options, wait for ``ready``."""
        await self._shutdown_worker()  # leftovers of a worker that died
        self._generation += 1
        generation = self._generation
        self._idle_death = None
        self._fatal = None
        deadline = None if timeout is None else clock.now() + timeout
        frames = protocol.FrameDecoder()
        try:
            command = protocol.worker_command(self.python)
            reader, writer = await asyncio.wait_for(self.process.launch(command, timeout), timeout)
            _bound_reads(reader)
            writer.write(protocol.worker_payload())
            writer.write(protocol.encode(protocol.init_frame(self.worker_options())))
            left = None if deadline is None else max(deadline - clock.now(), 0.0)
            ready = await asyncio.wait_for(self._await_ready(reader, frames), left)
        except TimeoutError:
            await self.process.terminate()
            raise BackendError(
                f"the {self.process.unit} did not start within {timeout} s"
            ) from None
        except _StartRefused as refused:
            await self.process.terminate()
            raise BackendError(f"the {self.process.unit} refused to start: {refused}") from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            detail = await self._safe_death_detail()
            await self.process.terminate()
            raise BackendError(
                f"the {self.process.unit} failed to start: {detail or exc!r}"
            ) from exc
        except BaseException:
            await self.process.terminate()
            raise
        if generation != self._generation or self._closed:
            await self.process.terminate()
            raise SessionDead("the session was closed while its worker was starting")
        mismatch = protocol.version_mismatch(protocol.VERSION, ready.get("protocol"))
        if mismatch:
            await self.process.terminate()
            raise BackendError(mismatch)
        self.worker_info = ready
        self._writer = ChannelWriter(writer)
        self._running = True
        read_task = self._spawn(self._read_loop(generation, reader, frames))
        self._spawn(self._watch_exit(generation, read_task))

    async def _await_ready(
        self, reader: asyncio.StreamReader, frames: protocol.FrameDecoder
    ) -> dict[str, Any]:
        while True:
            message = frames.next()
            if message is None:
                data = await reader.read(_READ_SIZE)
                if not data:
                    raise asyncio.IncompleteReadError(b"", None)
                frames.feed(data)
            elif message.get("type") == protocol.Msg.READY:
                return message
            elif message.get("type") == protocol.Msg.FATAL:
                raise _StartRefused(str(message.get("reason")))

    async def _read_loop(
        self, generation: int, reader: asyncio.StreamReader, frames: protocol.FrameDecoder
    ) -> None:
        problem = ""
        try:
            while True:
                message = frames.next()
                if message is not None:
                    self._dispatch(message)
                    continue
                data = await reader.read(_READ_SIZE)
                if not data:
                    break
                frames.feed(data)
        except ConnectionError:
            pass
        except protocol.ProtocolError as exc:
            problem = f"the worker channel was corrupted ({exc})"
        await self._worker_gone(generation, problem)

    async def _watch_exit(self, generation: int, read_task: asyncio.Task[None]) -> None:
        await self.process.wait_exit()
        # let the reader take the last frames and see EOF first; it cannot when a
        # forked child of the worker still holds the channel open
        await asyncio.wait({read_task}, timeout=_EOF_GRACE)
        await self._worker_gone(generation, "")

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        pending = self._pending
        if kind == protocol.Msg.FATAL:
            self._fatal = str(message.get("reason"))
            return
        if kind == protocol.Msg.PEEKED:
            answer = self._peeks.get(message.get("id"))  # type: ignore[arg-type]
            if answer is not None and not answer.done():
                answer.set_result(message)
            return
        ours = pending is not None and message.get("id") == pending.id
        line = message.get("line")  # the statement that wrote it (code of several)
        if not isinstance(line, int):
            line = None
        if kind == protocol.Msg.STREAM:
            name: OutputKind = "stderr" if message.get("name") == "stderr" else "stdout"
            output = Output(name, text=str(message.get("text", "")), line=line)
        elif kind == protocol.Msg.DISPLAY:
            data, metadata = message.get("data"), message.get("metadata")
            output = Output(
                "display",
                data=data if isinstance(data, dict) else {},
                metadata=metadata if isinstance(metadata, dict) else {},
                line=line,
            )
        elif kind == protocol.Msg.DROPPED:
            count = message.get("bytes")
            if not isinstance(count, int):
                return
            if ours and pending is not None:
                pending.budget.add_dropped(str(message.get("name")), count)
                return  # said once that execution's output is all in
            self._background_budget.add_dropped(str(message.get("name")), count)
            # the worker says it when the next execution begins: in order, right
            # after the background output it kept
            notice = self._background_budget.take_notice()
            if notice is not None:
                self._background_output(notice, counted=False)
            return
        elif pending is None or not ours:
            return  # a call or done of an abandoned execution
        elif kind == protocol.Msg.CALL:
            self._answer(pending, message)
            return
        elif kind == protocol.Msg.DONE:
            # only the worker knows the nonce: a done the code forged is not the end
            if message.get("nonce") == pending.nonce and not pending.future.done():
                pending.future.set_result(message)
            return
        else:
            return
        if not ours:
            self._background_output(output)
            return
        assert pending is not None
        kept = pending.budget.admit(output)
        if kept is not None:
            self._deliver(pending, kept)

    @staticmethod
    def _deliver(pending: _Pending, output: Output) -> None:
        pending.outputs.append(output)
        if pending.on_output is not None and pending.callback_error is None:
            try:
                pending.on_output(output)
            except Exception as exc:  # noqa: BLE001 - re-raised by execute() once the code ends
                pending.callback_error = exc

    def _background_output(self, output: Output, *, counted: bool = True) -> None:
        """Output written while no execution of ours ran: hand it on, or keep it."""
        kept = self._background_budget.admit(output) if counted else output
        if kept is None:
            return
        pending = self._pending
        if self.on_background_output is not None:
            with contextlib.suppress(Exception):  # the session's reader must go on
                self.on_background_output(kept)
        elif pending is not None:
            self._deliver(pending, kept)  # it arrived during an execution: that one gets it
        else:
            self._background.append(kept)

    def _attach_background(self, pending: _Pending) -> None:
        """The output kept since the last execution goes first in this one's."""
        outputs, self._background = self._background, []
        notice = self._background_budget.take_notice()  # what the host itself cut
        self._background_budget = self.limits.budget()
        if notice is not None:
            if self.on_background_output is None:
                outputs.append(notice)
            else:
                with contextlib.suppress(Exception):
                    self.on_background_output(notice)
        for output in outputs:
            self._deliver(pending, output)

    def _answer(self, pending: _Pending, call: dict[str, Any]) -> None:
        """Start one tool call of the code; its reply goes out when ready (at once, if it is).

        The handler's answer is taken as a future: a reply ready on return
        goes out in this same loop turn, one made later as it lands, with no
        task of ours in between. The request carries a ``respond`` callable
        (:class:`_Responder`) with which a tool thread sends the reply itself,
        without waiting for the loop; the future then only settles the
        books. If the execution ends first, the call is cancelled and the
        code gets a ``CancelledError``.
        """
        request = {k: call.get(k) for k in wire.REQUEST_FIELDS}

        def failed(kind: str, message: str) -> dict[str, Any]:
            error = {"type": kind, "message": message}
            return {"ok": False, "tool": request["tool"], "error": error}

        if pending.tools is None:
            self._reply(request, failed("RuntimeError", "this execution was given no tools"))
            return
        respond = None if self._writer is None else _Responder(self._writer, request["call"])
        try:
            answer = asyncio.ensure_future(pending.tools({**request, "respond": respond}))
        except Exception as exc:  # noqa: BLE001 - the handler's own failure goes to the code
            self._reply(request, failed(type(exc).__name__, str(exc)))
            return

        def settle(done: asyncio.Future[dict[str, Any]]) -> None:
            pending.calls.discard(done)
            if respond is not None and not respond.claim():
                return  # a tool thread sent it already
            if done.cancelled():  # the execution ended; a thread of the code may still wait
                reply = failed("CancelledError", "the execution ended before the tool returned")
            elif (exc := done.exception()) is not None:
                reply = failed(type(exc).__name__, str(exc))
            else:
                reply = done.result()
            self._reply(request, reply)

        if answer.done():
            settle(answer)
        else:
            pending.calls.add(answer)
            answer.add_done_callback(settle)

    def _reply(self, request: dict[str, Any], reply: dict[str, Any]) -> None:
        if self._writer is not None and self._running:
            self._send({"op": protocol.Op.REPLY, "call": request["call"], **reply})

    async def _worker_gone(self, generation: int, problem: str) -> None:
        """The channel closed or the process ended: settle the execution in flight."""
        if generation != self._generation or not self._running:
            return
        self._running = False
        # execute() called while the cause is being found out waits for it
        settled = self._death_settled = asyncio.get_running_loop().create_future()
        try:
            detail = problem or await self._safe_death_detail()
            if self._fatal:
                detail = f"{self._fatal}; {detail}" if detail else self._fatal
            detail = detail or f"the {self.process.unit} went away"
            pending = self._pending
            if pending is not None:
                if not pending.future.done():
                    pending.future.set_result(_Gone(detail))
            else:
                self._idle_death = detail
        finally:
            settled.set_result(None)

    async def _safe_death_detail(self) -> str:
        try:
            return await asyncio.wait_for(self.process.death_detail(), 10.0)
        except TimeoutError:
            return "the cause could not be read within 10 s"
        except BackendError as exc:  # a precise sentence of the backend's own
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - the detail is best effort
            return f"cause unknown ({exc!r})"

    async def _shutdown_worker(self) -> None:
        """Stop the current worker and every task watching it; leave nothing running."""
        self._generation += 1  # watchers of the old worker now ignore what they see
        self._running = False
        pending = self._pending
        if pending is not None and not pending.future.done():
            pending.future.set_result(_Gone(Supervisor.closed_meanwhile(), by_session=True))
        if self._writer is not None:
            self._writer.close()  # a tool thread's late reply goes nowhere
        await self.process.terminate()
        self._writer = None
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _bound_reads(reader: asyncio.StreamReader) -> None:
    """Have the channel's transport read at most ``_READ_SIZE`` bytes at a time.

    asyncio's pipe and socket transports read up to 256 KiB per wake-up. A
    buffer that size is above glibc's mmap threshold unless the heap happens
    to have room at its top, and then every frame read costs an mmap, an
    mremap and a munmap: measured, +35 us of host CPU per ``execute("pass")``
    locally and +60 us of round trip on Docker, appearing or not with
    unrelated changes to the heap's layout. Frames are small; 64 KiB reads
    stay on the heap.
    """
    transport = getattr(reader, "_transport", None)  # set by every stream protocol
    if isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = _READ_SIZE  # type: ignore[union-attr]


class _Responder:
    """Sends one call's reply from a tool thread, unless the loop answered the call first.

    Exactly one reply goes out per call: the thread's (:meth:`__call__`) or
    the loop's (after :meth:`claim`), whichever claims the call first.
    """

    __slots__ = ("_call", "_claimed", "_lock", "_writer")

    def __init__(self, writer: ChannelWriter, call: Any) -> None:
        self._writer = writer
        self._call = call
        self._lock = threading.Lock()
        self._claimed = False

    def claim(self) -> bool:
        """Take the call's reply for the caller to send; False if it is taken."""
        with self._lock:
            claimed, self._claimed = self._claimed, True
        return not claimed

    def __call__(self, reply: dict[str, Any]) -> None:
        """From a tool thread: send ``reply`` now (dropped if the call was answered)."""
        try:
            data = protocol.encode({"op": protocol.Op.REPLY, "call": self._call, **reply})
        except protocol.ProtocolError:
            return  # the loop sends it, as it sends every reply it cannot frame
        if self.claim():
            self._writer.write_threadsafe(data)


class _StartRefused(Exception):
    """The worker answered its init frame with ``fatal``: it will not serve this host."""


async def _end_calls(pending: _Pending) -> None:
    """Cancel the tool calls an ended execution left unanswered, and wait for them.

    Each one's reply (``CancelledError``) is sent by the callback ``_answer``
    gave it, which runs before the wait here ends.
    """
    calls = list(pending.calls)
    for task in calls:
        task.cancel()
    if calls:
        await asyncio.gather(*calls, return_exceptions=True)
