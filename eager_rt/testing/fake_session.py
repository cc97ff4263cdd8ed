"""A scripted :class:`~eager_rt.executor.Session` that executes nothing.

Part of :mod:`eager_rt.testing`. The code sent to :meth:`FakeSession.execute`
is split into top-level statements with :mod:`ast` (parsed, never run); each
plays what the first matching :class:`Rule` says, on the running loop's clock.
A rule may make its statement call host tools (:class:`ToolUse`) through the
``tools`` handler given to ``execute``, exactly as a stub in a real sandbox
would, so the runtime's tool handling runs on the virtual clock too.
Timeouts, interrupts, kills, restarts and the second ``execute`` that waits
its turn go through the same :class:`~eager_rt.backends._recovery.Supervisor`
as every real backend, so the results and their ``detail`` sentences are the
real ones.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import dataclasses
import functools
import math
import re
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from eager_rt import clock
from eager_rt.backends import _tool_wire as wire
from eager_rt.backends._recovery import (
    DEFAULT_INTERRUPT_GRACE,
    Escalation,
    RecoveryPolicy,
    Supervised,
    Supervisor,
)
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
from eager_rt.testing.virtual_clock import resolve

__all__ = ["ExecuteCall", "FakeBackend", "FakeSession", "Rule", "ToolUse"]


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A host tool call a scripted statement makes, as a generated stub would make it.

    At ``at`` seconds of the statement's own running time it sends
    ``{"tool", "args", "call"}`` (``args``: the stub's parameter values, plain
    data) to the ``tools`` handler given to ``execute``, and waits for the
    reply; the statement's clock stands still while it waits. Uses of one rule
    with the same ``at`` are made together and waited for together, like
    ``await asyncio.gather(...)``. The reply's value is printed (``print(value)``)
    when ``prints``; a failed call raises ``ToolError`` from the statement, or
    with ``catch`` is printed (``print(error)``) and the statement goes on.
    """

    tool: str
    args: Mapping[str, Any] = field(default_factory=dict)
    at: float = 0.0
    prints: bool = True
    catch: bool = False

    def __post_init__(self) -> None:
        if not self.at >= 0:
            raise ValueError(f"a tool use's at is seconds >= 0, got {self.at!r}")
        wire.encode(dict(self.args), f"the arguments of {self.tool}()")  # plain data only

    def request(self, call: int) -> dict[str, Any]:
        return {"tool": self.tool, "args": wire.encode(dict(self.args)), "call": call}


@dataclass(frozen=True, slots=True)
class Rule:
    """What the top-level statements that match do when a :class:`FakeSession` plays them.

    A statement runs for ``cost`` seconds (virtual ones on a
    :class:`~eager_rt.testing.VirtualClockLoop`), writing its outputs on the
    way, then raises ``raises`` or kills its interpreter (``dies``), or simply
    ends. An interrupt reaches it after ``interrupt_delay`` seconds (a long C
    call notices it late), at the latest when the statement ends; with
    ``math.inf`` it ignores interrupts, and only a kill stops it if it runs
    past a timeout.
    """

    #: a substring of the statement's source, a compiled pattern searched in it, or None for all
    match: str | re.Pattern[str] | None = None
    #: seconds the statement runs
    cost: float = 0.0
    #: written to stdout / stderr as it ends
    stdout: str = ""
    stderr: str = ""
    #: ``(seconds into the statement, Output)`` pairs, for output while it runs
    outputs: Sequence[tuple[float, Output]] = ()
    #: the exception name it raises as it ends (``ErrorInfo.ename``), and its message
    raises: str | None = None
    evalue: str = ""
    #: the statement's line the exception is reported on (1 = its first line)
    line: int = 1
    #: seconds between an interrupt and its KeyboardInterrupt; math.inf ignores interrupts
    interrupt_delay: float = 0.0
    #: it never ends and ignores interrupts (``cost`` and ``interrupt_delay`` are infinite)
    hang: bool = False
    #: its interpreter dies as it ends, for this reason (an ``ExecResult.detail`` cause)
    dies: str | None = None
    #: host tool calls it makes on the way (see :class:`ToolUse`)
    tools: Sequence[ToolUse] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "outputs", tuple(self.outputs))  # frozen means frozen
        object.__setattr__(self, "tools", tuple(self.tools))
        if not self.cost >= 0:
            raise ValueError(f"cost must be >= 0 seconds, got {self.cost!r}")
        if not self.interrupt_delay >= 0:
            raise ValueError(f"interrupt_delay must be >= 0, got {self.interrupt_delay!r}")
        if self.line < 1:
            raise ValueError(f"line counts from 1, got {self.line!r}")
        cost = math.inf if self.hang else self.cost
        for at, _ in self.outputs:
            if not 0 <= at <= cost:
                raise ValueError(f"an output at {at!r} s falls outside the statement (0..{cost})")
        for use in self.tools:
            if not use.at <= cost:
                raise ValueError(f"a tool use at {use.at!r} s falls outside the statement")
        if self.raises is not None and self.dies is not None:
            raise ValueError("a statement either raises or kills its interpreter, not both")

    def matches(self, statement: str) -> bool:
        if self.match is None:
            return True
        if isinstance(self.match, str):
            return self.match in statement
        return self.match.search(statement) is not None


@dataclass(slots=True)
class ExecuteCall:
    """One call to :meth:`FakeSession.execute`, as recorded (times from ``clock.now()``)."""

    code: str
    started: float
    interpreter: int  #: which interpreter ran it: 1 for the first, +1 per (re)start
    ended: float | None = None  #: None while it runs
    result: ExecResult | None = None  #: None while it runs, or when it was cancelled
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class _Step:
    """One statement as the fake plays it."""

    filename: str  #: the execution's name in tracebacks
    text: str
    lineno: int  #: first line in the executed string
    cost: float
    outputs: tuple[tuple[float, Output], ...]
    error: ErrorInfo | None
    interrupt_delay: float
    dies: str | None
    uses: tuple[ToolUse, ...] = ()


@dataclass(frozen=True, slots=True)
class _Ended:
    status: Status  #: OK, ERROR or INTERRUPTED
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class _Died:
    why: str


@dataclass(frozen=True, slots=True)
class _Killed:
    """The supervisor killed the interpreter."""


@dataclass(frozen=True, slots=True)
class _Gone:
    """close() or restart() ended the interpreter under the execution."""

    detail: str


_Outcome = _Ended | _Died | _Killed | _Gone


def _segment(code: str, node: ast.stmt) -> tuple[str, int]:
    """The statement's source (decorators included) and its first line."""
    decorators: list[ast.expr] = getattr(node, "decorator_list", None) or []
    span = ast.Pass(
        lineno=node.lineno,
        col_offset=node.col_offset,
        end_lineno=node.end_lineno,
        end_col_offset=node.end_col_offset,
    )
    if decorators:
        # a decorated statement starts a logical line: at the first "@", column 0 of the module
        span.lineno, span.col_offset = decorators[0].lineno, 0
    return ast.get_source_segment(code, span) or "", span.lineno


def _printed(node: ast.stmt) -> str | None:
    """What ``print(<literals>)`` would write, without running it; None for anything else."""
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return None
    call = node.value
    if not (isinstance(call.func, ast.Name) and call.func.id == "print"):
        return None
    try:
        values = [ast.literal_eval(arg) for arg in call.args]
        options = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if set(options) - {"sep", "end"}:
        return None
    sep, end = options.get("sep", " "), options.get("end", "\n")
    if not isinstance(sep, str | None) or not isinstance(end, str | None):
        return None
    return (" " if sep is None else sep).join(map(str, values)) + ("\n" if end is None else end)


# --------------------------------------------------------------------------- the session


class _Execution:
    """The code of one ``execute`` being played, statement by statement, on the clock."""

    def __init__(
        self,
        steps: list[_Step] | ErrorInfo,
        on_output: OutputCallback | None,
        tools: ToolHandler | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.done: asyncio.Future[_Outcome] = loop.create_future()
        self.outputs: list[Output] = []
        self.callback_error: BaseException | None = None
        self._on_output = on_output
        self._tools = tools
        self._calls = 0  # tool calls made so far: each request's "call" number
        self._steps = steps
        self._current: _Step | None = None
        self._interrupt_at: float | None = None  # when KeyboardInterrupt takes effect
        self._wake: asyncio.Future[bool] | None = None
        self._task = loop.create_task(self._play(), name="eager_rt-fake-execution")
        self._task.add_done_callback(self._failed)

    def _failed(self, task: asyncio.Task[None]) -> None:
        """A bug in the fake (or a callback's BaseException) surfaces from execute(), not a hang."""
        error = None if task.cancelled() else task.exception()
        if error is not None and not self.done.done():
            self.done.set_exception(error)

    def interrupt(self) -> None:
        """Deliver an interrupt to the running statement (it may take a while, or ignore it)."""
        if self.done.done():
            return
        delay = self._current.interrupt_delay if self._current is not None else 0.0
        at = clock.now() + delay
        if self._interrupt_at is None or at < self._interrupt_at:
            self._interrupt_at = at
            if self._wake is not None:
                resolve(self._wake, False)

    def end(self, outcome: _Outcome) -> None:
        """End it from outside (a kill, a death, close/restart): nothing more runs."""
        resolve(self.done, outcome)
        self._task.cancel()

    async def wait_stopped(self) -> None:
        await asyncio.gather(self._task, return_exceptions=True)

    async def _play(self) -> None:
        if isinstance(self._steps, ErrorInfo):
            resolve(self.done, _Ended(Status.ERROR, self._steps))  # it does not compile
            return
        for step in self._steps:
            self._current = step
            start = clock.now()
            waited = 0.0  # the statement's clock stands still while a tool call is answered
            for at, what in _timeline(step):
                if not await self._until(start + waited + at):
                    return self._keyboard_interrupt(step)
                if isinstance(what, Output):
                    self._emit(what)
                    continue
                asked = clock.now()
                replies = await self._call(what)
                waited += clock.now() - asked
                if replies is None:
                    return self._keyboard_interrupt(step)
                error = self._use(step, what, replies)
                if error is not None:
                    resolve(self.done, _Ended(Status.ERROR, error))
                    return
            if not await self._until(start + waited + step.cost):
                return self._keyboard_interrupt(step)
            if self._interrupt_at is not None and self._interrupt_at < math.inf:
                return self._keyboard_interrupt(step)  # noticed as the statement returns
            if step.dies is not None:
                resolve(self.done, _Died(step.dies))
                return
            if step.error is not None:
                resolve(self.done, _Ended(Status.ERROR, step.error))
                return
        resolve(self.done, _Ended(Status.OK))

    async def _call(self, uses: tuple[ToolUse, ...]) -> list[dict[str, Any]] | None:
        """Send the uses' requests together and wait for every reply; None: interrupted first."""
        loop = asyncio.get_running_loop()
        jobs = []
        for use in uses:
            self._calls += 1
            jobs.append(loop.create_task(self._answer(use.request(self._calls))))
        waiting = asyncio.gather(*jobs)
        try:
            while not waiting.done():
                stop = math.inf if self._interrupt_at is None else self._interrupt_at
                if stop <= clock.now():
                    return None  # KeyboardInterrupt in the stub's wait; the calls are dropped
                wake = self._wake = loop.create_future()
                waiting.add_done_callback(functools.partial(_wake_up, wake))
                handle = loop.call_at(stop, resolve, wake, False) if stop < math.inf else None
                try:
                    await wake
                finally:
                    self._wake = None
                    if handle is not None:
                        handle.cancel()
            return waiting.result()
        finally:
            if not waiting.done():
                waiting.cancel()  # interrupted, or the execution was ended from outside
                await asyncio.gather(waiting, return_exceptions=True)

    async def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """The handler's reply, as a backend would relay it (its own failure becomes one)."""
        if self._tools is None:
            return _tool_error(request["tool"], "RuntimeError", "this execution was given no tools")
        try:
            return dict(await self._tools(request))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the handler's own failure goes to the code
            return _tool_error(request["tool"], type(exc).__name__, str(exc))

    def _use(
        self, step: _Step, uses: tuple[ToolUse, ...], replies: list[dict[str, Any]]
    ) -> ErrorInfo | None:
        """What the statement does with the replies: print them, or raise the first error."""
        for use, reply in zip(uses, replies, strict=True):
            try:
                value = wire.reply_value(reply)
            except wire.ToolError as exc:
                if not use.catch:
                    return _error(step.filename, step.text, step.lineno, "ToolError", str(exc))
                self._emit(Output("stdout", f"{exc}\n"))
                continue
            if use.prints:
                self._emit(Output("stdout", f"{value}\n"))
        return None

    async def _until(self, when: float) -> bool:
        """Wait until ``when``; False when a KeyboardInterrupt takes effect first."""
        loop = asyncio.get_running_loop()
        while True:
            stop = math.inf if self._interrupt_at is None else self._interrupt_at
            goal, reached = (stop, False) if stop <= when else (when, True)
            if goal <= clock.now():
                return reached
            self._wake = loop.create_future()
            handle = loop.call_at(goal, resolve, self._wake, True) if goal < math.inf else None
            try:
                if await self._wake:
                    return reached  # the goal's timer fired (an interrupt resolves it False)
            finally:
                self._wake = None
                if handle is not None:
                    handle.cancel()

    def _keyboard_interrupt(self, step: _Step) -> None:
        error = _error(step.filename, step.text, step.lineno, "KeyboardInterrupt", "")
        resolve(self.done, _Ended(Status.INTERRUPTED, error))

    def _emit(self, output: Output) -> None:
        step = self._current
        if step is not None and isinstance(self._steps, list) and len(self._steps) > 1:
            # as the worker backends do: which of several statements wrote it
            output = dataclasses.replace(output, line=step.lineno)
        self.outputs.append(output)
        if self._on_output is None:
            return
        try:
            self._on_output(output)
        except Exception as exc:  # noqa: BLE001 - raised from execute() once the code ended
            if self.callback_error is None:
                self.callback_error = exc


def _timeline(step: _Step) -> list[tuple[float, Output | tuple[ToolUse, ...]]]:
    """The statement's outputs and tool calls in the order of its own time (output first)."""
    groups: dict[float, list[ToolUse]] = {}
    for use in step.uses:
        groups.setdefault(use.at, []).append(use)
    calls = [(at, tuple(uses)) for at, uses in groups.items()]
    events: list[tuple[float, int, Output | tuple[ToolUse, ...]]] = [
        (at, 0, output) for at, output in step.outputs
    ] + [(at, 1, uses) for at, uses in calls]
    events.sort(key=lambda e: (e[0], e[1]))
    return [(at, what) for at, _, what in events]


def _wake_up(wake: asyncio.Future[bool], _: object) -> None:
    resolve(wake, True)


def _tool_error(tool: str, kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "tool": tool, "error": {"type": kind, "message": message}}


def _error(
    filename: str, text: str, lineno: int, ename: str, evalue: str, line: int = 1
) -> ErrorInfo:
    """An exception raised on the ``line``-th line of the statement ``text`` at ``lineno``."""
    lines = text.splitlines() or [""]
    line = min(line, len(lines))
    lineno += line - 1
    return ErrorInfo(
        ename=ename,
        evalue=evalue,
        traceback=[
            "Traceback (most recent call last):",
            f'  File "{filename}", line {lineno}, in <module>',
            f"    {lines[line - 1].strip()}",
            f"{ename}: {evalue}" if evalue else ename,
        ],
        lineno=lineno,
    )


class FakeSession(Supervised, Session):
    """A :class:`~eager_rt.executor.Session` that plays scripted statements and executes nothing.

    Each top-level statement of the executed code takes the first
    :class:`Rule` that matches it (or costs ``default_cost`` seconds and does
    nothing else); statements run in order and the first that raises ends the
    execution, as in Python. With ``echo_prints``, a ``print`` of literals
    whose rule declares no output writes what Python would. Code that does not
    parse fails with ``SyntaxError`` at its line. ``ErrorInfo.lineno`` is the
    line in the executed string, as on every backend.

    Starting (and restarting) an interpreter takes ``start_cost`` seconds.
    ``interrupt_grace`` and ``auto_restart`` mean what they mean on every
    backend (:class:`~eager_rt.backends._recovery.RecoveryPolicy`).
    :meth:`crash` kills the interpreter from outside, as an OOM killer would.
    """

    backend_name: ClassVar[str] = "fake"

    def __init__(
        self,
        rules: Iterable[Rule] = (),
        *,
        default_cost: float = 0.0,
        start_cost: float = 0.0,
        echo_prints: bool = True,
        interrupt_grace: float = DEFAULT_INTERRUPT_GRACE,
        auto_restart: bool = True,
        unit: str = "worker",
    ) -> None:
        if not default_cost >= 0 or not start_cost >= 0:
            raise ValueError("default_cost and start_cost are seconds >= 0")
        self.rules = list(rules)
        self.default = Rule(cost=default_cost)
        self.start_cost = start_cost
        self.echo_prints = echo_prints
        self.supervisor = Supervisor(RecoveryPolicy(interrupt_grace, auto_restart), unit)
        #: every execute() call, in the order they began
        self.calls: list[ExecuteCall] = []
        #: interpreters started so far (state is lost at each restart)
        self.interpreters = 0
        self._alive = False
        self._closed = False
        self._death: str | None = None  # why the interpreter died while idle
        self._running: _Execution | None = None

    @property
    def executed(self) -> list[str]:
        """The code of every execute() call, in order."""
        return [call.code for call in self.calls]

    # ------------------------------------------------------------------ Session

    @property
    def alive(self) -> bool:
        return self._alive

    async def start(self, timeout: float | None = None) -> None:
        if self._alive:
            return
        self._closed = False
        await self._boot(timeout)

    async def restart(self, timeout: float | None = None) -> None:
        self._closed = False
        self._shut_down(_Gone("the session was restarted while the code ran"))
        await self._boot(timeout)

    async def interrupt(self) -> None:
        if self._running is not None:
            self._running.interrupt()

    async def close(self) -> None:
        self._closed = True
        self._shut_down(_Gone(Supervisor.closed_meanwhile()))
        self._death = None

    def crash(self, why: str = "killed by SIGKILL") -> None:
        """The interpreter dies now: the running execution ends ``died``, or it died idle."""
        if self._running is not None:
            self._alive = False
            self._running.end(_Died(why))
        elif self._alive:
            self._alive = False
            self._death = why

    async def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
        tools: ToolHandler | None = None,
    ) -> ExecResult:
        self._check_alive()
        supervisor = self.supervisor
        async with supervisor.turn():
            note = ""
            if not self._alive:
                self._check_alive()  # it died while this call waited for its turn
                note = supervisor.idle_death(self._death or "")
                await self._boot(None)
            call = ExecuteCall(code, clock.now(), self.interpreters)
            self.calls.append(call)
            run = _Execution(self._plan(code, len(self.calls)), on_output, tools)
            self._running = run
            try:
                escalation = await supervisor.supervise(
                    asyncio.shield(run.done),
                    timeout=timeout,
                    interrupt=self._interrupt_run,
                    kill=self._kill_run,
                )
            except asyncio.CancelledError:
                call.cancelled = True
                await self._abandon(run)
                call.ended = clock.now()
                raise
            finally:
                self._running = None
            ended = clock.now()
            await run.wait_stopped()
            result = await self._result(run, escalation, timeout)
            result.started, result.ended = call.started, ended
            call.ended, call.result = ended, result
            if note:
                result.state_lost = True
                result.detail = f"{note}; {result.detail}" if result.detail else note
            if run.callback_error is not None:
                raise run.callback_error
            return result

    # ------------------------------------------------------------------ internals

    def _check_alive(self) -> None:
        if self._alive:
            return
        if self._death is not None and self.auto_restart and not self._closed:
            return  # died while idle: execute() restarts it and says so
        raise SessionDead(self.supervisor.not_alive(self._death))

    async def _boot(self, timeout: float | None) -> None:
        if timeout is not None and self.start_cost > timeout:
            await asyncio.sleep(timeout)
            raise BackendError(f"the {self.supervisor.unit} did not start within {timeout:g} s")
        if self.start_cost:
            await asyncio.sleep(self.start_cost)
        self.interpreters += 1
        self._alive = True
        self._death = None

    async def _reboot(self) -> None:
        await self._boot(None)

    def _shut_down(self, gone: _Gone) -> None:
        if self._running is not None:
            self._running.end(gone)
        self._alive = False

    async def _interrupt_run(self) -> None:
        if self._running is not None:
            self._running.interrupt()

    async def _kill_run(self) -> None:
        self._alive = False
        if self._running is not None:
            self._running.end(_Killed())

    async def _abandon(self, run: _Execution) -> None:
        """The caller gave up: stop the code (interrupt, grace, kill) before it moves on."""

        async def interrupt() -> None:
            run.interrupt()

        async def kill() -> None:
            self._alive = False
            run.end(_Killed())

        async def stop() -> None:
            if await self.supervisor.stop(run.done, interrupt=interrupt, kill=kill) is (
                Escalation.KILLED
            ):
                cause = self.supervisor.ignored_interrupt(after_timeout=False)
                await self.supervisor.recover(cause, self._reboot, forced=True, closed=self._closed)
            await run.wait_stopped()

        cleanup = asyncio.ensure_future(stop())
        with contextlib.suppress(asyncio.CancelledError):
            # cancelled again: the clean-up goes on, owned by the session
            await asyncio.shield(cleanup)

    async def _result(
        self, run: _Execution, escalation: Escalation, timeout: float | None
    ) -> ExecResult:
        supervisor = self.supervisor
        outcome = run.done.result()
        result = ExecResult(Status.OK, run.outputs)
        timed_out = escalation is not Escalation.FINISHED
        if isinstance(outcome, _Ended):
            result.status, result.error = outcome.status, outcome.error
            if outcome.status is Status.INTERRUPTED and timed_out:
                result.status, result.detail = Status.TIMEOUT, supervisor.timed_out(timeout)
            elif outcome.status is Status.INTERRUPTED:
                result.detail = supervisor.interrupted()
        elif isinstance(outcome, _Killed):
            result.status, result.state_lost = Status.TIMEOUT, True
            cause = supervisor.ignored_interrupt(after_timeout=True)
            result.detail = await supervisor.recover(
                cause, self._reboot, forced=True, closed=self._closed
            )
        elif isinstance(outcome, _Died):
            self._alive = False
            result.status, result.state_lost = Status.DIED, True
            result.detail = await supervisor.recover(
                outcome.why, self._reboot, forced=False, closed=self._closed
            )
            if not self._alive:
                self._death = outcome.why if not self._closed else None
        else:
            result.status, result.state_lost, result.detail = Status.DIED, True, outcome.detail
        return result

    def _plan(self, code: str, number: int) -> list[_Step] | ErrorInfo:
        """The statements of ``code`` and what each does, or the SyntaxError it raises."""
        filename = f"<cell-{number}>"
        try:
            tree = ast.parse(code, filename=filename)
        except (SyntaxError, ValueError) as exc:
            lineno = exc.lineno if isinstance(exc, SyntaxError) else None
            lines = traceback.format_exception_only(type(exc), exc)
            return ErrorInfo(
                ename=type(exc).__name__,
                evalue=str(exc),
                traceback="".join(lines).rstrip("\n").split("\n"),
                lineno=lineno,
            )
        return [self._step(code, node, filename) for node in tree.body]

    def _step(self, code: str, node: ast.stmt, filename: str) -> _Step:
        text, lineno = _segment(code, node)
        rule = next((r for r in self.rules if r.matches(text)), self.default)
        cost = math.inf if rule.hang else rule.cost
        outputs = sorted(rule.outputs, key=lambda pair: pair[0])
        if rule.stdout:
            outputs.append((cost, Output("stdout", rule.stdout)))
        if rule.stderr:
            outputs.append((cost, Output("stderr", rule.stderr)))
        if not outputs and self.echo_prints and cost < math.inf:
            printed = _printed(node)
            if printed:
                outputs.append((cost, Output("stdout", printed)))
        error = None
        if rule.raises is not None:
            error = _error(filename, text, lineno, rule.raises, rule.evalue, rule.line)
        return _Step(
            filename=filename,
            text=text,
            lineno=lineno,
            cost=cost,
            outputs=tuple(outputs),
            error=error,
            interrupt_delay=math.inf if rule.hang else rule.interrupt_delay,
            dies=rule.dies,
            uses=tuple(rule.tools),
        )


class FakeBackend(Backend):
    """A backend whose sessions are :class:`FakeSession` values with these options."""

    name: ClassVar[str] = "fake"

    def __init__(self, **options: Any) -> None:
        self.options = options

    def session(self, **options: Any) -> FakeSession:
        return FakeSession(**{**self.options, **options})
