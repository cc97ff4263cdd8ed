"""The worker seam: how a worker-style backend starts, signals and ends one worker.

Like jupyter_client's kernel provisioners, this is the small contract between
the protocol client (:class:`~eager_rt.backends._framed.WorkerSession`, which
speaks :mod:`~eager_rt.backends._protocol` and applies the recovery policy)
and whatever runs the interpreter: a local subprocess, a Docker container, a
Podman container. A new worker-style backend is a :class:`WorkerProcess` (often
a :class:`SubprocessWorker` with a wrapped argv) and a session class that
hands it to ``WorkerSession``; see ``docs/contributing.md``.

:class:`SubprocessWorker` is the local implementation: the worker's stdin and
stdout pipes are the channel, the process runs in its own session and process
group (a kill takes its children with it; a terminal's Ctrl-C never reaches
it), and the tail of its private stderr goes into death reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, ClassVar

__all__ = ["SubprocessWorker", "WorkerProcess", "describe_exit"]

_STDERR_KEEP = 4096  # bytes of the worker's private stderr kept for death reports
_REAP_WAIT_S = 10.0  # only a process stuck in the kernel takes longer to go after SIGKILL

_SIGNAL_WORDS = {
    signal.SIGKILL: "was killed by SIGKILL (out of memory?)",
    signal.SIGSEGV: "crashed with SIGSEGV (segmentation fault)",
    signal.SIGBUS: "crashed with SIGBUS (bus error)",
    signal.SIGABRT: "aborted (SIGABRT)",
    signal.SIGFPE: "crashed with SIGFPE (arithmetic error)",
    signal.SIGILL: "crashed with SIGILL (illegal instruction)",
}


def describe_exit(returncode: int | None, unit: str = "worker") -> str:
    """A human sentence for a process's return code, as ``ExecResult.detail`` wants it."""
    if returncode is None:
        return f"the {unit} stopped answering"
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode)
        except ValueError:
            return f"the {unit} was killed by signal {-returncode}"
        return f"the {unit} " + _SIGNAL_WORDS.get(sig, f"was killed by {sig.name}")
    return f"the {unit} exited with code {returncode}"


class WorkerProcess(ABC):
    """One worker's life: launch, interrupt, terminate, say why it died, wait for its end.

    A fresh launch follows every terminate (a restart is terminate + launch);
    keep per-launch state on ``self`` and reset it in :meth:`launch`.
    """

    #: what a kill ends and a restart replaces, in result details ("worker", "container")
    unit: ClassVar[str] = "worker"

    @abstractmethod
    async def launch(
        self, command: Sequence[str], timeout: float | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Start an interpreter running ``command`` (the worker argv, which may be wrapped).

        Returns the reader of its stdout and the writer of its stdin: the
        channel. Nothing else may write to them.
        """

    @abstractmethod
    async def send_interrupt(self, pid: int) -> None:
        """Deliver SIGINT to the worker only (``pid`` as the worker sees itself)."""

    @abstractmethod
    async def terminate(self) -> None:
        """Kill the worker and everything it started, reap it, close the channel.

        Called after every launch failure, death, kill, restart and close, also
        when nothing runs: idempotent, and never raises.
        """

    @abstractmethod
    async def death_detail(self) -> str:
        """One sentence on why the worker went away; called after the channel closed."""

    async def wait_exit(self) -> None:
        """Return once the worker has ended, even if something still holds the channel.

        The default never returns: the channel's end is the only sign then.
        """
        await asyncio.Event().wait()

    def worker_options(self) -> dict[str, Any]:
        """Options this process adds to the worker's init frame (``memory_limit`` ...)."""
        return {}


class SubprocessWorker(WorkerProcess):
    """A worker in a child process of this one, reached over its stdin/stdout pipes.

    ``env`` is the child's whole environment (None: this process's);
    :meth:`wrap` may put the worker argv inside another command
    (``podman run -i ...``) while everything else stays as it is.
    """

    def __init__(
        self,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.cwd = cwd
        self.env = None if env is None else dict(env)
        self._options = dict(options or {})
        self._proc: asyncio.subprocess.Process | None = None
        self._exited: asyncio.Event | None = None  # set the moment the child is reaped
        self._transport: asyncio.SubprocessTransport | None = None
        self._stderr_tail = bytearray()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def pid(self) -> int | None:
        """The child's process id (also its process group id), while it runs."""
        return self._proc.pid if self._proc is not None else None

    def wrap(self, command: Sequence[str]) -> list[str]:
        """The argv actually run; the worker's own by default."""
        return list(command)

    def worker_options(self) -> dict[str, Any]:
        return dict(self._options)

    def child_setup(self) -> Callable[[], None] | None:
        """A function the child runs between fork and exec (join a cgroup, arm prctl), or None.

        Called in this process just before each launch; the function it returns
        runs in the forked child, so it may only make simple system calls.
        """
        return None

    def pass_fds(self) -> tuple[int, ...]:
        """File descriptors of this process the child inherits (besides the channel)."""
        return ()

    def describe_returncode(self, returncode: int | None) -> str:
        """The sentence for the launched process's exit status (a wrapper may translate it)."""
        return describe_exit(returncode, self.unit)

    async def launch(
        self, command: Sequence[str], timeout: float | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self._stderr_tail = bytearray()
        loop = asyncio.get_running_loop()
        exited = asyncio.Event()
        transport, protocol = await loop.subprocess_exec(
            lambda: _ExitWatchingProtocol(exited, loop),
            *self.wrap(command),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=self.cwd,
            env=self.env,
            start_new_session=True,
            preexec_fn=self.child_setup(),
            pass_fds=self.pass_fds(),
        )
        proc = asyncio.subprocess.Process(transport, protocol, loop)
        self._proc, self._exited, self._transport = proc, exited, transport
        assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
        self._spawn(self._collect_stderr(proc.stderr))
        return proc.stdout, proc.stdin

    async def _collect_stderr(self, stream: asyncio.StreamReader) -> None:
        """Keep the tail of what the child writes on its private stderr (its own failures)."""
        while chunk := await stream.read(65536):
            self._stderr_tail += chunk
            del self._stderr_tail[:-_STDERR_KEEP]

    async def send_interrupt(self, pid: int) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)

    async def terminate(self) -> None:
        proc, self._proc = self._proc, None
        exited, self._exited = self._exited, None
        transport, self._transport = self._transport, None
        if proc is not None and exited is not None and transport is not None:
            # the whole group: children started by user code go too (no orphans)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(exited.wait(), _REAP_WAIT_S)
            # close our ends of the pipes even if an escaped descendant still holds theirs
            transport.close()
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def wait_exit(self) -> None:
        # the exit itself, not asyncio's Process.wait(), which also waits for
        # every pipe to close: a descendant holding the channel would hide a death
        if self._exited is not None:
            await self._exited.wait()
        else:
            await super().wait_exit()

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    async def death_detail(self) -> str:
        proc, exited = self._proc, self._exited
        if proc is None or exited is None:
            return ""
        try:
            await asyncio.wait_for(exited.wait(), 2.0)
        except TimeoutError:
            return f"the {self.unit} closed its channel but did not exit"
        detail = self.describe_returncode(proc.returncode)
        tail = self.stderr_tail()
        if tail:
            detail += f"; {self.unit} stderr: {tail[-1000:]}"
        return detail

    def stderr_tail(self) -> str:
        return self._stderr_tail.decode("utf-8", "replace").strip()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


class _ExitWatchingProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's stream protocol, plus an event set when the process exits (and is reaped)."""

    def __init__(self, exited: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=2**16, loop=loop)
        self._exited_event = exited

    def process_exited(self) -> None:
        super().process_exited()
        self._exited_event.set()
