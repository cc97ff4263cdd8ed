"""The host side of the framed worker protocol, independent of how the worker is reached.

:class:`WorkerSession` implements the whole :class:`~eager_rt.executor.Session`
contract over one asyncio byte channel to a worker running
:mod:`eager_rt.backends._worker` (the wire format is defined there, once).
A backend subclasses it and supplies only the transport: how to start an
interpreter, how to deliver SIGINT to it, how to kill it, and why it died.
The local backend starts a subprocess; the Docker backend runs the same worker
inside a container.

One background task per worker reads frames and routes them to the execution
in flight; an execution is a frame out and a future resolved by the ``done``
frame, so a trivial round trip costs two wake-ups and no task creation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from abc import abstractmethod
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from eager_rt.backends._worker import (
    HEADER_SIZE,
    PROTOCOL,
    pack_frame,
    unpack_length,
    worker_command,
    worker_payload,
)

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
)

__all__ = ["WorkerSession", "worker_command", "worker_payload"]

# asyncio.TimeoutError is the builtin only from Python 3.11 on
TIMEOUT_ERRORS = (asyncio.TimeoutError, TimeoutError)
_EOF_GRACE = 0.5  # seconds the reader gets to drain a dead worker's last frames

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
    future: asyncio.Future[dict[str, Any] | _Gone]
    on_output: OutputCallback | None
    outputs: list[Output] = field(default_factory=list)
    callback_error: BaseException | None = None
    timed_out: bool = False
    killed: bool = False
    escalation: asyncio.Task[None] | None = None


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any]:
    """One frame from the channel; raises ``asyncio.IncompleteReadError`` at EOF."""
    header = await reader.readexactly(HEADER_SIZE)
    body = await reader.readexactly(unpack_length(header))
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("frame is not a JSON object")
    return message


class WorkerSession(Session):
    """A :class:`Session` over the framed worker; subclasses provide the transport.

    Transport hooks (all a subclass must write):

    * :meth:`_launch` starts a fresh interpreter with :func:`worker_command`
      (its stdin and stdout are the channel; nothing else may write to them)
      and returns ``(reader, writer)`` for that channel. This class then sends
      :func:`worker_payload` and the init frame itself and waits for ``ready``.
      Keep whatever the other hooks need (process handle, container id) on
      ``self``; ``_launch`` may use :meth:`_spawn` for helper tasks (they are
      cancelled and awaited with the worker).
    * :meth:`_send_interrupt` delivers SIGINT to the worker process only (its
      pid, as the worker sees it, is ``self.worker_info["pid"]``).
    * :meth:`_terminate` kills the worker and everything it started, waits for
      it, and closes the channel. It is called after every launch failure,
      death, timeout kill, restart and close, also when nothing runs: it must
      be idempotent and must not raise.
    * :meth:`_death_detail` says, in one sentence, why the worker went away
      ("the worker exited with code 3", "... was killed by SIGKILL (out of
      memory?)"). Called once the channel closed or the process ended, before
      :meth:`_terminate`; a "fatal" frame from the worker is prepended to it.

    Optional: :meth:`_wait_exit` (returns when the worker process has ended:
    catches a death the channel cannot show, such as a forked child of the
    worker holding the channel open; the default never returns) and
    :meth:`_worker_options` (the init frame's options; the worker understands
    ``memory_limit``, in bytes, applied as RLIMIT_AS, and ``prerender_figures``).

    Options: ``interrupt_grace`` seconds between the interrupt sent at a timeout
    (or at a cancelled ``execute``) and the kill; ``auto_restart`` a worker that
    died; ``start_timeout`` for the restarts this class performs on its own;
    ``prerender_figures`` (default True): while it waits for the next execution,
    the worker warms matplotlib's renderer once pyplot is imported and has a
    forked child render changed figures, so ``plt.show()`` finds them ready
    without any drawing user code could see before the show (see ``_figures``);
    False renders them at ``plt.show()`` only.

    What this class guarantees on top of the transport: an interrupt is sent as
    an ``interrupt`` frame and then SIGINT, so it stops its execution even if it
    reaches the worker before the code starts; a death is noticed through the
    channel's EOF or :meth:`_wait_exit`, whichever comes first, also between
    executions (the next ``execute`` then restarts, or raises ``SessionDead``);
    a cancelled ``execute`` stops its code before the cancellation propagates.
    """

    def __init__(
        self,
        *,
        interrupt_grace: float = 2.0,
        auto_restart: bool = True,
        start_timeout: float = 60.0,
        prerender_figures: bool = True,
    ) -> None:
        if interrupt_grace < 0:
            raise ValueError("interrupt_grace must be >= 0")
        self.interrupt_grace = interrupt_grace
        self.prerender_figures = prerender_figures
        self.auto_restart = auto_restart
        self.start_timeout = start_timeout
        self.worker_info: dict[str, Any] = {}  #: the ``ready`` frame of the current worker
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._generation = 0  # bumped at every launch; stale watchers check it
        self._running = False  # a worker is up and answering
        self._closed = False  # close() was called and no start() since: never boot again
        self._idle_death: str | None = None  # why the worker died between executions
        self._fatal: str | None = None  # the worker's last words, from a "fatal" frame
        self._pending: _Pending | None = None
        self._next_id = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._read_task: asyncio.Task[None] | None = None
        self._death_settled: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ transport hooks

    @abstractmethod
    async def _launch(
        self, timeout: float | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Start an interpreter running ``worker_command(python)``; return (reader, writer)."""

    @abstractmethod
    async def _send_interrupt(self) -> None:
        """Deliver SIGINT to the worker process (not to its children)."""

    @abstractmethod
    async def _terminate(self) -> None:
        """Kill the worker and everything it started, reap it, close the channel. Idempotent."""

    @abstractmethod
    async def _death_detail(self) -> str:
        """Why the worker went away, for ``ExecResult.detail``. Called after the channel closed."""

    async def _wait_exit(self) -> None:
        """Return when the worker process has ended. The default never returns."""
        await asyncio.Event().wait()

    def _worker_options(self) -> dict[str, Any]:
        """Options for the worker's init frame; a subclass adds its own to these."""
        return {"prerender_figures": self.prerender_figures}

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
            self._send({"op": "interrupt", "id": pending.id})
            await self._send_interrupt()

    async def close(self) -> None:
        self._closed = True  # a recovery in flight must not start a new worker
        await self._shutdown_worker()

    async def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecResult:
        note = ""
        if not self._running and self._death_settled is not None:
            await asyncio.shield(self._death_settled)
        if not self._running:
            if self._idle_death is None or not self.auto_restart:
                why = f": the worker died ({self._idle_death})" if self._idle_death else ""
                raise SessionDead(f"{type(self).__name__} is not alive{why}")
            note = f"the worker had died while idle ({self._idle_death}) and was restarted"
            await self._boot(self.start_timeout)
        if self._pending is not None:
            raise BackendError("execute() called while another execution runs on this session")
        loop = asyncio.get_running_loop()
        self._next_id += 1
        pending = _Pending(self._next_id, loop.create_future(), on_output)
        self._pending = pending
        deadline = None
        started = time.perf_counter()
        try:
            self._send({"op": "execute", "id": pending.id, "code": code})
            if timeout is not None:
                deadline = loop.call_later(max(timeout, 0.0), self._on_deadline, pending)
            outcome = await pending.future
            ended = time.perf_counter()
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
            if deadline is not None:
                deadline.cancel()
            if pending.escalation is not None and not pending.escalation.done():
                pending.escalation.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending.escalation
            self._pending = None

        result = ExecResult(
            Status.OK, pending.outputs, started=started, ended=ended, state_lost=bool(note)
        )
        if isinstance(outcome, _Gone):
            await self._recover(pending, outcome, result)
        else:
            self._apply_done(pending, outcome, result)
        if note:
            result.detail = f"{note}; {result.detail}" if result.detail else note
        if pending.callback_error is not None:
            raise pending.callback_error
        return result

    # ------------------------------------------------------------------ execution helpers

    def _apply_done(self, pending: _Pending, done: dict[str, Any], result: ExecResult) -> None:
        status = _DONE_STATUS.get(str(done.get("status")), Status.ERROR)
        if status is Status.INTERRUPTED and pending.timed_out:
            status = Status.TIMEOUT
            result.detail = "the timeout fired; the code was interrupted and the state kept"
        elif status is Status.INTERRUPTED:
            result.detail = "interrupted; the state was kept"
        result.status = status
        error = done.get("error")
        if isinstance(error, dict):
            result.error = ErrorInfo(
                ename=str(error.get("ename", "")),
                evalue=str(error.get("evalue", "")),
                traceback=[str(line) for line in error.get("traceback") or []],
                lineno=error.get("lineno") if isinstance(error.get("lineno"), int) else None,
            )

    async def _recover(self, pending: _Pending, gone: _Gone, result: ExecResult) -> None:
        """The worker is gone mid-execution: report why, then restart when that is the policy."""
        result.state_lost = True
        if gone.by_session:
            # close() or restart() ended it; whoever called them owns what follows
            result.status = Status.DIED
            result.detail = gone.detail
            return
        await self._shutdown_worker()
        if pending.killed:
            result.status = Status.TIMEOUT
            result.detail = (
                f"the code ignored the interrupt for {self.interrupt_grace} s after the timeout; "
                "the worker was killed"
            )
            must_restart = True
        else:
            result.status = Status.DIED
            result.detail = gone.detail
            must_restart = self.auto_restart
        if not must_restart:
            return
        if self._closed:
            result.detail += "; not restarted: the session was closed meanwhile"
            return
        try:
            await self._boot(self.start_timeout)
        except BackendError as exc:
            result.detail += f"; the restart failed: {exc}"
        else:
            result.detail += " and restarted" if pending.killed else "; the worker was restarted"

    async def _abandon(self, pending: _Pending) -> None:
        """Stop the code of a cancelled execute(): interrupt, and kill + restart if it holds on."""
        stopped: asyncio.Future[dict[str, Any] | _Gone] = asyncio.get_running_loop().create_future()
        pending.future = stopped  # the reader settles this one from now on
        if pending.escalation is not None:
            pending.escalation.cancel()
        await self._interrupt(pending)
        try:
            outcome = await asyncio.wait_for(asyncio.shield(stopped), self.interrupt_grace)
        except TIMEOUT_ERRORS:
            outcome = None
        if isinstance(outcome, dict):
            return  # it stopped; the state is kept
        if isinstance(outcome, _Gone) and outcome.by_session:
            return  # close() or restart() took over
        # it would not stop (or the worker died meanwhile): start afresh
        await self._shutdown_worker()
        if (outcome is None or self.auto_restart) and not self._closed:
            with contextlib.suppress(BackendError):
                await self._boot(self.start_timeout)

    def _on_deadline(self, pending: _Pending) -> None:
        if pending.future.done():
            return
        pending.timed_out = True
        pending.escalation = self._spawn(self._escalate(pending))

    async def _escalate(self, pending: _Pending) -> None:
        """Interrupt; if the code has not stopped after the grace period, kill the worker."""
        await self._interrupt(pending)
        try:
            await asyncio.wait_for(asyncio.shield(pending.future), self.interrupt_grace)
        except TIMEOUT_ERRORS:
            pending.killed = True
            await self._terminate()
            if not pending.future.done():
                pending.future.set_result(_Gone("killed after the timeout"))

    def _send(self, message: dict[str, Any]) -> None:
        if self._writer is None:
            raise SessionDead("the worker channel is closed")
        self._writer.write(pack_frame(message))

    # ------------------------------------------------------------------ lifecycle

    async def _boot(self, timeout: float | None) -> None:
        """Launch a worker, hand it its source and options, wait for ``ready``."""
        await self._shutdown_worker()  # leftovers of a worker that died
        self._generation += 1
        generation = self._generation
        self._idle_death = None
        self._fatal = None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            reader, writer = await asyncio.wait_for(self._launch(timeout), timeout)
            writer.write(worker_payload())
            writer.write(pack_frame({"op": "init", "options": self._worker_options()}))
            left = None if deadline is None else max(deadline - loop.time(), 0.0)
            ready = await asyncio.wait_for(self._await_ready(reader), left)
        except TIMEOUT_ERRORS:
            await self._terminate()
            raise BackendError(f"the worker did not start within {timeout} s") from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            detail = await self._safe_death_detail()
            await self._terminate()
            raise BackendError(f"the worker failed to start: {detail or exc!r}") from exc
        except BaseException:
            await self._terminate()
            raise
        if generation != self._generation or self._closed:
            await self._terminate()
            raise SessionDead("the session was closed while its worker was starting")
        if ready.get("protocol") != PROTOCOL:
            await self._terminate()
            raise BackendError(f"worker speaks protocol {ready.get('protocol')}, not {PROTOCOL}")
        self.worker_info = ready
        self._reader, self._writer = reader, writer
        self._running = True
        self._read_task = self._spawn(self._read_loop(generation, reader))
        self._spawn(self._watch_exit(generation, self._read_task))

    async def _await_ready(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        while True:
            message = await read_frame(reader)
            if message.get("type") == "ready":
                return message
            if message.get("type") == "fatal":
                raise ValueError(str(message.get("reason")))

    async def _read_loop(self, generation: int, reader: asyncio.StreamReader) -> None:
        problem = ""
        try:
            while True:
                self._dispatch(await read_frame(reader))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except (ValueError, UnicodeDecodeError) as exc:
            problem = f"the worker channel was corrupted ({exc})"
        await self._worker_gone(generation, problem)

    async def _watch_exit(self, generation: int, read_task: asyncio.Task[None]) -> None:
        await self._wait_exit()
        # let the reader take the last frames and see EOF first; it cannot when a
        # forked child of the worker still holds the channel open
        await asyncio.wait({read_task}, timeout=_EOF_GRACE)
        await self._worker_gone(generation, "")

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        pending = self._pending
        if kind == "fatal":
            self._fatal = str(message.get("reason"))
            return
        if pending is None or message.get("id") != pending.id:
            return  # output of an abandoned execution, or of a thread while idle
        if kind == "stream":
            name: OutputKind = "stderr" if message.get("name") == "stderr" else "stdout"
            output = Output(name, text=str(message.get("text", "")))
        elif kind == "display":
            output = Output(
                "display", data=message.get("data") or {}, metadata=message.get("metadata") or {}
            )
        elif kind == "done":
            if not pending.future.done():
                pending.future.set_result(message)
            return
        else:
            return
        pending.outputs.append(output)
        if pending.on_output is not None and pending.callback_error is None:
            try:
                pending.on_output(output)
            except Exception as exc:  # noqa: BLE001 - re-raised by execute() once the code ends
                pending.callback_error = exc

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
            detail = detail or "the worker went away"
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
            return await asyncio.wait_for(self._death_detail(), 10.0)
        except Exception as exc:  # noqa: BLE001 - the detail is best effort
            return f"cause unknown ({exc!r})"

    async def _shutdown_worker(self) -> None:
        """Stop the current worker and every task watching it; leave nothing running."""
        self._generation += 1  # watchers of the old worker now ignore what they see
        self._running = False
        pending = self._pending
        if pending is not None and not pending.future.done():
            pending.future.set_result(_Gone("the session was closed or restarted", by_session=True))
        await self._terminate()
        self._reader = self._writer = None
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
