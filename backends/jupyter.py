"""The Jupyter backend: each session is one IPython kernel, on this machine or behind a gateway.

``JupyterBackend()`` starts local kernels through ``jupyter_client``;
``JupyterBackend(url=..., token=...)`` asks a Jupyter Kernel Gateway or
Enterprise Gateway for them over its REST and websocket API. Both sides move
messages through a small transport (``_jupyter_local`` / ``_jupyter_remote``);
this module runs one execution over either: send an ``execute_request``, follow
iopub for the messages whose parent it is, and finish when both its
``execute_reply`` and its ``idle`` status are in.

Kernels get *script* semantics by default (see :mod:`._ipython_setup`, shared
with E2B). The runtime executes a program in chunks, and an eager run must
print exactly what one serial run prints, so a bare expression does not echo
its value and matplotlib figures appear only on ``plt.show()``.
``semantics="notebook"`` gives back IPython's notebook behaviour.

Host tools (``execute(..., tools=...)``): the kernel announces each call on
iopub and collects replies through its own input requests on the stdin
channel, the one channel a kernel serves while a cell runs (a comm message
would wait behind the busy shell channel). :class:`_ToolDesk` is the host's
end: it starts every announced call at once and answers the input requests
that carry :data:`._kernel_tools.PROMPT`; any other input request gets an end
of file. ``peek`` reads plain-data values through a silent execution's user
expressions, which run no user code.

Timeouts, interrupts, deaths and restarts follow :mod:`._recovery`, the one
policy of every backend (its rules are in ``docs/backends.md``). A gateway
that freezes or goes away is a death too, found within about
``request_timeout`` (see ``_jupyter_remote``); a kernel that died while idle
and cannot be restarted gives a ``died`` result at the next ``execute``, which
tries again the time after.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Protocol

from eager_rt.clock import now
from eager_rt.executor import (
    Backend,
    BackendError,
    ErrorInfo,
    ExecResult,
    Output,
    OutputCallback,
    Session,
    SessionDead,
    Status,
    ToolHandler,
)

from . import _kernel_tools as kernel_tools
from . import _tool_wire as wire
from ._ipython_setup import Semantics, check_semantics, setup_code
from ._jupyter_messages import KernelDied, KernelMessage, error_info, output_from_iopub
from ._limits import DEFAULT_EXEC_TIMEOUT, DEFAULT_MAX_OUTPUT, Limits, OutputBudget
from ._recovery import (
    DEFAULT_INTERRUPT_GRACE,
    Escalation,
    RecoveryPolicy,
    Supervised,
    Supervisor,
    stop_following,
)

__all__ = ["JupyterBackend", "JupyterSession"]

TOKEN_ENV = "JUPYTER_GATEWAY_AUTH_TOKEN"
_SETTLE_S = 2.0  # how long the idle status may trail the execute_reply
_PROBE_S = 1.0  # wait for the iopub echo of a setup request before asking again
_PROBES = 30


class KernelTransport(Protocol):
    """What a session needs from a kernel, local or remote."""

    @property
    def alive(self) -> bool: ...

    @property
    def death(self) -> str | None:
        """Why the kernel died, once it did."""

    async def start(self, timeout: float | None) -> None: ...

    async def send_execute(
        self, code: str, *, silent: bool = False, user_expressions: dict[str, str] | None = None
    ) -> str: ...

    async def send_input(self, text: str) -> None:
        """Answer the kernel's pending input request."""

    async def recv(self, timeout: float | None) -> KernelMessage: ...

    async def interrupt(self) -> None: ...

    async def restart(self, timeout: float | None) -> None: ...

    async def close(self) -> None: ...


class JupyterSession(Supervised, Session):
    """A :class:`Session` over one Jupyter kernel.

    A restart gives a fresh interpreter (a new local process, or the gateway's
    restart of the same kernel id) behind a fresh message queue, so nothing of
    the old state or stray messages can leak into the next execution.

    Recovery is :mod:`._recovery`'s; a kernel is killed by its restart
    (:func:`._recovery.stop_following`).
    """

    backend_name: ClassVar[str] = "jupyter"

    def __init__(
        self,
        *,
        kernel_name: str = "python3",
        url: str | None = None,
        token: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        interrupt_grace: float = DEFAULT_INTERRUPT_GRACE,
        auto_restart: bool = True,
        semantics: Semantics = "script",
        start_timeout: float = 60.0,
        tcp_nodelay: bool = True,
        tcp_quickack: bool = True,
        request_timeout: float = 30.0,
        exec_timeout: float | None = DEFAULT_EXEC_TIMEOUT,
        max_output: int | None = DEFAULT_MAX_OUTPUT,
    ) -> None:
        self.limits = Limits(exec_timeout=exec_timeout, max_output=max_output)
        self.supervisor = Supervisor(
            RecoveryPolicy(interrupt_grace=interrupt_grace, auto_restart=auto_restart), "kernel"
        )
        self.semantics = check_semantics(semantics)
        self.kernel_name = kernel_name
        self.url = url
        # the variable Jupyter Server's own gateway client reads, so that a
        # token need not appear on a command line
        self.token = token if token is not None else os.environ.get(TOKEN_ENV)
        self.cwd = None if cwd is None else os.fspath(cwd)
        self.env = dict(env) if env else None
        self.start_timeout = start_timeout
        self.tcp_nodelay = tcp_nodelay
        self.tcp_quickack = tcp_quickack
        self.request_timeout = request_timeout
        self._kernel: Any = None
        self._running: str | None = None  # msg_id of the execution in flight
        self._following: asyncio.Task[None] | None = None  # and the task collecting its messages
        self._interrupted = False
        self._abandoned: asyncio.Task[None] | None = None
        self._held_ask: KernelMessage | None = None  # a tool question asked between executions
        self._closed = False

    # -- Session -----------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._kernel is not None and bool(self._kernel.alive) and not self._closed

    @property
    def kernel(self) -> Any:
        """The transport (``LocalKernel`` or ``GatewayKernel``) in use, for tests and tools."""
        return self._kernel

    async def start(self, timeout: float | None = None) -> None:
        if self.alive:
            return
        if self._closed:
            raise SessionDead("the session is closed")
        await self._launch(timeout)

    async def restart(self, timeout: float | None = None) -> None:
        if self._closed:
            raise SessionDead("the session is closed")
        await self._finish_abandoned()
        if self._kernel is None:
            await self._launch(timeout)
        else:
            await self._relaunch(timeout)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in (self._abandoned, self._following):
            if task is not None:
                task.cancel()  # an execution in flight ends as "died": closed meanwhile
                await asyncio.gather(task, return_exceptions=True)
        self._abandoned = None
        await self._drop_kernel()

    async def interrupt(self) -> None:
        if self._running is None or not self.alive:
            return
        self._interrupted = True
        await self._kernel.interrupt()

    async def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
        tools: ToolHandler | None = None,
    ) -> ExecResult:
        async with self.supervisor.turn():
            await self._finish_abandoned()
            try:
                note = await self._revive()
            except _NotRevived as failed:
                stamp = now()
                return ExecResult(
                    status=Status.DIED,
                    started=stamp,
                    ended=stamp,
                    state_lost=True,
                    detail=str(failed),
                )
            result = await self._execute(code, timeout, on_output, tools)
            if note:
                result.state_lost = True
                result.detail = f"{note}; {result.detail}" if result.detail else note
            return result

    async def peek(
        self, names: Sequence[str], *, timeout: float | None = 10.0
    ) -> dict[str, Any] | None:
        """The plain-data values of ``names``, read between executions without running user code.

        A silent execution of no code (no history, no execution count) whose
        one user expression, ``__eager_rt_peek__``, reads the names from the
        namespace and keeps exact built-in plain data only
        (:func:`._kernel_tools.peek`). A kernel that is not alive or does not
        answer in ``timeout`` seconds gives ``{}``.
        """
        async with self.supervisor.turn():
            await self._finish_abandoned()
            if not self.alive:
                return {}
            wanted = [str(name) for name in names]
            deadline = None if timeout is None else now() + timeout
            run = _Run(ExecResult(status=Status.OK), None)
            try:
                msg_id = await self._kernel.send_execute(
                    "", silent=True, user_expressions={"v": f"__eager_rt_peek__({wanted!r})"}
                )
                await self._follow(run, msg_id, deadline, self._idle_desk())
            except (KernelDied, TimeoutError):
                return {}
        answer = run.user_expressions.get("v") or {}
        if answer.get("status") != "ok":
            return {}
        try:
            values = json.loads(str((answer.get("data") or {}).get("text/plain", "")))
        except ValueError:
            return {}
        if not isinstance(values, dict):
            return {}
        return {str(name): wire.decode(value) for name, value in values.items()}

    async def _revive(self) -> str:
        """Restart a kernel that died between executions, if allowed; say so, or raise.

        A restart that fails (the gateway is down) raises :class:`_NotRevived`,
        which ``execute`` reports as a ``died`` result; the next ``execute``
        tries again.
        """
        if self.alive:
            return ""
        death = None if self._kernel is None else self._kernel.death
        if death is None or self._closed or not self.auto_restart:
            raise SessionDead(self.supervisor.not_alive(death))
        cause = f"the {self.supervisor.unit} had died while idle ({death})"
        detail = await self.supervisor.recover(cause, self._restart_kernel, forced=False)
        if not self.alive:
            raise _NotRevived(detail)
        return self.supervisor.idle_death(death)

    # -- one execution -----------------------------------------------------

    async def _execute(
        self,
        code: str,
        timeout: float | None,
        on_output: OutputCallback | None,
        tools: ToolHandler | None,
    ) -> ExecResult:
        result = ExecResult(status=Status.OK, started=now())
        timeout = self.limits.timeout(timeout)
        run = _Run(result, on_output, self.limits.budget())
        desk = _ToolDesk(self._kernel, tools)
        held, self._held_ask = self._held_ask, None
        if held is not None:  # a thread asked while no code of ours ran: answer it now
            desk.on_input_request(held)
        self._interrupted = False
        follow: asyncio.Task[None] | None = None
        try:
            msg_id = self._running = await self._kernel.send_execute(code)
            follow = asyncio.get_running_loop().create_task(self._follow(run, msg_id, None, desk))
            self._following = follow
            escalation = await self.supervisor.supervise(
                asyncio.shield(follow),
                timeout=timeout,
                interrupt=self._send_interrupt,
                kill=stop_following(follow),
            )
            await self._conclude(run, follow, escalation, timeout)
        except KernelDied as died:  # before the request was sent
            await self._on_death(result, str(died))
        except asyncio.CancelledError:
            if follow is not None:
                # the caller gave up on this execution: stop the code rather
                # than let it run on unseen; if we are cancelled again while
                # waiting, the next call or close() finishes the job
                self._abandoned = asyncio.get_running_loop().create_task(self._abandon(follow))
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(self._abandoned)
            raise
        finally:
            self._running = self._following = None
            # calls still running are cancelled, and threads still waiting told so
            await _insist(desk.close())
            result.ended = now()
        notice = run.budget.notice()
        if notice is not None:
            run.emit_kept(notice)
        return result

    async def _conclude(
        self, run: _Run, follow: asyncio.Task[None], escalation: Escalation, timeout: float | None
    ) -> None:
        """The status and detail of an execution the supervisor let end, or ended."""
        result = run.result
        if escalation is Escalation.KILLED:
            result.status = Status.TIMEOUT
            result.state_lost = True
            cause = self.supervisor.ignored_interrupt(after_timeout=True)
            result.detail = await self.supervisor.recover(
                cause, self._restart_kernel, forced=True, closed=self._closed
            )
            return
        if follow.cancelled():
            result.status = Status.DIED
            result.state_lost = True
            result.detail = Supervisor.closed_meanwhile()
            return
        died = follow.exception()
        if isinstance(died, KernelDied):
            await self._on_death(result, str(died))
            return
        if died is not None:
            raise died
        if escalation is Escalation.INTERRUPTED:  # by the timeout, and it stopped
            result.status = Status.TIMEOUT
            result.error = run.error_info
            result.detail = self.supervisor.timed_out(timeout)
            return
        run.settle(interrupted=self._interrupted)

    async def _abandon(self, follow: asyncio.Task[None]) -> None:
        """Stop an execution nobody waits for; restart if it will not stop."""
        escalation = await self.supervisor.stop(
            follow, interrupt=self._send_interrupt, kill=stop_following(follow)
        )
        if escalation is Escalation.KILLED:
            cause = self.supervisor.ignored_interrupt(after_timeout=False)
            await self.supervisor.recover(
                cause, self._restart_kernel, forced=True, closed=self._closed
            )
        elif not follow.cancelled() and isinstance(follow.exception(), KernelDied):
            cause = str(follow.exception())
            await self.supervisor.recover(
                cause, self._restart_kernel, forced=False, closed=self._closed
            )

    async def _finish_abandoned(self) -> None:
        task, self._abandoned = self._abandoned, None
        if task is not None:
            with contextlib.suppress(Exception):
                await task

    async def _send_interrupt(self) -> None:
        """The supervisor's interrupt; one that cannot be delivered lets the grace run out."""
        self._interrupted = True
        if self._kernel is not None:
            with contextlib.suppress(KernelDied, BackendError):
                await self._kernel.interrupt()

    async def _follow(
        self, run: _Run, msg_id: str, deadline: float | None, desk: _ToolDesk | None = None
    ) -> None:
        """Collect the execution's messages until its reply and its idle status are both in.

        Tool traffic goes to ``desk``: the execution's call announcements, and
        every input request whatever its parent (a thread of an earlier cell
        that waits must be answered too, or it would hold the asking role
        forever). Raises :class:`TimeoutError` at ``deadline`` and
        :class:`KernelDied` when the kernel goes away first.
        """
        if desk is None:
            desk = self._idle_desk()
        while not (run.replied and run.idle):
            moment = now()
            wait = None if deadline is None else deadline - moment
            if run.replied:
                # the idle status follows the reply within microseconds; if it
                # were ever lost we must not wait for it forever
                settle = (run.replied_at or moment) + _SETTLE_S - moment
                wait = settle if wait is None else min(wait, settle)
                if settle <= 0:
                    return
            if wait is not None and wait <= 0:
                raise TimeoutError
            try:
                msg = await self._kernel.recv(wait)
            except TimeoutError:
                if run.replied:
                    continue
                raise
            if msg.channel == "stdin":
                if msg.msg_type == "input_request":
                    desk.on_input_request(msg)
                continue
            if msg.parent_id != msg_id:
                continue
            request = _announced(msg)
            if request is not None:
                desk.start(request, announced=True)
            else:
                run.take(msg)

    def _idle_desk(self) -> _ToolDesk:
        """The desk of a request that runs no user code (setup, probe, peek).

        A thread of an earlier cell may ask for tool replies meanwhile; its
        question is kept for the next execution, which answers it (its calls
        ride on the question), instead of being refused here.
        """

        def hold(msg: KernelMessage) -> None:
            self._held_ask = msg

        return _ToolDesk(self._kernel, None, hold=hold)

    async def _on_death(self, result: ExecResult, cause: str) -> None:
        result.status = Status.DIED
        result.state_lost = True
        result.detail = await self.supervisor.recover(
            cause, self._restart_kernel, forced=False, closed=self._closed
        )

    async def _restart_kernel(self) -> None:
        """The supervisor's restart: a fresh kernel within ``start_timeout``, or BackendError."""
        if self._kernel is None:
            raise BackendError("the kernel was dropped after a failed setup")
        try:
            await self._relaunch(self.start_timeout)
        except KernelDied as exc:
            raise BackendError(str(exc)) from exc

    # -- kernel lifecycle --------------------------------------------------

    def _new_transport(self) -> KernelTransport:
        if self.url:
            from ._jupyter_remote import GatewayKernel

            return GatewayKernel(
                self.url,
                token=self.token,
                kernel_name=self.kernel_name,
                env=self.env,
                tcp_nodelay=self.tcp_nodelay,
                tcp_quickack=self.tcp_quickack,
                request_timeout=self.request_timeout,
            )
        from ._jupyter_local import LocalKernel

        return LocalKernel(self.kernel_name, cwd=self.cwd, env=self.env)

    async def _launch(self, timeout: float | None) -> None:
        self._kernel = self._new_transport()
        deadline = None if timeout is None else now() + timeout
        await self._kernel.start(timeout)
        await self._configure(deadline)

    async def _relaunch(self, timeout: float | None) -> None:
        """Restart the kernel in place (a gateway keeps the kernel's id) and set it up again."""
        self._held_ask = None  # whoever asked is gone with the old kernel
        deadline = None if timeout is None else now() + timeout
        await self._kernel.restart(timeout)
        await self._configure(deadline)

    async def _configure(self, deadline: float | None) -> None:
        remote = bool(self.url)
        code = setup_code(
            semantics=self.semantics,
            cwd=self.cwd if remote else None,  # a local kernel is launched there already
            env=self.env if remote else None,  # and with its environment
        )
        try:
            await self._setup(code, deadline)
        except (KernelDied, TimeoutError) as exc:
            await self._drop_kernel()
            raise BackendError(f"the kernel did not accept its setup code: {exc}") from exc

    async def _setup(self, code: str, deadline: float | None) -> None:
        """Run the setup code, then make sure iopub is flowing before anyone relies on it.

        A ZeroMQ subscriber misses what is published before its subscription
        lands, so the first execution's output could vanish. The setup request
        doubles as a probe: it counts only once its idle status came back on
        iopub; failing that a silent no-op is sent until one does.
        """
        msg_id = await self._kernel.send_execute(code, silent=True)
        run = _Run(ExecResult(status=Status.OK), None)
        await self._follow_until_replied(run, msg_id, deadline)
        if run.reply_status == "error":
            detail = run.error_info.evalue if run.error_info else "error"
            raise KernelDied(f"setup failed: {detail}")
        for _ in range(_PROBES):
            if run.idle:
                return
            msg_id = await self._kernel.send_execute("", silent=True)
            run = _Run(ExecResult(status=Status.OK), None)
            probe_deadline = now() + _PROBE_S
            limit = probe_deadline if deadline is None else min(deadline, probe_deadline)
            try:
                await self._follow(run, msg_id, limit)
            except TimeoutError:
                if deadline is not None and now() >= deadline:
                    raise
        raise TimeoutError(f"no output channel traffic after {_PROBES} probes")

    async def _follow_until_replied(self, run: _Run, msg_id: str, deadline: float | None) -> None:
        while not run.replied:
            wait = None if deadline is None else deadline - now()
            if wait is not None and wait <= 0:
                raise TimeoutError("the kernel did not answer its setup request")
            msg = await self._kernel.recv(wait)
            if msg.parent_id == msg_id and msg.channel != "stdin":
                run.take(msg)
        if not run.idle:  # usually right behind the reply
            with contextlib.suppress(TimeoutError):
                await self._follow(run, msg_id, now() + _PROBE_S)

    async def _drop_kernel(self) -> None:
        kernel, self._kernel = self._kernel, None
        if kernel is not None:
            await kernel.close()


class _NotRevived(Exception):
    """A kernel that died while idle could not be restarted; the message says why."""


class _Run:
    """The messages of one execution, gathered into its :class:`ExecResult`."""

    def __init__(
        self,
        result: ExecResult,
        on_output: OutputCallback | None,
        budget: OutputBudget | None = None,
    ) -> None:
        self.result = result
        self.on_output = on_output
        #: max_output: what comes past it is dropped, then said in one notice
        self.budget = budget or OutputBudget(None)
        self.replied = False
        self.replied_at: float | None = None
        self.reply_status = ""
        self.idle = False
        self.execution_count: int | None = None
        self.user_expressions: dict[str, Any] = {}
        self._error_content: dict[str, Any] | None = None
        self.line: int | None = None  #: the statement running now, as the last mark said

    def take(self, msg: KernelMessage) -> None:
        if msg.channel == "shell":
            if msg.msg_type == "execute_reply":
                self.replied = True
                self.replied_at = now()
                self.reply_status = str(msg.content.get("status", ""))
                expressions = msg.content.get("user_expressions")
                if isinstance(expressions, dict):
                    self.user_expressions = expressions
                count = msg.content.get("execution_count")
                if isinstance(count, int):
                    self.execution_count = count
                if self.reply_status == "error" and self._error_content is None:
                    self._error_content = msg.content
            return
        if msg.msg_type == "status":
            if msg.content.get("execution_state") == "idle":
                self.idle = True
            return
        if msg.msg_type == "execute_input":
            count = msg.content.get("execution_count")
            if isinstance(count, int):
                self.execution_count = count
            return
        if msg.msg_type == "error":
            self._error_content = msg.content
            return
        if msg.msg_type == "display_data":
            line = kernel_tools.marked_line(msg.content.get("data"))
            if line is not None:  # the statement that writes what follows
                self.line = line
                return
        output = output_from_iopub(msg)
        if output is not None:
            self._emit(output if self.line is None else replace(output, line=self.line))

    def _emit(self, output: Output) -> None:
        kept = self.budget.admit(output)
        if kept is not None:
            self.emit_kept(kept)

    def emit_kept(self, output: Output) -> None:
        self.result.outputs.append(output)
        if self.on_output is not None:
            self.on_output(output)

    @property
    def error_info(self) -> ErrorInfo | None:
        if self._error_content is None:
            return None
        return error_info(self._error_content, self.execution_count)

    def settle(self, *, interrupted: bool) -> None:
        """Set the status of an execution that ran to its reply."""
        result = self.result
        result.error = self.error_info
        if self.reply_status == "ok":
            result.status = Status.OK
            return
        if interrupted and (
            self.reply_status == "aborted"
            # ipykernel stops a cell that awaits by cancelling it
            or (result.error is not None and result.error.ename in _INTERRUPTED)
        ):
            result.status = Status.INTERRUPTED
            result.detail = Supervisor.interrupted()
            return
        result.status = Status.ERROR
        if result.error is None:
            result.detail = f"the kernel replied {self.reply_status or 'without a status'}"


def _announced(msg: KernelMessage) -> dict[str, Any] | None:
    """The tool call a ``display_data`` announces (see ``_kernel_tools``), or None."""
    if msg.msg_type != "display_data":
        return None
    data = msg.content.get("data")
    if not isinstance(data, dict):
        return None
    request = data.get(kernel_tools.CALL_MIME)
    return request if isinstance(request, dict) else None


def _failure(request: Mapping[str, Any], kind: str, message: str) -> dict[str, Any]:
    return {
        "ok": False,
        "call": request.get("call"),
        "tool": request.get("tool", "?"),
        "error": {"type": kind, "message": message},
    }


#: what a cell the kernel was asked to interrupt raised (a cell that awaits is cancelled)
_INTERRUPTED = ("KeyboardInterrupt", "CancelledError")
_NO_TOOLS = "host tools are not available to this execution"
#: how long a call an input request carried waits for its announcement on iopub
_ANNOUNCEMENT_WAIT_S = 1.0
_ENDED = "the execution that made this call ended before the tool returned"


class _ToolDesk:
    """The host's end of the kernel's tool channel, for one execution.

    Starts every call it hears of at once (announced on iopub, or carried by
    an input request's prompt; each only once), and answers the kernel's
    marked input requests with every reply that is ready, in pieces (see
    :mod:`._kernel_tools` for the exchange). A reply stays at hand until the
    execution ends, so one whose answer was lost (an interrupted asker) is
    sent again when the kernel still waits for it; a call it never heard of
    (made during an earlier execution) gets an error at once.
    """

    def __init__(
        self,
        kernel: Any,
        handler: ToolHandler | None,
        *,
        hold: Callable[[KernelMessage], None] | None = None,
    ) -> None:
        self.kernel = kernel
        self.handler = handler
        #: outside any execution: a tool question goes here, unanswered, and no call starts
        self.hold = hold
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._ready: dict[int, dict[str, Any]] = {}  # done, not yet sent
        self._sent: dict[int, dict[str, Any]] = {}  # sent, kept in case the answer is lost
        self._asked = False  # an input request of ours waits for an answer
        self._wait: list[int] = []  # the calls it said were waiting
        self._outbox: list[str] = []  # pieces of an answer still to send
        self._sending: set[asyncio.Task[None]] = set()
        self._heard: dict[int, asyncio.Event] = {}  # set once a call's announcement is in
        self._closed = False

    def start(self, request: Mapping[str, Any], *, announced: bool = False) -> None:
        """Run a call of the code, unless it runs or ran already.

        ``announced``: heard on iopub, after the output the code wrote before
        the call. A call an input request carried first (stdin may overtake
        iopub) waits for its announcement, so the tool runs after that output
        reached the host, as on every backend; at most :data:`_ANNOUNCEMENT_WAIT_S`,
        in case the announcement never comes.
        """
        call = request.get("call")
        if not isinstance(call, int) or self._closed or self.hold is not None:
            return
        heard = self._heard.setdefault(call, asyncio.Event())
        if announced:
            heard.set()
        if call in self._tasks or call in self._ready or call in self._sent:
            return
        self._tasks[call] = asyncio.get_running_loop().create_task(self._run(call, request))

    async def _run(self, call: int, request: Mapping[str, Any]) -> None:
        heard = self._heard[call]
        if not heard.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(heard.wait(), _ANNOUNCEMENT_WAIT_S)
        reply = await self._reply(request)
        reply["call"] = call
        self._tasks.pop(call, None)
        self._ready[call] = reply
        self._answer()

    async def _reply(self, request: Mapping[str, Any]) -> dict[str, Any]:
        if self.handler is None:
            return _failure(request, "RuntimeError", _NO_TOOLS)
        job = {k: request.get(k) for k in wire.REQUEST_FIELDS}
        try:
            return dict(await self.handler(job))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the handler's own failure goes to the code
            return _failure(request, type(exc).__name__, str(exc))

    def on_input_request(self, msg: KernelMessage) -> None:
        prompt = str(msg.content.get("prompt", ""))
        if not prompt.startswith(kernel_tools.PROMPT):
            self._send("\x04")  # input() of user code: end of file, as without a terminal
            return
        if self.hold is not None:
            self.hold(msg)
            return
        try:
            query = json.loads(prompt[len(kernel_tools.PROMPT) :])
            calls = list(query.get("calls") or [])
            wait = [int(c) for c in query.get("wait") or []]
            part = int(query.get("part") or 0)
        except (ValueError, TypeError, AttributeError):
            self._send(kernel_tools.LAST + "[]")
            return
        if part == 0 and self._outbox:
            self._outbox = []  # the asker that took the first pieces was interrupted
        for request in calls:
            if isinstance(request, dict):
                self.start(request)
        for call in wait:
            if part == 0 and call in self._sent:
                self._ready[call] = self._sent.pop(call)  # its answer was lost
            elif call not in self._tasks and call not in self._ready and call not in self._sent:
                self._ready[call] = _failure({"call": call}, "CancelledError", _ENDED)
        self._asked = True
        self._wait = wait
        self._answer()

    def _answer(self) -> None:
        """Send the next piece of an answer, if the kernel asks and something is ready."""
        if not self._asked:
            return
        if not self._outbox:
            if not self._ready:
                return
            payload = json.dumps(list(self._ready.values()))
            self._sent.update(self._ready)
            self._ready.clear()
            size = kernel_tools.PIECE
            self._outbox = [payload[i : i + size] for i in range(0, len(payload), size)]
        piece = self._outbox.pop(0)
        self._asked = False
        self._send((kernel_tools.MORE if self._outbox else kernel_tools.LAST) + piece)

    def _send(self, text: str) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(text))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _deliver(self, text: str) -> None:
        with contextlib.suppress(KernelDied, BackendError):
            await self.kernel.send_input(text)

    async def close(self) -> None:
        """The execution ended: cancel its calls; an asker still waiting is told so."""
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._asked:
            self._asked = False
            failed = [_failure({"call": c}, "CancelledError", _ENDED) for c in self._wait]
            self._send(kernel_tools.LAST + json.dumps(failed))
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


async def _insist(cleanup: Any) -> None:
    """Run ``cleanup`` to its end even if the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(cleanup)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    task.result()


class JupyterBackend(Backend):
    """Sessions on Jupyter kernels.

    Options (all keyword, all defaulted; :meth:`session` may override any):

    ``kernel_name``
        kernelspec to start (``python3``).
    ``url``, ``token``
        a Kernel Gateway / Enterprise Gateway base URL (``http://host:8888``) and
        its auth token (default: ``$JUPYTER_GATEWAY_AUTH_TOKEN``); without
        ``url`` kernels run on this machine.
    ``cwd``, ``env``
        working directory and extra environment variables of the kernel. A
        gateway launches kernels its own way (Kernel Gateway passes on only
        ``KERNEL_*`` variables), so for remote kernels both are also applied
        inside the kernel as soon as it starts (the directory is created
        there if missing).
    ``interrupt_grace``
        seconds interrupted code (at a timeout or a cancelled ``execute``) gets
        to stop before the kernel is killed and restarted (``state_lost=True``).
    ``auto_restart``
        restart a kernel that died, so the session stays usable.
    ``semantics``
        ``"script"`` (default) or ``"notebook"``: IPython's notebook behaviour
        (echo of a bare expression, figures drawn after every execution).
    ``start_timeout``
        seconds for the restarts the session does on its own.
    ``tcp_nodelay``, ``tcp_quickack``
        on the websocket to a gateway, disable Nagle's algorithm and ACK every
        frame at once (both the default; see ``_jupyter_remote`` for why both,
        and turn them off only to measure what they save).
    ``request_timeout``
        seconds for each REST call to a gateway, and how long a gateway may
        leave the session's regular look at its kernel unanswered: a gateway
        that is frozen or gone ends the execution in flight (or the next one)
        as ``died`` within about that long, and ``close()`` does not raise.
    ``exec_timeout``, ``max_output``
        the bounds of every backend (:mod:`._limits`): wall-time seconds of an
        execution given no timeout, bytes of output kept per execution (the
        rest dropped with a notice); ``None`` turns either off.
    """

    name: ClassVar[str] = "jupyter"

    def __init__(self, **options: Any) -> None:
        JupyterSession(**options)  # reject unknown options here, not at the first session
        self.options = options

    def session(self, **options: Any) -> JupyterSession:
        return JupyterSession(**{**self.options, **options})
