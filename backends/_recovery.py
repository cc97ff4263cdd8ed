"""One recovery policy for every backend: timeout, interrupt, grace, kill and restart.

Every session, whatever it drives (a worker process, a container, a Jupyter
kernel, an E2B code context), stops runaway code the same way and says so in
the same words. A backend supplies the three things only it knows how to do
(wait for its execution to end, interrupt it, kill what runs it) and asks a
:class:`Supervisor` what to do and what to report. The sentences a result's
``detail`` carries are written here, once.

The rules (also in ``docs/backends.md``):

* ``timeout`` counts from the moment the execution starts; when it passes, the
  code is interrupted (``KeyboardInterrupt``, state kept). If it has not ended
  ``interrupt_grace`` seconds later, what runs it is killed and restarted, and
  the result says ``state_lost``.
* A cancelled ``execute`` is stopped the same way (interrupt, grace, kill)
  before the cancellation propagates.
* After a death, the session restarts when ``auto_restart`` is on (the default);
  after a kill for an ignored interrupt it always restarts.
* A second ``execute`` while one runs waits for its turn (first come, first
  served); its timeout starts when its turn does.

All times are read from the running loop's clock (:mod:`eager_rt.clock`).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from eager_rt.executor import BackendError

__all__ = [
    "DEFAULT_INTERRUPT_GRACE",
    "Escalation",
    "RecoveryPolicy",
    "Supervised",
    "Supervisor",
    "stop_following",
]

#: seconds interrupted code gets to stop before it is killed, on every backend
DEFAULT_INTERRUPT_GRACE = 2.0


class Escalation(enum.Enum):
    """How far :meth:`Supervisor.supervise` had to go."""

    FINISHED = "finished"  #: the code ended on its own, before any deadline
    INTERRUPTED = "interrupted"  #: interrupted, and it stopped within the grace period
    KILLED = "killed"  #: it ignored the interrupt for the grace period; ``kill`` was called


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    """The two knobs every backend takes, with the same names and meanings."""

    #: seconds interrupted code gets to stop before it is killed
    interrupt_grace: float = DEFAULT_INTERRUPT_GRACE
    #: start a fresh interpreter after one died (a kill for an ignored interrupt always restarts)
    auto_restart: bool = True

    def __post_init__(self) -> None:
        if not self.interrupt_grace >= 0:
            raise ValueError(f"interrupt_grace must be >= 0 seconds, not {self.interrupt_grace!r}")


Action = Callable[[], Awaitable[None]]


class Supervisor:
    """One session's turns, deadlines, escalation and the sentences that report them.

    ``unit`` names what a kill ends and a restart replaces ("worker",
    "container", "kernel", "context"), for the result's ``detail``.
    """

    def __init__(self, policy: RecoveryPolicy, unit: str) -> None:
        self.policy = policy
        self.unit = unit
        self._turn = asyncio.Lock()
        # the deadline watch (see supervise): one timer that outlives the
        # executions it watches, moved only when a deadline comes earlier
        self._deadline: float | None = None
        self._on_deadline: Callable[[], None] | None = None
        self._watch: asyncio.TimerHandle | None = None
        self._watch_loop: asyncio.AbstractEventLoop | None = None

    @property
    def interrupt_grace(self) -> float:
        return self.policy.interrupt_grace

    @property
    def auto_restart(self) -> bool:
        return self.policy.auto_restart

    def turn(self) -> asyncio.Lock:
        """Held for the whole of one ``execute``: a second one waits here for its turn."""
        return self._turn

    @property
    def busy(self) -> bool:
        """An execution holds the turn."""
        return self._turn.locked()

    # ------------------------------------------------------------------ escalation

    async def supervise(
        self,
        done: asyncio.Future[Any],
        *,
        timeout: float | None,
        interrupt: Action,
        kill: Action,
    ) -> Escalation:
        """Wait for ``done``; past ``timeout``, stop the code (see :meth:`stop`).

        ``done`` is awaited directly, the cheapest wait asyncio has (no extra
        turn of the loop per execution), so the caller's cancellation cancels
        it: pass ``asyncio.shield(task)`` to keep a task going then, or a
        future the backend can replace. A failure of ``done`` itself is not
        raised here; the caller reads it.
        """
        loop = asyncio.get_running_loop()
        escalating: asyncio.Task[Escalation] | None = None

        def deadline() -> None:
            nonlocal escalating
            if not done.done():
                escalating = loop.create_task(self.stop(done, interrupt=interrupt, kill=kill))

        if timeout is not None:
            self._arm(loop, loop.time() + max(timeout, 0.0), deadline)
        try:
            await done
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                if escalating is not None:
                    escalating.cancel()
                raise
            # ``done`` itself was cancelled (the escalation's kill, a close()):
            # that is an end like any other, for the caller to read
        except Exception:  # noqa: BLE001, S110 - done's own failure is the caller's to read
            pass
        finally:
            if self._on_deadline is deadline:  # (executions take turns; this is one)
                self._deadline = self._on_deadline = None
        if escalating is None:
            return Escalation.FINISHED
        return await escalating

    def _arm(
        self, loop: asyncio.AbstractEventLoop, when: float, fire: Callable[[], None]
    ) -> None:
        """Call ``fire`` at ``when`` unless the execution ends first.

        Most executions end long before their deadline (by default minutes
        away), so a timer per execution would be scheduled and cancelled for
        nothing every time (a tenth of a trivial round trip): the one watch is
        left in place and looks, when it fires, whether the deadline now in
        force has passed.
        """
        self._deadline, self._on_deadline = when, fire
        watch = self._watch
        if watch is None or self._watch_loop is not loop or watch.when() > when:
            if watch is not None:
                watch.cancel()
            self._watch = loop.call_at(when, self._check, loop)
            self._watch_loop = loop

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._watch_loop:
            return  # a watch left on a loop the session no longer runs on
        self._watch = None
        when, fire = self._deadline, self._on_deadline
        if when is None or fire is None:
            return  # nothing runs: the watch ends until the next deadline
        if loop.time() >= when:
            self._deadline = self._on_deadline = None
            fire()
        else:
            self._watch = loop.call_at(when, self._check, loop)

    async def stop(
        self, done: asyncio.Future[Any], *, interrupt: Action, kill: Action
    ) -> Escalation:
        """Interrupt; if ``done`` has not resolved ``interrupt_grace`` seconds later, kill."""
        if done.done():
            return Escalation.INTERRUPTED
        await interrupt()
        finished, _ = await asyncio.wait({done}, timeout=self.policy.interrupt_grace)
        if finished:
            return Escalation.INTERRUPTED
        await kill()
        return Escalation.KILLED

    # ------------------------------------------------------------------ what to say

    def timed_out(self, timeout: float | None) -> str:
        """The code hit its timeout and stopped at the interrupt; state kept."""
        limit = "" if timeout is None else f" of {timeout:g} s"
        return f"the timeout{limit} fired; the code was interrupted and the state kept"

    @staticmethod
    def interrupted() -> str:
        return "interrupted; the state was kept"

    def ignored_interrupt(self, *, after_timeout: bool) -> str:
        """The cause of a kill: the code did not stop within the grace period."""
        when = " after the timeout" if after_timeout else ""
        grace = self.policy.interrupt_grace
        return (
            f"the code ignored the interrupt for {grace:g} s{when} and the {self.unit} was killed"
        )

    @staticmethod
    def closed_meanwhile() -> str:
        """The detail of an execution that ``close()`` or ``restart()`` ended."""
        return "the session was closed or restarted while the code ran"

    def idle_death(self, why: str) -> str:
        return f"the {self.unit} had died while idle ({why}) and was restarted"

    def not_alive(self, why: str | None) -> str:
        """The message of the ``SessionDead`` raised by ``execute`` on a dead session."""
        cause = f" (the {self.unit} died: {why})" if why else ""
        return f"the session is not alive{cause}; start() or restart() it first"

    async def recover(
        self, cause: str, restart: Action, *, forced: bool, closed: bool = False
    ) -> str:
        """After a kill (``forced``) or a death: restart when the policy says so.

        Returns the whole ``detail`` sentence: the cause, then what became of
        the session. A failed restart is reported there, not raised.
        """
        if not (forced or self.policy.auto_restart):
            return f"{cause}; the {self.unit} was not restarted (auto_restart is off)"
        if closed:
            return f"{cause}; not restarted: the session was closed meanwhile"
        try:
            await restart()
        except BackendError as exc:
            return f"{cause}; the restart failed: {exc}"
        return f"{cause}; the {self.unit} was restarted"


class Supervised:
    """The recovery options every session exposes, read from its :class:`Supervisor`."""

    supervisor: Supervisor

    @property
    def interrupt_grace(self) -> float:
        return self.supervisor.interrupt_grace

    @property
    def auto_restart(self) -> bool:
        return self.supervisor.auto_restart


def stop_following(done: asyncio.Future[Any]) -> Action:
    """A ``kill`` for sessions whose kill is their restart (a Jupyter kernel, an E2B context).

    Neither can be killed apart from being restarted, and the forced restart
    that always follows a kill (``recover(..., forced=True)``) ends the code;
    so the kill only stops following the execution: ``done`` is cancelled.
    """

    async def kill() -> None:
        done.cancel()
        await asyncio.gather(done, return_exceptions=True)

    return kill
