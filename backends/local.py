"""The default backend: a persistent Python subprocess on this machine, optionally sandboxed.

The worker (:mod:`eager_rt.backends._worker`) runs under any Python >= 3.8
given as ``python``. This module only starts, limits, signals, kills and
diagnoses the process; everything protocol-related lives in
:class:`~eager_rt.backends._framed.WorkerSession`.

Bounded by default (docs/isolation.md says exactly what is and is not
isolated):

* a minimal environment (:mod:`._environment`): no API key of the host;
* 2 GiB of memory and 512 tasks for the worker's whole process tree, in a
  cgroup (:mod:`._cgroup`) where this process may make one; elsewhere the
  memory limit is each process's address space (``RLIMIT_AS``) and the task
  limit the user's process count (``RLIMIT_NPROC``): :attr:`LocalSession.enforcement`
  says which holds;
* the tree dies with the session (cgroup kill, else a ``/proc`` scan with the
  worker as child subreaper) and with the host (a parent-death signal);
* ``isolation="bwrap"``: the worker in a bubblewrap sandbox (:mod:`._bwrap`):
  own pid namespace, no network, a read-only host with a private working
  directory and ``/tmp``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from eager_rt.backends import _cgroup, _proctree
from eager_rt.backends._bwrap import Sandbox, sandbox_problem
from eager_rt.backends._environment import worker_environment
from eager_rt.backends._framed import WorkerSession
from eager_rt.backends._limits import DEFAULT_EXEC_TIMEOUT, DEFAULT_MAX_OUTPUT
from eager_rt.backends._process import SubprocessWorker, describe_exit
from eager_rt.backends._recovery import DEFAULT_INTERRUPT_GRACE

from eager_rt.executor import Backend, BackendError

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_PIDS_LIMIT",
    "LocalBackend",
    "LocalSession",
    "LocalWorker",
    "describe_exit",
]

DEFAULT_MEMORY_LIMIT = 2 * 1024**3  #: bytes for the worker's whole process tree
DEFAULT_PIDS_LIMIT = 512  #: processes and threads of the whole tree (a fork bomb's bound)
_ISOLATIONS = (None, "bwrap")
_SIGNAL_BASE = 128  # bwrap exits 128 + n when the worker was killed by signal n


class LocalWorker(SubprocessWorker):
    """A worker process (or bwrap around one) whose whole tree is limited and killed as one."""

    def __init__(
        self,
        *,
        cwd: str | None,
        env: Mapping[str, str],
        memory_limit: int | None,
        pids_limit: int | None,
        cgroup: bool | None,
        sandbox: Sandbox | None,
    ) -> None:
        # sandboxed, ``cwd`` is not where the worker runs but what is copied in
        super().__init__(cwd=None if sandbox else cwd, env=env)
        self.copy_from = cwd if sandbox else None
        self.base_env = dict(env)
        self.memory_limit, self.pids_limit = memory_limit, pids_limit
        self.use_cgroup, self.sandbox = cgroup, sandbox
        self.tree: _cgroup.CgroupTree | None = None  #: this launch's cgroup, if any
        self._home: str | None = None  # a private HOME (plain worker), removed at terminate
        self._worker_pid: int | None = None  # the worker's host pid inside a sandbox
        self._info: _SandboxInfo | None = None  # where bwrap says its init's pid

    # ---------------------------------------------------------------- what holds

    @property
    def enforcement(self) -> dict[str, str | None]:
        """What enforces each bound for the current launch (None: not bounded)."""
        tree = self.tree
        if tree is not None:
            memory = f"{tree.description}: {self.memory_limit} bytes" if self.memory_limit else None
            pids = f"{tree.description}: {self.pids_limit} tasks" if self.pids_limit else None
            kill = tree.description
        else:
            memory = (
                f"RLIMIT_AS per process: {self.memory_limit} bytes" if self.memory_limit else None
            )
            pids = (
                f"RLIMIT_NPROC for this user: {self.pids_limit} more tasks"
                if self.pids_limit
                else None
            )
            kill = "pid namespace" if self.sandbox else "process scan (worker is child subreaper)"
        return {
            "memory": memory,
            "pids": pids,
            "tree_kill": kill,
            "isolation": "bwrap" if self.sandbox else None,
        }

    def worker_options(self) -> dict[str, Any]:
        # the worker sets RLIMIT_AS itself only where no cgroup bounds the tree
        return {"memory_limit": self.memory_limit if self.tree is None else None}

    # ---------------------------------------------------------------- launch

    def wrap(self, command: Sequence[str]) -> list[str]:
        if self.sandbox is None:
            return list(command)
        info = self._info
        return self.sandbox.argv(
            command, copy_from=self.copy_from, info_fd=None if info is None else info.write_fd
        )

    def pass_fds(self) -> tuple[int, ...]:
        info = self._info
        return () if info is None else (info.write_fd,)

    async def launch(
        self, command: Sequence[str], timeout: float | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self._worker_pid = None
        if self.sandbox is not None:
            problem = sandbox_problem()
            if problem is not None:
                raise BackendError(problem)
            self.env = self.sandbox.environment(self.base_env)
        elif "HOME" not in self.base_env:
            _sweep_homes()
            self._home = tempfile.mkdtemp(prefix=f"{_HOME_PREFIX}{os.getpid()}-")
            self.env = {**self.base_env, "HOME": self._home}
        if self.use_cgroup is not False:
            self.tree = _cgroup.create(self.memory_limit, self.pids_limit)
            if self.tree is None and self.use_cgroup:
                await self.terminate()
                raise BackendError(f"cgroup=True but there is {_cgroup.unavailable_reason()}")
        if self.tree is not None and self.sandbox is not None:
            self._info = _SandboxInfo()
        try:
            channel = await super().launch(command, timeout)
            tree, pid, info = self.tree, self.pid, self._info
            # the worker runs nothing before its payload, which follows this: the
            # migration (an RCU grace period) overlaps the interpreter's start-up
            if tree is not None and pid is not None:
                inside = [] if info is None else await info.sandbox_pids()
                await tree.adopt(pid, *inside)
                if inside:
                    self._worker_pid = inside[1]
            return channel
        except BaseException:
            await self.terminate()
            raise
        finally:
            info, self._info = self._info, None
            if info is not None:
                info.close()

    def child_setup(self) -> Callable[[], None] | None:
        host = os.getpid()
        tree = self.tree
        subreaper = tree is None and self.sandbox is None
        nproc = None
        if tree is None and self.pids_limit is not None:
            nproc = _user_tasks() + self.pids_limit

        def setup() -> None:  # in the child, between fork and exec: no allocation-heavy work
            _proctree.prepare_child(subreaper=subreaper, parent=host)
            if nproc is not None:
                _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
                cap = nproc if hard == resource.RLIM_INFINITY else min(nproc, hard)
                resource.setrlimit(resource.RLIMIT_NPROC, (cap, cap))

        return setup

    # ---------------------------------------------------------------- signals and death

    @property
    def worker_pid(self) -> int | None:
        """The worker's pid on this host (inside a sandbox: not bwrap's, the interpreter's)."""
        root = self.pid
        if root is None or self.sandbox is None:
            return root
        if self._worker_pid is None:
            self._worker_pid = _inner_pid(root, 2)  # pid 1 is bwrap's init, 2 its command
        return self._worker_pid

    async def send_interrupt(self, pid: int) -> None:
        target = self.worker_pid if self.returncode is None else None
        if target is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGINT)

    async def terminate(self) -> None:
        tree, self.tree = self.tree, None
        root = self.pid
        if tree is not None:
            await tree.kill()
        elif root is not None and self.returncode is None:
            await _proctree.kill_tree(root)
        await super().terminate()
        if tree is not None:
            tree.remove()
        home, self._home = self._home, None
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)

    def describe_returncode(self, returncode: int | None) -> str:
        if self.sandbox is not None and returncode is not None and returncode > _SIGNAL_BASE:
            with contextlib.suppress(ValueError):
                # bwrap's exit status for a worker killed by a signal
                return describe_exit(-signal.Signals(returncode - _SIGNAL_BASE), self.unit)
        return describe_exit(returncode, self.unit)

    async def death_detail(self) -> str:
        detail = await super().death_detail()
        tree = self.tree
        if tree is not None and tree.oom_kills() > 0 and self._killed_by_sigkill():
            tail = self.stderr_tail()
            return (
                "the worker ran out of memory: the kernel's OOM killer ended it (SIGKILL) at "
                f"memory_limit={self.memory_limit} bytes ({_mib(self.memory_limit)}) for the "
                f"whole process tree ({tree.kind})"
                + (f"; worker stderr: {tail[-1000:]}" if tail else "")
            )
        return detail

    def _killed_by_sigkill(self) -> bool:
        code = self.returncode
        return code == -signal.SIGKILL or (
            self.sandbox is not None and code == _SIGNAL_BASE + signal.SIGKILL
        )


class _SandboxInfo:
    """bwrap's report of its namespace's init (``--info-fd``), to find the worker by.

    bwrap forks the init at once and the init forks the worker after its
    set-up, so neither inherits a cgroup the host gives bwrap after the
    spawn; the host moves all three, before the worker gets its payload.
    """

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()

    async def sandbox_pids(self) -> list[int]:
        """The init's and the worker's host pids (none if bwrap failed first)."""
        os.close(self.write_fd)
        self.write_fd = -1
        try:
            init = int(json.loads(await _read_to_end(self.read_fd))["child-pid"])
        except (ValueError, KeyError, TypeError):
            return []  # bwrap failed before its init existed: its stderr says why
        while True:  # the worker is the init's only child
            try:
                with open(f"/proc/{init}/task/{init}/children") as f:
                    children = [int(pid) for pid in f.read().split()]
            except FileNotFoundError:  # a kernel without CONFIG_PROC_CHILDREN
                if not _proctree.alive(init):
                    return []
                children = _proctree.descendants(init)
            except OSError:
                return []  # the init is gone: the start fails on the channel
            if children:
                return [init, children[0]]
            await asyncio.sleep(0.001)

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.read_fd = self.write_fd = -1


async def _read_to_end(fd: int) -> bytes:
    """All a pipe gives until its writer closes it, without blocking the event loop."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _settle, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
            continue
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_HOME_PREFIX = "eager-rt-home-"


def _sweep_homes() -> None:
    """Remove the private HOMEs of hosts that died without cleaning up (SIGKILL)."""
    tmp = tempfile.gettempdir()
    with contextlib.suppress(OSError):
        for name in os.listdir(tmp):
            host = name[len(_HOME_PREFIX) :].split("-", 1)[0]
            if name.startswith(_HOME_PREFIX) and host.isdigit() and not _proctree.alive(int(host)):
                shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)


def _mib(n: int | None) -> str:
    return "none" if n is None else f"{n / 1024**2:g} MiB"


def _user_tasks() -> int:
    """Processes and threads this user runs now (what RLIMIT_NPROC counts)."""
    uid, count = os.getuid(), 0
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if name.isdigit():
            try:
                st = os.stat(f"/proc/{name}")
                if st.st_uid == uid:
                    count += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                continue
    return count


def _inner_pid(root: int, inner: int) -> int | None:
    """The host pid of the descendant of ``root`` that is ``inner`` in its own pid namespace."""
    for pid in _proctree.descendants(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        if int(line.split()[-1]) == inner:
                            return pid
                        break
        except (OSError, ValueError):
            continue
    return None


class LocalSession(WorkerSession):
    """One worker subprocess.

    * ``python``: the interpreter (a path or a name on PATH; default: this
      one), so a virtualenv or another Python (>= 3.8) runs the code.
    * ``cwd``: its working directory (default: this process's); sandboxed, a
      host directory copied into the private working directory at each start.
    * ``env``: variables to set; ``inherit_env``: names (or ``fnmatch``
      patterns) of host variables to pass on. Nothing else of the host's
      environment reaches the code but :data:`._environment.BASE_INHERIT`
      (``PATH``, locale, ``PYTHON*`` ...); ``HOME`` is a private directory
      unless given. ``inherit_env=["*"]`` passes everything (``MPLBACKEND``
      only by name: the worker uses Agg).
    * ``memory_limit``: bytes for the whole process tree (default 2 GiB; None
      lifts it), in a cgroup where possible: the kernel's OOM killer then ends
      the hungriest process, and a killed worker is a ``died`` result saying
      so. Without a cgroup it is each process's address space (``RLIMIT_AS``):
      a MemoryError that escapes the code ends the worker the same way.
    * ``pids_limit``: processes and threads of the tree (default 512; None
      lifts it), so a fork bomb stops there.
    * ``cgroup``: None (default) uses a cgroup when this process may make one;
      True requires one (a start fails without); False never uses one.
    * ``isolation``: None (a plain process) or ``"bwrap"`` (a bubblewrap
      sandbox); sandbox options ``workdir`` (``"/sandbox"``), ``workdir_size``
      and ``tmp_size`` (bytes), ``network`` (False), ``hide`` (host paths
      hidden; see :mod:`._bwrap`).
    * ``interrupt_grace``, ``auto_restart``, ``start_timeout``,
      ``prerender_figures``, ``exec_timeout``, ``max_output``: as on every
      worker backend (docs/backends.md, :mod:`._limits`).
    """

    backend_name: ClassVar[str] = "local"
    process: LocalWorker

    def __init__(
        self,
        *,
        python: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        inherit_env: Iterable[str] = (),
        interrupt_grace: float = DEFAULT_INTERRUPT_GRACE,
        auto_restart: bool = True,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
        pids_limit: int | None = DEFAULT_PIDS_LIMIT,
        cgroup: bool | None = None,
        isolation: str | None = None,
        workdir: str | None = None,
        workdir_size: int | None = None,
        tmp_size: int | None = None,
        network: bool | None = None,
        hide: Sequence[str] | None = None,
        start_timeout: float = 60.0,
        prerender_figures: bool = True,
        exec_timeout: float | None = DEFAULT_EXEC_TIMEOUT,
        max_output: int | None = DEFAULT_MAX_OUTPUT,
    ) -> None:
        if memory_limit is not None and memory_limit <= 0:
            raise ValueError("memory_limit must be a positive number of bytes, or None")
        if pids_limit is not None and pids_limit <= 0:
            raise ValueError("pids_limit must be a positive number, or None")
        if isolation not in _ISOLATIONS:
            raise ValueError(f"isolation must be None or 'bwrap', not {isolation!r}")
        if isinstance(inherit_env, str):
            raise TypeError("inherit_env is a list of names, not one string")
        sandbox_options: dict[str, Any] = {
            k: v
            for k, v in {
                "workdir": workdir,
                "workdir_size": workdir_size,
                "tmp_size": tmp_size,
                "network": network,
                "hide": hide,
            }.items()
            if v is not None
        }
        if sandbox_options and isolation is None:
            raise ValueError(f"{', '.join(sandbox_options)} apply only with isolation='bwrap'")
        sandbox = Sandbox(**sandbox_options) if isolation == "bwrap" else None
        host_cwd = None if cwd is None else os.path.abspath(cwd)
        if sandbox is not None and host_cwd is not None and not os.path.isdir(host_cwd):
            raise ValueError(f"cwd must be a directory on this host: {host_cwd}")
        inherit = list(inherit_env)
        environment = worker_environment(os.environ, inherit=inherit, env=env)
        process = LocalWorker(
            cwd=host_cwd,
            env=environment,
            memory_limit=memory_limit,
            pids_limit=pids_limit,
            cgroup=cgroup,
            sandbox=sandbox,
        )
        super().__init__(
            process,
            python=python or sys.executable,
            interrupt_grace=interrupt_grace,
            auto_restart=auto_restart,
            start_timeout=start_timeout,
            prerender_figures=prerender_figures,
            exec_timeout=exec_timeout,
            max_output=max_output,
        )
        self.cwd = host_cwd
        self.env = dict(env or {})
        self.inherit_env = inherit
        self.memory_limit = memory_limit
        self.pids_limit = pids_limit
        self.isolation = isolation
        self.sandbox = sandbox

    @property
    def pid(self) -> int | None:
        """The worker's process id on this host, while it runs."""
        return self.process.worker_pid

    @property
    def enforcement(self) -> dict[str, str | None]:
        """What bounds this session's worker: ``memory``, ``pids``, ``tree_kill``, ``isolation``."""
        return self.process.enforcement


class LocalBackend(Backend):
    """Sessions in local subprocesses; options given here are defaults for every session."""

    name: ClassVar[str] = "local"

    def __init__(self, **defaults: Any) -> None:
        self.defaults = defaults
        LocalSession(**defaults)  # fail now on a bad option, not at the first session

    def session(self, **options: Any) -> LocalSession:
        return LocalSession(**{**self.defaults, **options})
