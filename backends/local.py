"""The default backend: a persistent Python subprocess on this machine.

The worker (:mod:`eager_rt.backends._worker`) runs under any Python >= 3.8
given as ``python``, in its own session and process group, so a kill takes
its children with it and a terminal's Ctrl-C never reaches it. Everything
protocol-related lives in :class:`~eager_rt.backends._framed.WorkerSession`;
this module only starts, signals, kills and diagnoses the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import Any, ClassVar

from eager_rt.backends._framed import TIMEOUT_ERRORS, WorkerSession, worker_command

from eager_rt.executor import Backend

__all__ = ["LocalBackend", "LocalSession"]

_STDERR_KEEP = 4096  # bytes of the worker's private stderr kept for death reports

_SIGNAL_WORDS = {
    signal.SIGKILL: "was killed by SIGKILL (out of memory?)",
    signal.SIGSEGV: "crashed with SIGSEGV (segmentation fault)",
    signal.SIGBUS: "crashed with SIGBUS (bus error)",
    signal.SIGABRT: "aborted (SIGABRT)",
    signal.SIGFPE: "crashed with SIGFPE (arithmetic error)",
    signal.SIGILL: "crashed with SIGILL (illegal instruction)",
}


def describe_exit(returncode: int | None) -> str:
    """A human sentence for a process's return code, as ``ExecResult.detail`` wants it."""
    if returncode is None:
        return "the worker stopped answering"
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode)
        except ValueError:
            return f"the worker was killed by signal {-returncode}"
        return "the worker " + _SIGNAL_WORDS.get(sig, f"was killed by {sig.name}")
    return f"the worker exited with code {returncode}"


class LocalSession(WorkerSession):
    """One worker subprocess.

    * ``python``: the interpreter (a path or a name on PATH; default: this
      one), so a virtualenv or another Python (>= 3.8) runs the code.
    * ``cwd``: its working directory; ``env``: variables added to this
      process's environment (``MPLBACKEND`` is not inherited: the worker uses
      Agg unless ``env`` sets it).
    * ``interrupt_grace``: seconds the code gets to stop after the interrupt a
      timeout sends, before the worker is killed and restarted.
    * ``auto_restart``: start a new worker after one died (default), or leave
      the session dead.
    * ``memory_limit``: bytes of address space (RLIMIT_AS) for the worker.
      A MemoryError that escapes the code then ends the worker the way the
      OOM killer ends a container (status ``died``, "out of memory" in the
      detail); one the code catches is its own business. Address space counts
      reserved memory too: numpy/pandas/matplotlib work needs ~512 MiB or more.
    * ``start_timeout``: for the restarts the session does on its own.
    * ``prerender_figures``: warm matplotlib's renderer, and render changed
      figures in a forked child, while the worker waits for code, so
      ``plt.show()`` finds them ready (default True).
    """

    backend_name: ClassVar[str] = "local"

    def __init__(
        self,
        *,
        python: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        interrupt_grace: float = 2.0,
        auto_restart: bool = True,
        memory_limit: int | None = None,
        start_timeout: float = 60.0,
        prerender_figures: bool = True,
    ) -> None:
        super().__init__(
            interrupt_grace=interrupt_grace,
            auto_restart=auto_restart,
            start_timeout=start_timeout,
            prerender_figures=prerender_figures,
        )
        if memory_limit is not None and memory_limit <= 0:
            raise ValueError("memory_limit must be a positive number of bytes")
        self.python = python or sys.executable
        self.cwd = None if cwd is None else os.fspath(cwd)
        self.env = dict(env or {})
        self.memory_limit = memory_limit
        self._proc: asyncio.subprocess.Process | None = None
        self._exited: asyncio.Event | None = None  # set the moment the worker is reaped
        self._transport: asyncio.SubprocessTransport | None = None
        self._stderr_tail = bytearray()

    @property
    def pid(self) -> int | None:
        """The worker's process id (also its process group id), while it runs."""
        return self._proc.pid if self._proc is not None else None

    def _command(self) -> list[str]:
        """The worker's argv; a subclass may wrap it (``docker exec -i ...``, ``nice``)."""
        return worker_command(self.python)

    def _worker_options(self) -> dict[str, Any]:
        return {**super()._worker_options(), "memory_limit": self.memory_limit}

    async def _launch(
        self, timeout: float | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        inherited = dict(os.environ)
        # a GUI or notebook backend inherited from the host (ipykernel exports
        # its inline backend) would break a headless worker; the worker uses
        # Agg unless ``env`` names a backend explicitly
        inherited.pop("MPLBACKEND", None)
        env = {**inherited, **self.env}
        self._stderr_tail = bytearray()
        loop = asyncio.get_running_loop()
        exited = asyncio.Event()
        transport, protocol = await loop.subprocess_exec(
            lambda: _WorkerProtocol(exited, loop),
            *self._command(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=self.cwd,
            env=env,
            start_new_session=True,
        )
        proc = asyncio.subprocess.Process(transport, protocol, loop)
        self._proc, self._exited, self._transport = proc, exited, transport
        assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
        self._spawn(self._collect_stderr(proc.stderr))
        return proc.stdout, proc.stdin

    async def _collect_stderr(self, stream: asyncio.StreamReader) -> None:
        """Keep the tail of what the worker writes on its private stderr (its own failures)."""
        while chunk := await stream.read(65536):
            self._stderr_tail += chunk
            del self._stderr_tail[:-_STDERR_KEEP]

    async def _send_interrupt(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)

    async def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        exited, self._exited = self._exited, None
        transport, self._transport = self._transport, None
        if proc is None or exited is None or transport is None:
            return
        # the whole group: children started by user code go too (no orphans)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(*TIMEOUT_ERRORS):
            await asyncio.wait_for(exited.wait(), 10.0)  # only a process stuck in the kernel lasts
        # close our ends of the pipes even if an escaped descendant still holds theirs
        transport.close()

    async def _wait_exit(self) -> None:
        # the exit itself, not asyncio's Process.wait(), which also waits for
        # every pipe to close: a descendant holding the channel would hide a death
        if self._exited is not None:
            await self._exited.wait()

    async def _death_detail(self) -> str:
        proc, exited = self._proc, self._exited
        if proc is None or exited is None:
            return ""
        try:
            await asyncio.wait_for(exited.wait(), 2.0)
        except TIMEOUT_ERRORS:
            return "the worker closed its channel but did not exit"
        detail = describe_exit(proc.returncode)
        tail = self._stderr_tail.decode("utf-8", "replace").strip()
        if tail:
            detail += f"; worker stderr: {tail[-1000:]}"
        return detail


class _WorkerProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's stream protocol, plus an event set when the process exits (and is reaped)."""

    def __init__(self, exited: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=2**16, loop=loop)
        self._exited_event = exited

    def process_exited(self) -> None:
        super().process_exited()
        self._exited_event.set()


class LocalBackend(Backend):
    """Sessions in local subprocesses; options given here are defaults for every session."""

    name: ClassVar[str] = "local"

    def __init__(self, **defaults: Any) -> None:
        self.defaults = defaults
        LocalSession(**defaults)  # fail now on a bad option, not at the first session

    def session(self, **options: Any) -> LocalSession:
        return LocalSession(**{**self.defaults, **options})
