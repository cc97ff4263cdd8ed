"""The default backend: a persistent Python subprocess on this machine.

The worker (:mod:`eager_rt.backends._worker`) runs under any Python >= 3.8
given as ``python``, in its own session and process group, so a kill takes
its children with it and a terminal's Ctrl-C never reaches it. Everything
protocol-related lives in :class:`~eager_rt.backends._framed.WorkerSession`;
this module only starts, signals, kills and diagnoses the process.
"""

from __future__ import annotations

import os
import sys
from typing import Any, ClassVar

from eager_rt.backends._framed import WorkerSession
from eager_rt.backends._process import SubprocessWorker, describe_exit
from eager_rt.backends._recovery import DEFAULT_INTERRUPT_GRACE

from eager_rt.executor import Backend

__all__ = ["LocalBackend", "LocalSession", "describe_exit"]


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
    process: SubprocessWorker

    def __init__(
        self,
        *,
        python: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        interrupt_grace: float = DEFAULT_INTERRUPT_GRACE,
        auto_restart: bool = True,
        memory_limit: int | None = None,
        start_timeout: float = 60.0,
        prerender_figures: bool = True,
    ) -> None:
        if memory_limit is not None and memory_limit <= 0:
            raise ValueError("memory_limit must be a positive number of bytes")
        inherited = dict(os.environ)
        # a GUI or notebook backend inherited from the host (ipykernel exports
        # its inline backend) would break a headless worker; the worker uses
        # Agg unless ``env`` names a backend explicitly
        inherited.pop("MPLBACKEND", None)
        process = SubprocessWorker(
            cwd=None if cwd is None else os.fspath(cwd),
            env={**inherited, **(env or {})},
            options={"memory_limit": memory_limit},
        )
        super().__init__(
            process,
            python=python or sys.executable,
            interrupt_grace=interrupt_grace,
            auto_restart=auto_restart,
            start_timeout=start_timeout,
            prerender_figures=prerender_figures,
        )
        self.cwd = process.cwd
        self.env = dict(env or {})
        self.memory_limit = memory_limit

    @property
    def pid(self) -> int | None:
        """The worker's process id (also its process group id), while it runs."""
        return self.process.pid


class LocalBackend(Backend):
    """Sessions in local subprocesses; options given here are defaults for every session."""

    name: ClassVar[str] = "local"

    def __init__(self, **defaults: Any) -> None:
        self.defaults = defaults
        LocalSession(**defaults)  # fail now on a bad option, not at the first session

    def session(self, **options: Any) -> LocalSession:
        return LocalSession(**{**self.defaults, **options})
