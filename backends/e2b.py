"""E2B cloud sandboxes behind the executor interface, through the ``e2b-code-interpreter`` SDK.

Each session owns one sandbox (``AsyncSandbox.create``) and one code context
in it (``create_code_context``); every ``execute`` is one ``run_code`` call,
that is one streamed ``POST /execute`` to the sandbox's code-interpreter
server, whose NDJSON items come back through the SDK's ``on_stdout`` /
``on_stderr`` / ``on_result`` / ``on_error`` callbacks and are turned into our
:class:`~eager_rt.executor.Output` events as they arrive.

Why the code looks the way it does (checked against e2b-code-interpreter
2.11 / e2b 2.63 and the server in e2b-dev/code-interpreter ``template/server``;
``tests/e2b_server`` reproduces that server and lists its sources):

* **Timeouts are ours.** The SDK's ``timeout`` becomes an httpx timeout that
  its pyqwest transport turns into a whole-request deadline equal to the *sum*
  of the read and write phases, i.e. twice the value asked for, and raises the
  same ``TimeoutException`` as for other failures. So the SDK deadline is
  switched off (``timeout=0``) and the session keeps its own exact one.
* **Interrupt = close the stream.** Cancelling the ``run_code`` call closes the
  HTTP/1.1 connection the SDK pins for ``/execute``; the server sees the
  client go and interrupts the kernel. The session then *probes* the context
  (``pass``) until it answers, because an execution sent while the kernel is
  still unwinding is aborted by ipykernel and the server never ends such a
  stream. If the code ignores the interrupt for ``interrupt_grace`` seconds,
  the context is restarted and the result says ``state_lost`` (the one
  recovery policy of every backend, :mod:`._recovery`).
* **A dead kernel is waited for, not restarted.** When a kernel dies, the
  sandbox's Jupyter Server restarts it by itself and E2B's server reports
  ``ContextRestarting``; a context restart asked for meanwhile is refused
  (``500 Failed to restart context``) and leaves the context unusable. So the
  session probes the same context until the new kernel answers, sets it up
  again and reports the execution ``died`` with ``state_lost`` (files kept).
  Only if that fails is the context restarted, then replaced by a new one in
  the same sandbox, then by a new sandbox; the detail says which. A kernel
  that died between executions is noticed at the next one, whose execution
  count went back to 1: that result says ``state_lost``.
* **Bounded by default** like every backend (:mod:`._limits`): an execution
  given no timeout gets ``exec_timeout``; output past ``max_output`` bytes
  is dropped and counted in one notice at its end.
* **A stream that ends badly is never taken for success.** The SDK drops the
  ``end_of_execution`` and ``keepalive`` lines, so a truncated stream would
  look like a finished one. A response hook on the SDK's own httpx client
  watches the raw lines: no ``end_of_execution`` means the connection was lost;
  no byte at all (not even the server's 5-second keepalive) for
  ``stall_timeout`` means the same.
* **Script semantics by default.** The server runs code as notebook cells, so
  a bare expression would be displayed and inline matplotlib would show every
  figure touched at the end of each cell. Eager execution cuts one script into
  many cells, so every new context first runs the setup the Jupyter backend
  runs too (:mod:`._ipython_setup`): no echo, figures held until
  ``plt.show()``, ``input()`` raising ``EOFError``, stdout and stderr in the
  order written, leading blank lines kept so line numbers hold.
  ``semantics="notebook"`` keeps the notebook behaviour.
  ``ErrorInfo.lineno`` comes from the first ``Cell In[n], line k`` of the
  traceback (``n`` = this execution's count).
* **Host tools through E2B's own server.** The server sends every execution
  with ``allow_stdin: False`` and forwards no input request, and it runs one
  execution per context at a time; what it does stream while a cell runs is
  every ``display_data`` (as a result, unknown MIME types in ``extra``). So a
  tool call is announced that way (:mod:`._kernel_tools`), the session starts
  it at once, and the reply goes back by ``run_code`` in the sandbox's
  default context (a kernel the server keeps anyway; warmed up as soon as an
  execution brings tools), whose few lines hand it to the waiting kernel
  over a Unix socket under a name only this session knows: one round trip per
  call, concurrent calls in flight together, replies that finish together
  delivered together. Those deliveries are not the execution's stream: the
  tap ignores them. Two costs of this channel: a reply travels as code, so
  IPython's handling of the delivery cell adds about 0.3 s per MB (a reply of
  several MB takes a second or two); and a call made while no execution runs
  (by a thread of an earlier cell) is announced to nobody (the server drops
  results whose execution ended), so that thread waits on (a call in flight
  when its execution ends gets a ``CancelledError`` at once). ``peek`` is
  not offered (reading values would take an execution in the context, which
  counts in its history): ``None``.

Configuration follows E2B's own settings: ``E2B_API_KEY``, ``E2B_DOMAIN``
(and ``E2B_API_URL`` / ``E2B_SANDBOX_URL`` / ``E2B_DEBUG``) are read by the SDK
when the matching option is not given; ``template`` picks the sandbox
template (the SDK default is ``code-interpreter-v1``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import re
import secrets
import weakref
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

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
from ._limits import DEFAULT_EXEC_TIMEOUT, DEFAULT_MAX_OUTPUT, Limits, OutputBudget
from ._recovery import (
    DEFAULT_INTERRUPT_GRACE,
    Escalation,
    RecoveryPolicy,
    Supervised,
    Supervisor,
    stop_following,
)

__all__ = ["E2BBackend", "E2BSession"]

# Result attributes of the SDK and the MIME type each one came from on the server
# (template/server/api/models/result.py lifts these keys out of the bundle).
_MIME_OF = {
    "text": "text/plain",
    "html": "text/html",
    "markdown": "text/markdown",
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "pdf": "application/pdf",
    "latex": "text/latex",
    "json": "application/json",
    "javascript": "application/javascript",
    "data": "e2b/data",
}

# Error names the code-interpreter server makes up itself (messaging.py): they
# describe what happened to the kernel or its connection, not the user code.
_LOST = {"UnexpectedEndOfExecution", "WebSocketError"}
_RESTARTED = "ContextRestarting"
_ABORTED = "ExecutionAborted"

_UNWIND_S = 0.1  # a moment for an interrupted cell to unwind before a probe
_RESUME_PROBE_S = 10.0  # patience of one probe while Jupyter brings a dead kernel back
_AUTO_RESTARTED = "the kernel died (the sandbox's Jupyter restarted it by itself)"
_IDLE_RESTARTED = "the sandbox's Jupyter restarted its kernel, found dead"
_DELIVERY_TRIES = 3  # runs of a tool reply's delivery code before it is given up
_DELIVERY_TIMEOUT_S = 60.0

#: set in a task whose ``/execute`` requests are not the session's execution (tool deliveries)
_untapped: contextvars.ContextVar[bool] = contextvars.ContextVar("eager_rt_untapped", default=False)


class _Tap:
    """Watches the raw ``/execute`` stream under the SDK: status, liveness, proper end."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.status: int | None = None
        self.ended = False
        self.last_activity = now()
        self._partial = b""

    async def on_response(self, response: Any) -> None:
        if not str(response.request.url.path).endswith("/execute") or _untapped.get():
            return
        self.status = int(response.status_code)
        self.last_activity = now()
        response.stream = _tap_stream_class()(response.stream, self)

    def feed(self, chunk: bytes) -> None:
        self.last_activity = now()
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if b"end_of_execution" in line:
                with contextlib.suppress(ValueError):
                    if json.loads(line).get("type") == "end_of_execution":
                        self.ended = True


_sandbox_class: type[Any] | None = None
_stream_class: type[Any] | None = None


def _tap_stream_class() -> type[Any]:
    """An httpx async byte stream that reports every chunk to the tap on its way up."""
    global _stream_class
    if _stream_class is None:
        import httpx

        class TapStream(httpx.AsyncByteStream):
            def __init__(self, inner: Any, tap: _Tap) -> None:
                self._inner = inner
                self._tap = tap

            async def __aiter__(self) -> AsyncIterator[bytes]:
                async for chunk in self._inner:
                    self._tap.feed(chunk)
                    yield chunk

            async def aclose(self) -> None:
                await self._inner.aclose()

        _stream_class = TapStream
    return _stream_class


def _tapped_sandbox_class() -> type[Any]:
    """``AsyncSandbox`` whose per-call httpx client also reports to the instance's tap.

    Built lazily so importing this module does not import the SDK.
    """
    global _sandbox_class
    if _sandbox_class is None:
        from e2b_code_interpreter import AsyncSandbox

        class TappedSandbox(AsyncSandbox):  # type: ignore[misc]
            eager_tap: _Tap | None = None

            @property
            def _client(self) -> Any:
                client = super()._client
                if self.eager_tap is not None:
                    hooks = client.event_hooks
                    hooks["response"] = [*hooks.get("response", []), self.eager_tap.on_response]
                    client.event_hooks = hooks
                return client

        _sandbox_class = TappedSandbox
    return _sandbox_class


@dataclass
class _Run:
    """What one ``run_code`` call produced, whichever way it ended."""

    outputs: list[Output] = field(default_factory=list)
    error: Any = None  # the SDK's ExecutionError
    execution_count: int | None = None
    exception: BaseException | None = None
    stopped: str | None = None  # "interrupt" | "stall" | "patience" when we closed the stream
    callback_error: BaseException | None = None  # raised by the caller's on_output
    unsettled: str | None = None  # the error a probe met after the interrupt, other than abort
    fresh_kernel: bool = False  # its execution count went back: the kernel was restarted before
    interrupt: asyncio.Event = field(default_factory=asyncio.Event)
    desk: _ToolDesk | None = None  # where the tool calls it announces go
    line: int | None = None  # the statement running now, as the last mark said
    #: max_output: what comes past it is dropped, then said in one notice
    budget: OutputBudget = field(default_factory=lambda: OutputBudget(None))

    async def request_interrupt(self) -> None:
        """Close this run's stream (the server then interrupts the kernel)."""
        self.interrupt.set()


class E2BSession(Supervised, Session):
    """One sandbox, one code context in it, one execution at a time.

    Recovery is :mod:`._recovery`'s. The interrupt is closing the execution's
    stream, after which the server interrupts the kernel; the execution is
    over (``done``) once the context answers a probe again. A kill is the
    context's restart (:func:`._recovery.stop_following`).
    """

    backend_name: ClassVar[str] = "e2b"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        url: str | None = None,
        domain: str | None = None,
        template: str | None = None,
        api_url: str | None = None,
        sandbox_url: str | None = None,
        debug: bool | None = None,
        request_timeout: float | None = None,
        sandbox_timeout: int = 600,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        semantics: Semantics = "script",
        interrupt_grace: float = DEFAULT_INTERRUPT_GRACE,
        auto_restart: bool = True,
        start_timeout: float = 120.0,
        stall_timeout: float = 30.0,
        probe_timeout: float = 2.0,
        metadata: dict[str, str] | None = None,
        exec_timeout: float | None = DEFAULT_EXEC_TIMEOUT,
        max_output: int | None = DEFAULT_MAX_OUTPUT,
    ) -> None:
        self.limits = Limits(exec_timeout=exec_timeout, max_output=max_output)
        self.supervisor = Supervisor(
            RecoveryPolicy(interrupt_grace=interrupt_grace, auto_restart=auto_restart), "context"
        )
        self.semantics = check_semantics(semantics)
        if url is not None:  # one endpoint for the API and the sandboxes (a proxy, a local server)
            api_url = api_url or url
            sandbox_url = sandbox_url or url
        self._conn: dict[str, Any] = {
            k: v
            for k, v in {
                "api_key": api_key,
                "domain": domain,
                "api_url": api_url,
                "sandbox_url": sandbox_url,
                "debug": debug,
                "request_timeout": request_timeout,
            }.items()
            if v is not None
        }
        self.template = template
        self.sandbox_timeout = sandbox_timeout
        self.env = dict(env or {})
        self.cwd = None if cwd is None else os.fspath(cwd)
        self.start_timeout = start_timeout
        self.stall_timeout = stall_timeout
        self.probe_timeout = probe_timeout
        self.metadata = dict(metadata or {})
        self._request_timeout = request_timeout
        self.sandbox: Any = None  # the SDK AsyncSandbox, once started
        self._context: Any = None
        self._context_cwd: str | None = None
        self._tap = _Tap()
        self._alive = False
        self._closed = False
        self._death: str | None = None  # why the session is not alive, after a death
        self._starting: asyncio.Task[None] | None = None
        self._current: _Run | None = None  # the execution in flight
        self._following: asyncio.Task[None] | None = None  # and its done
        self._refreshed = 0.0
        self._tool_socket: str | None = None  # where the context's kernel takes tool replies
        self._relay: asyncio.Task[None] | None = None  # the default context's warm-up
        #: how the last recovery differed from restarting the context in place, for its detail
        self._replaced: str | None = None
        self._last_count: int | None = None  # the context's last execution count

    # -- lifecycle ---------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._alive and not self._closed

    @property
    def sandbox_id(self) -> str | None:
        return None if self.sandbox is None else str(self.sandbox.sandbox_id)

    async def start(self, timeout: float | None = None) -> None:
        """Create the sandbox and the context. Safe to call early and concurrently.

        Sandbox creation takes seconds on the real service, so callers start it
        as soon as the LLM request is sent (``asyncio.create_task(s.start())``);
        ``execute`` waits for a start in progress instead of failing.
        """
        if self._closed:
            raise SessionDead("session is closed")
        if self.alive:
            return
        if self._starting is None or self._starting.done():
            self._starting = asyncio.ensure_future(self._boot())
        try:
            await asyncio.wait_for(asyncio.shield(self._starting), timeout)
        except (TimeoutError, asyncio.TimeoutError):  # noqa: UP041 - distinct on 3.10
            raise BackendError(
                f"E2B sandbox did not start within {timeout} s (still starting in the background)"
            ) from None

    async def _boot(self) -> None:
        cls = _tapped_sandbox_class()
        try:
            sandbox = await cls.create(
                template=self.template,
                timeout=self.sandbox_timeout,
                envs=self.env or None,
                metadata=self.metadata or None,
                **self._conn,
            )
        except Exception as exc:
            raise BackendError(f"could not create an E2B sandbox: {exc}") from exc
        sandbox.eager_tap = self._tap
        self.sandbox = sandbox
        self._refreshed = now()
        try:
            self._context = await sandbox.create_code_context(
                cwd=self.cwd, language="python", request_timeout=self._request_timeout
            )
            self._context_cwd = self.cwd
            await self._setup()
        except BaseException as exc:
            await self._kill_sandbox()
            if isinstance(exc, Exception) and not isinstance(exc, BackendError):
                raise BackendError(f"E2B sandbox started but its context did not: {exc}") from exc
            raise
        if self._closed:  # closed while booting: nothing may outlive close()
            await self._kill_sandbox()
            raise SessionDead("session was closed while it started")
        self._alive = True
        self._death = None

    async def _setup(self) -> None:
        """Make a fresh context behave like a script run (see :mod:`._ipython_setup`).

        The sandbox has the environment from its creation; the working
        directory is set (and created) inside the context, which a restart
        does not keep.
        """
        # a fresh name for every kernel (so a reply never reaches the wrong one),
        # in Linux's abstract namespace: nothing left on disk
        self._tool_socket = f"\0eager_rt-tools-{secrets.token_hex(12)}"
        self._last_count = None  # a new kernel counts from 1
        code = setup_code(
            semantics=self.semantics, cwd=self._context_cwd, tool_socket=self._tool_socket
        )
        run = _Run()
        await self._stream(run, code, None)
        if run.exception is not None or run.error is not None or not self._tap.ended:
            what = run.exception or (run.error and f"{run.error.name}: {run.error.value}")
            raise BackendError(f"setting up the E2B context failed: {what or 'stream cut'}")
        if self._context_cwd is None:
            # Remember where the context started, to come back there after a
            # restart (the server does not restore a restarted context's cwd).
            self._context_cwd = "".join(o.text for o in run.outputs if o.kind == "stdout")

    async def restart(self, timeout: float | None = None) -> None:
        """Restart the context's kernel (state gone); a sandbox that is gone is replaced."""
        if self._closed:
            raise SessionDead("session is closed")
        await self._restart_within(timeout)

    async def _restart_within(self, timeout: float | None) -> None:
        """:meth:`_restart`, every failure a :class:`BackendError` (what the supervisor reports)."""
        try:
            await asyncio.wait_for(self._restart(), timeout)
        except (TimeoutError, asyncio.TimeoutError):  # noqa: UP041 - distinct on 3.10
            raise BackendError(f"E2B restart did not finish within {timeout} s") from None
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - the SDK's own errors
            raise BackendError(f"E2B restart failed: {exc}") from exc

    async def _restart_on_recovery(self) -> None:
        await self._restart_within(self.start_timeout)

    async def _restart(self) -> None:
        """Restart the context, else make a new one in the sandbox, else a new sandbox.

        ``_replaced`` says which, when it was not the first.
        """
        self._alive = False
        why = "the sandbox was no longer running"
        if self.sandbox is not None and await self._sandbox_running():
            try:
                await self.sandbox.restart_code_context(self._context)
                await self._setup()
                self._alive = True
                self._death = None
                return
            except Exception as exc:  # noqa: BLE001 - a refused restart leaves the context unusable
                why = f"the context could not be restarted: {exc}"
            try:
                await self._replace_context()
                self._replaced = f"as a new context in the same sandbox ({why}; files kept)"
                return
            except Exception as exc:  # noqa: BLE001 - fall back to a new sandbox
                why = f"{why}; no new context either: {exc}"
        await self._kill_sandbox()
        await self._boot()
        self._replaced = f"in a new sandbox ({why}; its files are gone)"

    async def _replace_context(self) -> None:
        old = self._context
        self._context = await self.sandbox.create_code_context(
            cwd=self.cwd, language="python", request_timeout=self._request_timeout
        )
        with contextlib.suppress(Exception):  # the old one holds a kernel: free it if it can be
            await asyncio.wait_for(self.sandbox.remove_code_context(old), 30)
        await self._setup()
        self._alive = True
        self._death = None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._alive = False
        following = self._following
        if following is not None and not following.done():
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
        starting = self._starting
        if starting is not None and not starting.done():
            # Let a creation in flight finish: cancelling it could leave a
            # sandbox the service made but never told us about. _boot sees
            # _closed and kills what it made.
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(starting), 120)
            if not starting.done():
                starting.cancel()
        await self._kill_sandbox()

    async def _keep_sandbox_alive(self) -> None:
        """Push the sandbox's deadline back while the session is in use.

        The service kills a sandbox ``sandbox_timeout`` seconds after creation
        unless told otherwise; a short timeout bounds what a crashed client
        leaves behind, and this keeps a long, active session from expiring.
        """
        if now() - self._refreshed < self.sandbox_timeout / 2:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sandbox.set_timeout(self.sandbox_timeout), 15)
            self._refreshed = now()

    async def _kill_sandbox(self) -> None:
        relay, self._relay = self._relay, None
        if relay is not None:
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
        sandbox, self.sandbox = self.sandbox, None
        if sandbox is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sandbox.kill(), 30)

    async def _sandbox_running(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.sandbox.is_running(request_timeout=10), 15))
        except Exception:  # noqa: BLE001 - unknown counts as not usable
            return False

    async def interrupt(self) -> None:
        run = self._current
        if run is not None:
            await run.request_interrupt()

    # -- execution ---------------------------------------------------------------

    async def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
        tools: ToolHandler | None = None,
    ) -> ExecResult:
        async with self.supervisor.turn():
            starting = self._starting
            if not self.alive and starting is not None and not starting.done():
                with contextlib.suppress(Exception):
                    await asyncio.shield(starting)
            if not self.alive:
                raise SessionDead(self.supervisor.not_alive(self._death))
            started = now()
            await self._keep_sandbox_alive()
            if tools is not None:
                self._warm_relay()
            desk = _ToolDesk(self, tools)
            run = _Run(desk=desk, budget=self.limits.budget())
            timeout = self.limits.timeout(timeout)
            try:
                result = await self._supervised(run, code, timeout, on_output)
            finally:
                # calls still running are cancelled, and threads still waiting told so
                await _insist(desk.close())
            notice = run.budget.notice()
            if notice is not None:
                result.outputs.append(notice)
                if on_output is not None:
                    on_output(notice)
            result.started = started
            result.ended = now()
            return result

    async def _supervised(
        self, run: _Run, code: str, timeout: float | None, on_output: OutputCallback | None
    ) -> ExecResult:
        follow = asyncio.ensure_future(self._follow(run, code, on_output))
        self._current, self._following = run, follow
        try:
            escalation = await self.supervisor.supervise(
                asyncio.shield(follow),
                timeout=timeout,
                interrupt=run.request_interrupt,
                kill=stop_following(follow),
            )
        except asyncio.CancelledError:
            # The caller gave up: stop the code (interrupt, grace, restart)
            # before the cancellation goes on, even if cancelled again.
            await _insist(self._wind_down(run, follow))
            raise
        finally:
            self._current = self._following = None
        if run.callback_error is not None:
            # The SDK closed the stream when the callback raised, so the
            # kernel was interrupted; settle like for a cancellation.
            probing = asyncio.ensure_future(self._until_answering(run))
            self._following = probing  # close() ends it like any execution's done
            try:
                await _insist(self._wind_down(run, probing))
            finally:
                self._following = None
            raise run.callback_error
        return await self._conclude(run, follow, escalation, timeout)

    # -- tool replies ------------------------------------------------------------

    def _warm_relay(self) -> None:
        """Start the default context's kernel, which carries tool replies, if not yet done."""
        relay = self._relay
        if relay is None or (relay.done() and (relay.cancelled() or relay.exception() is not None)):
            self._relay = asyncio.ensure_future(self._run_elsewhere("pass"))

    async def deliver(self, code: str) -> None:
        """Run a tool reply's delivery code in the default context (see :mod:`._kernel_tools`)."""
        self._warm_relay()
        assert self._relay is not None
        with contextlib.suppress(Exception):
            await asyncio.shield(self._relay)
        for attempt in range(_DELIVERY_TRIES):
            try:
                await self._run_elsewhere(code)
                return
            except Exception:  # noqa: BLE001 - a network failure: try again
                if attempt == _DELIVERY_TRIES - 1:
                    raise

    async def _run_elsewhere(self, code: str) -> None:
        """``run_code`` in the sandbox's default context, outside the execution's tap."""
        sandbox = self.sandbox
        if sandbox is None:
            raise BackendError("the sandbox is gone")
        _untapped.set(True)  # this task's own context: the execution's tap never sees it
        await asyncio.wait_for(
            sandbox.run_code(code, timeout=0, request_timeout=self._request_timeout),
            _DELIVERY_TIMEOUT_S,
        )

    async def _follow(self, run: _Run, code: str, on_output: OutputCallback | None) -> None:
        """An execution's ``done``: its stream ended; or, once we closed it, the context answers."""
        await self._stream(run, code, on_output)
        if run.stopped == "interrupt":
            await self._until_answering(run)

    async def _stream(
        self,
        run: _Run,
        code: str,
        on_output: OutputCallback | None,
        patience: float | None = None,
    ) -> None:
        """One ``run_code``, watched: interrupt requests, a stalled stream, a probe's patience.

        A result that announces a tool call goes to the run's tool desk, not to the outputs.
        """
        if run.desk is None:
            run.desk = _ToolDesk(self, None)
        desk = run.desk

        def on_result(result: Any) -> None:
            extra = getattr(result, "extra", None)
            if isinstance(extra, dict) and len(extra) == 1:
                request = extra.get(kernel_tools.CALL_MIME)
                if isinstance(request, dict):
                    desk.start(request)
                    return
                line = kernel_tools.marked_line(extra)
                if line is not None:  # the statement that writes what follows
                    run.line = line
                    return
            emit(Output("display", data=_bundle(result)))

        def emit(out: Output) -> None:
            if run.line is not None:
                out = replace(out, line=run.line)
            kept = run.budget.admit(out)
            if kept is None:
                return
            out = kept
            run.outputs.append(out)
            if on_output is not None:
                try:
                    on_output(out)
                except BaseException as exc:
                    run.callback_error = exc  # the caller's bug: stop the code, then raise it
                    raise

        def on_error(err: Any) -> None:
            run.error = err

        self._tap.reset()
        call = self.sandbox.run_code(
            code,
            context=self._context,
            on_stdout=lambda m: emit(Output("stdout", text=m.line)),
            on_stderr=lambda m: emit(Output("stderr", text=m.line)),
            on_result=on_result,
            on_error=on_error,
            timeout=0,  # no SDK deadline: it would be twice ours, see the module docstring
            request_timeout=self._request_timeout,
        )
        task: asyncio.Task[Any] = asyncio.ensure_future(call)
        deadline = None if patience is None else now() + patience
        interrupted = asyncio.ensure_future(run.interrupt.wait())
        try:
            while not task.done():
                moment = now()
                waits = [self.stall_timeout - (moment - self._tap.last_activity)]
                if deadline is not None:
                    waits.append(deadline - moment)
                if min(waits) <= 0:
                    late = deadline is not None and moment >= deadline
                    run.stopped = "patience" if late else "stall"
                    break
                await asyncio.wait(
                    {task, interrupted}, timeout=min(waits), return_when="FIRST_COMPLETED"
                )
                if interrupted.done() and not task.done():
                    run.stopped = "interrupt"
                    break
        finally:
            interrupted.cancel()
            if not task.done():
                task.cancel()  # closes the stream: the server interrupts the kernel
            try:
                execution = await task
                run.execution_count = count = execution.execution_count
                if count is not None:
                    last, self._last_count = self._last_count, count
                    run.fresh_kernel = last is not None and count <= last
            except asyncio.CancelledError:
                if run.stopped is None:
                    raise
            except Exception as exc:  # noqa: BLE001 - classified by _conclude
                run.exception = exc

    async def _until_answering(self, run: _Run) -> None:
        """Probe the context (``pass``) until it runs code again after an interrupt.

        A probe that reaches the kernel before it has finished unwinding the
        interrupted cell is aborted (stop_on_error), and the server never ends
        an aborted execution; so give the interrupt a moment, and retry probes
        with growing patience (each probe given up on re-interrupts). The
        supervisor's grace bounds the whole at a timeout or a cancellation; a
        sandbox that stopped running ends it at once.
        """
        await asyncio.sleep(_UNWIND_S)
        patience = min(0.5, self.probe_timeout)
        while True:
            probe = _Run(desk=run.desk)  # a thread of the stopped cell may still call tools
            await self._stream(probe, "pass", None, patience)
            if probe.stopped is None and probe.exception is None and self._tap.ended:
                if probe.error is None:
                    return
                if probe.error.name != _ABORTED:
                    run.unsettled = f"{probe.error.name}: {probe.error.value}"
                    return
            elif probe.exception is not None:  # refused or unreachable
                if not await self._sandbox_running():
                    run.unsettled = f"the sandbox stopped running ({probe.exception})"
                    return
                await asyncio.sleep(_UNWIND_S)  # no busy loop
            patience = min(patience * 2, self.probe_timeout)

    async def _wind_down(self, run: _Run, done: asyncio.Future[None]) -> None:
        """Stop code nobody will see the result of; restart the context if it holds on."""
        escalation = await self.supervisor.stop(
            done, interrupt=run.request_interrupt, kill=stop_following(done)
        )
        if escalation is Escalation.KILLED:
            cause = self.supervisor.ignored_interrupt(after_timeout=False)
            await self._lose_context(cause, forced=True)
        elif run.unsettled is not None:
            await self._lose_context(run.unsettled, forced=False)

    async def _conclude(
        self, run: _Run, follow: asyncio.Task[None], escalation: Escalation, timeout: float | None
    ) -> ExecResult:
        """Turn a supervised run into an ExecResult, recovering the session where needed."""
        outputs = run.outputs
        if escalation is Escalation.KILLED:
            cause = self.supervisor.ignored_interrupt(after_timeout=True)
            detail = await self._lose_context(cause, forced=True)
            return ExecResult(Status.TIMEOUT, outputs, state_lost=True, detail=detail)
        if follow.cancelled():
            detail = Supervisor.closed_meanwhile()
            return ExecResult(Status.DIED, outputs, state_lost=True, detail=detail)
        failure = follow.exception()
        if failure is not None:
            raise failure
        if run.unsettled is not None:
            return await self._died(
                outputs, f"the context failed after the interrupt: {run.unsettled}"
            )
        if escalation is Escalation.INTERRUPTED:  # by the timeout, and it stopped
            return ExecResult(Status.TIMEOUT, outputs, detail=self.supervisor.timed_out(timeout))
        if run.stopped == "interrupt":
            return ExecResult(Status.INTERRUPTED, outputs, detail=Supervisor.interrupted())
        if run.stopped == "stall":
            silence = f"no data from the sandbox for {self.stall_timeout:g} s (not even keepalives)"
            return await self._died(outputs, silence)
        if run.exception is not None:
            return await self._failed(run)
        error = run.error
        if error is not None and error.name in _LOST:
            why = f"the sandbox lost its kernel connection: {error.value}"
            return await self._died(outputs, why)
        if error is not None and error.name == _RESTARTED:
            return await self._died(outputs, _AUTO_RESTARTED, resume=True)
        if not self._tap.ended:
            return await self._died(outputs, "the execution stream ended without end_of_execution")
        if error is not None:
            info = ErrorInfo(
                ename=str(error.name),
                evalue=str(error.value),
                traceback=str(error.traceback or "").splitlines(),
                lineno=_lineno(str(error.traceback or ""), run.execution_count),
            )
            result = ExecResult(Status.ERROR, outputs, error=info)
        else:
            result = ExecResult(Status.OK, outputs)
        if run.fresh_kernel:
            await self._after_idle_death(result)
        return result

    async def _after_idle_death(self, result: ExecResult) -> None:
        """The code ran in a kernel Jupyter had restarted while the session was idle.

        Nothing told us: a kernel that dies between executions is restarted by
        the sandbox without a word, and only the execution count going back
        shows it. The state was lost before this code ran; say so, and set the
        new kernel up for the executions that follow.
        """
        result.state_lost = True
        result.detail = self.supervisor.idle_death(_IDLE_RESTARTED)
        try:
            await self._setup()
        except BackendError as exc:
            detail = await self._lose_context(
                f"{_IDLE_RESTARTED}; its set-up failed: {exc}", forced=False
            )
            result.detail = f"{result.detail}; {detail}"

    async def _failed(self, run: _Run) -> ExecResult:
        """The SDK raised. Either nothing ran (raise BackendError) or the stream broke (died)."""
        exc = run.exception
        assert exc is not None
        status = self._tap.status
        if status is not None and status >= 400:
            # Refused before any code ran (502 from the proxy, 404 for the context ...).
            gone = not await self._sandbox_running()
            if gone:
                self._alive = False
                self._death = f"HTTP {status} from the sandbox, which is no longer running"
            where = "the sandbox, which is no longer running" if gone else "the sandbox"
            raise BackendError(f"HTTP {status} from {where}; the code did not run: {exc}") from exc
        if status is None:
            # No response head at all: the sandbox could not be reached.
            if self.sandbox is not None and not await self._sandbox_running():
                self._alive = False
                self._death = "the sandbox could not be reached"
            why = f"the sandbox could not be reached; the code did not run: {exc}"
            raise BackendError(why) from exc
        why = f"the execution stream broke: {type(exc).__name__}: {exc}"
        return await self._died(run.outputs, why)

    async def _died(self, outputs: list[Output], why: str, *, resume: bool = False) -> ExecResult:
        detail = await self._lose_context(why, forced=False, resume=resume)
        return ExecResult(Status.DIED, outputs, state_lost=True, detail=detail)

    async def _lose_context(self, cause: str, *, forced: bool, resume: bool = False) -> str:
        """The context's state is gone: restart it when the policy says so; the whole detail.

        ``resume``: the sandbox is already restarting the kernel itself, so
        the context is waited for rather than restarted (see :meth:`_resume`).
        """
        self._alive = False
        self._replaced = None
        action = self._resume_on_recovery if resume else self._restart_on_recovery
        detail = await self.supervisor.recover(cause, action, forced=forced, closed=self._closed)
        if self.alive and self._replaced is not None:
            detail = f"{detail} {self._replaced}"
        if not self.alive:
            self._death = cause
        return detail

    async def _resume_on_recovery(self) -> None:
        """Wait for the kernel Jupyter restarts by itself; restart the context only if it fails."""
        try:
            await asyncio.wait_for(self._resume(), self.start_timeout)
        except Exception:  # noqa: BLE001 - the timeout too: then restart it after all
            await self._restart_on_recovery()

    async def _resume(self) -> None:
        """The same context, once its new kernel answers, set up again.

        When a kernel dies, the sandbox's Jupyter Server restarts it at once
        (its restarter; the server reports ``ContextRestarting``) and refuses
        a restart asked for meanwhile (``500 Failed to restart context``),
        after which E2B's server has dropped its connection to that kernel
        and the context never answers again. So ask for nothing: a probe
        sent now is answered by the new kernel once it is up, in the same
        context (same id, same sandbox, files kept); then the setup runs again.
        """
        self._alive = False
        patience = max(self.probe_timeout, _RESUME_PROBE_S)
        while True:
            probe = _Run()
            await self._stream(probe, "pass", None, patience)
            answered = probe.stopped is None and probe.exception is None and self._tap.ended
            if answered and probe.error is None:
                break
            if probe.exception is not None and not await self._sandbox_running():
                raise BackendError(f"the sandbox stopped running ({probe.exception})")
            await asyncio.sleep(_UNWIND_S)  # died again meanwhile, or not up yet: no busy loop
        await self._setup()
        self._alive = True
        self._death = None


def _failure(call: Any, tool: Any, kind: str, message: str) -> dict[str, Any]:
    return {
        "ok": False,
        "call": call,
        "tool": tool or "?",
        "error": {"type": kind, "message": message},
    }


_NO_TOOLS = "host tools are not available to this execution"
_ENDED = "the execution that made this call ended before the tool returned"


class _ToolDesk:
    """The host's end of the tool channel, for one execution of an E2B context.

    Starts every announced call at once; a reply goes back with every other
    reply ready at that moment, as one delivery (in pieces of at most
    :data:`._kernel_tools.PIECE` characters) through the session's default
    context, deliveries of different batches running side by side.
    """

    def __init__(self, session: E2BSession, handler: ToolHandler | None) -> None:
        self.session = session
        self.handler = handler
        self.path = session._tool_socket
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._tools: dict[int, Any] = {}
        self._ready: list[dict[str, Any]] = []
        self._deliveries: set[asyncio.Task[None]] = set()
        self._flush_pending = False
        self._closed = False

    def start(self, request: dict[str, Any]) -> None:
        call = request.get("call")
        if not isinstance(call, int) or call in self._tools or self._closed:
            return
        self._tools[call] = request.get("tool")
        self._tasks[call] = asyncio.get_running_loop().create_task(self._run(call, request))

    async def _run(self, call: int, request: dict[str, Any]) -> None:
        if self.handler is None:
            reply = _failure(call, request.get("tool"), "RuntimeError", _NO_TOOLS)
        else:
            job = {k: request.get(k) for k in wire.REQUEST_FIELDS}
            try:
                reply = dict(await self.handler(job))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the handler's own failure goes to the code
                reply = _failure(call, request.get("tool"), type(exc).__name__, str(exc))
        reply["call"] = call
        self._tasks.pop(call, None)
        self._ready.append(reply)
        if not self._flush_pending:  # replies that finish in this loop turn go together
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        batch, self._ready = self._ready, []
        if batch:
            self._send(batch)

    def _send(self, replies: list[dict[str, Any]]) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(replies))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, replies: list[dict[str, Any]]) -> None:
        if self.path is None:
            return
        payload = json.dumps(replies).encode("ascii")
        batch = secrets.token_hex(8)
        size = kernel_tools.PIECE
        pieces = [payload[i : i + size] for i in range(0, len(payload), size)] or [b"[]"]
        with contextlib.suppress(Exception):  # the code then waits on: its timeout ends it
            for index, piece in enumerate(pieces):
                code = kernel_tools.delivery_code(self.path, batch, index == len(pieces) - 1, piece)
                await self.session.deliver(code)

    async def close(self) -> None:
        """The execution ended: cancel its calls; threads still waiting for them are told so."""
        self._closed = True
        unanswered = list(self._tasks)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._flush()
        if unanswered:
            failed = [_failure(c, self._tools.get(c), "CancelledError", _ENDED) for c in unanswered]
            self._send(failed)
        if self._deliveries:
            await asyncio.gather(*self._deliveries, return_exceptions=True)


async def _insist(cleanup: Awaitable[None]) -> None:
    """Run ``cleanup`` to its end even if the caller is cancelled (again) meanwhile."""
    task = asyncio.ensure_future(cleanup)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    task.result()


def _bundle(result: Any) -> dict[str, Any]:
    """An SDK ``Result`` back into the Jupyter MIME bundle the server took it from."""
    bundle: dict[str, Any] = {}
    for attr, mime in _MIME_OF.items():
        value = getattr(result, attr, None)
        if value is not None:
            bundle[mime] = value
    chart = getattr(result, "chart", None)
    if chart is not None:
        bundle["e2b/chart"] = chart.to_dict()
    extra = getattr(result, "extra", None)
    if isinstance(extra, dict):
        bundle.update(extra)
    return bundle


def _lineno(traceback: str, execution_count: int | None) -> int | None:
    """The top-level line of this cell that was running: its outermost ``Cell In[n], line k``.

    IPython names each frame of a cell's code ``Cell In[<execution count>]``;
    the first such frame of *this* execution is the statement the cell was
    running (for a SyntaxError, the only one: the offending line).
    """
    if execution_count is None:
        return None
    hit = re.search(rf"Cell In\[{execution_count}\], line (\d+)", traceback)
    return int(hit.group(1)) if hit else None


class E2BBackend(Backend):
    """Factory of :class:`E2BSession`; its options are the sessions' defaults.

    Options: ``api_key``, ``domain``, ``template``, ``api_url``, ``sandbox_url``
    (``url`` sets both, for one endpoint that serves the API and the sandboxes),
    ``debug``, ``request_timeout`` (E2B connection settings, else the SDK reads
    ``E2B_*`` variables), ``sandbox_timeout`` (seconds the sandbox may live),
    ``env``, ``cwd`` (created in the sandbox if missing), ``semantics``
    (``"script"`` / ``"notebook"``), ``interrupt_grace`` (seconds interrupted
    code may take to stop before the context is restarted), ``auto_restart``,
    ``start_timeout`` (for the restarts the session does on its own),
    ``stall_timeout`` (seconds without a byte, not even a keepalive, before
    the stream counts as lost), ``probe_timeout`` (longest wait for one probe
    after an interrupt), ``metadata``, ``exec_timeout`` and ``max_output``
    (the bounds of every backend, :mod:`._limits`: wall-time seconds of an
    execution given no timeout, bytes of output kept per execution, the rest
    dropped with a notice; ``None`` turns either off). The shared ones are
    tabled in ``docs/backends.md``.
    """

    name: ClassVar[str] = "e2b"

    def __init__(self, **options: Any) -> None:
        E2BSession(**options)  # validate the options now, not at the first session
        self._options = options
        self._sessions: weakref.WeakSet[E2BSession] = weakref.WeakSet()

    def session(self, **options: Any) -> E2BSession:
        session = E2BSession(**{**self._options, **options})
        self._sessions.add(session)
        return session

    async def aclose(self) -> None:
        """Close any session still open, so no sandbox outlives the backend."""
        await asyncio.gather(*(s.close() for s in list(self._sessions)), return_exceptions=True)
