"""The Podman backend: the framed worker in a hardened Podman container.

A :class:`~eager_rt.backends._process.SubprocessWorker` whose argv is wrapped
in ``podman run -i``: the client's stdin and stdout are the worker channel,
SIGINT sent to the client reaches the container's PID 1 (``--sig-proxy``), and
the client exits with the container's exit code. Hardened by default, like
Docker: no network, read-only root with tmpfs ``/work`` (also ``HOME``) and
``/tmp``, user 65534, no capabilities, no-new-privileges, 1 GiB of memory and
no swap, 256 processes, one CPU, no log copy of the channel.

PID 1 is a small Python init (:data:`_INIT`), not catatonit: it forwards
signals to the worker, reaps orphans, copies ``cwd`` in, and when the worker
ends reads the container's own OOM-kill counter: Podman 4.3 (Debian 12) never
sets ``State.OOMKilled`` and the cgroup is gone once the client exits, so only
a process inside can tell an OOM kill from ``podman kill``. Containers carry
owner labels; those of dead owners go before this process starts its first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from eager_rt.backends._docker_engine import LABEL_OWNER_PID as OWNER
from eager_rt.backends._docker_engine import LABEL_SESSION, owner_alive, owner_labels
from eager_rt.backends._framed import WorkerSession
from eager_rt.backends._hardening import Hardening
from eager_rt.backends._limits import DEFAULT_EXEC_TIMEOUT, DEFAULT_MAX_OUTPUT
from eager_rt.backends._process import SubprocessWorker
from eager_rt.backends._recovery import DEFAULT_INTERRUPT_GRACE

from eager_rt.executor import Backend, BackendError

__all__ = ["DEFAULT_IMAGE", "IMAGE_ENV", "PodmanBackend", "PodmanSession", "PodmanWorker"]

#: Docker's default image, fully qualified: Podman resolves no short names without a TTY
DEFAULT_IMAGE = "docker.io/library/python:3.12-slim"
IMAGE_ENV = "EAGER_RT_PODMAN_IMAGE"  #: overrides DEFAULT_IMAGE when no ``image=`` is given
_OOM_MARK = "eager_rt-init: oom-kill"  # the init's last words when the OOM killer struck
_CWD_MOUNT = "/run/eager_rt/cwd"  # where ``cwd`` is bind-mounted, read-only, to be copied

# PID 1 (any Python >= 3.8): argv is [copy-from or "", worker argv ...]
_INIT = """\
import os,signal,sys
def kills():
    for p in ('/sys/fs/cgroup/memory.events','/sys/fs/cgroup/memory/memory.oom_control'):
        try:
            with open(p) as f: return int(dict(x.split() for x in f)['oom_kill'])
        except (OSError,ValueError,KeyError): pass
    return 0
if sys.argv[1]:
    import shutil; shutil.copytree(sys.argv[1],'.',symlinks=True,dirs_exist_ok=True)
before=kills()
pid=os.fork()
if not pid: os.execvp(sys.argv[2],sys.argv[2:])
def forward(n,frame):
    try: os.kill(pid,n)
    except OSError: pass
for s in (signal.SIGINT,signal.SIGTERM,signal.SIGHUP): signal.signal(s,forward)
p=0
while p!=pid: p,status=os.wait()
if kills()>before: os.write(2,b'\\nMARK\\n')
os._exit(128+os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
""".replace("MARK", _OOM_MARK)

_reaped: set[str] = set()  # podman binaries whose stale containers this process removed


def run_args(
    *,
    image: str | None = None,
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    **hardening: Any,
) -> list[str]:
    """``podman run`` flags, the image last. ``hardening`` are :class:`Hardening`'s fields
    (the Docker backend's options); ``extra_args`` are any other ``podman run`` flags."""
    h = Hardening(**hardening)
    owner = ",mode=0700,U" if h.user else ",mode=1777"  # U: the tmpfs belongs to the user
    args = [
        f"--network={h.network_mode}",
        f"--tmpfs={h.workdir}:rw,size={h.workdir_size}{owner}",
        f"--tmpfs=/tmp:rw,size={h.tmp_size},mode=1777",
        f"--workdir={h.workdir}",
        *(f"--cap-drop={cap}" for cap in h.cap_drop),
        # the channel is the attach stream; a log driver would copy every frame to disk
        "--log-driver=none",
    ]
    args += ["--read-only", "--read-only-tmpfs=false"] if h.read_only else []  # the tmpfs only
    args += [f"--user={h.user}"] if h.user else []
    args += ["--security-opt=no-new-privileges"] if h.no_new_privileges else []
    if h.mem_limit:
        args += [f"--memory={h.mem_limit}", f"--memory-swap={h.mem_limit}"]  # no swap
    args += [f"--pids-limit={h.pids_limit}"] if h.pids_limit else []
    args += [f"--cpus={h.cpus}"] if h.cpus else []
    args += [f"--env={k}={v}" for k, v in sorted(h.environment(env).items())]
    args += [f"--label={k}={v}" for k, v in sorted((labels or {}).items())]
    return [*args, *extra_args, image or os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE]


def describe_end(code: int | None, oom: bool, mem_limit: str | int | None) -> str:
    """One sentence on why a container's worker ended, from the client's exit code."""
    if oom:
        return (
            "the worker ran out of memory: the kernel's OOM killer ended it at the "
            f"container's memory limit of {mem_limit} (exit code {code})"
        )
    if code is None or code < 0:
        return f"the podman client was killed by signal {-(code or 0)}"
    if code == 125:
        return "podman could not run the container (exit code 125)"
    if code - 128 in {s.value for s in signal.Signals}:
        why = " (podman kill or rm, or a kill on the host)" if code == 137 else ""
        return f"the worker was killed by {signal.Signals(code - 128).name}{why} (exit code {code})"
    return f"the worker exited with code {code}"


async def _podman(podman: str, *args: str) -> tuple[int, str]:
    """Run one podman command; (exit code, stdout)."""
    pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(podman, *args, stdout=pipe, stderr=null)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode("utf-8", "replace")


async def reap(podman: str = "podman") -> list[str]:
    """Remove containers whose owning host process is gone; return their names."""
    code, out = await _podman(podman, "ps", "-a", "--format=json", f"--filter=label={OWNER}")
    found = json.loads(out or "[]") if code == 0 else []
    stale = [c["Names"][0] for c in found if not owner_alive(c.get("Labels") or {})]
    if stale:
        await _podman(podman, "rm", "--force", "--ignore", "--time=0", *stale)
    return stale


class PodmanWorker(SubprocessWorker):
    """One worker in one ``podman run -i`` container; a new container at every launch."""

    unit: ClassVar[str] = "container"

    def __init__(self, podman: str, args: Sequence[str], cwd: str | None, mem_limit: Any) -> None:
        super().__init__()
        self.podman, self.args, self.host_cwd, self.mem_limit = podman, list(args), cwd, mem_limit
        self.name: str | None = None  #: the current container's name
        self._removals: set[asyncio.Future[Any]] = set()

    def wrap(self, command: Sequence[str]) -> list[str]:
        self.name = f"eager-rt-{uuid.uuid4().hex[:16]}"
        labels = {**owner_labels(), LABEL_SESSION: self.name}
        mount = [f"--volume={self.host_cwd}:{_CWD_MOUNT}:ro"] if self.host_cwd else []
        run = [self.podman, "run", "--interactive", "--rm", "--sig-proxy=true", "--pull=never"]
        run += [f"--name={self.name}", *(f"--label={k}={v}" for k, v in labels.items()), *mount]
        init = [command[0], "-c", _INIT, _CWD_MOUNT if self.host_cwd else ""]
        return [*run, *self.args, *init, *command]  # the image is the last of self.args

    async def launch(
        self, command: Sequence[str], timeout: float | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if shutil.which(self.podman) is None:
            raise BackendError(f"{self.podman!r} is not installed; run scripts/setup-podman.sh")
        if self.podman not in _reaped:
            _reaped.add(self.podman)
            await reap(self.podman)
        # the client runs in a directory of its own: conmon writes files (an
        # "oom" mark) into its working directory, and none may outlive the session
        self.cwd = tempfile.mkdtemp(prefix="eager-rt-podman-")
        return await super().launch(command, timeout)

    async def terminate(self) -> None:
        await super().terminate()  # the client first: then nothing can create the container
        name, self.name = self.name, None
        if name is not None:
            # runs to its end even if whoever awaits it is cancelled; every later
            # terminate waits for it, so nothing outlives close()
            removal = asyncio.ensure_future(
                _podman(self.podman, "rm", "--force", "--ignore", "--time=0", name)
            )
            self._removals.add(removal)
            removal.add_done_callback(self._removals.discard)
        for pending in list(self._removals):
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)
        scratch, self.cwd = self.cwd, None
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    async def death_detail(self) -> str:
        base = await super().death_detail()
        if not base or self.returncode is None:
            return base  # nothing ran, or the client outlives its channel
        tail = self.stderr_tail()
        oom = tail.endswith(_OOM_MARK)
        detail = describe_end(self.returncode, oom, self.mem_limit)
        tail = tail.removesuffix(_OOM_MARK).strip()
        return f"{detail}; container stderr: {tail[-1000:]}" if tail else detail


class PodmanSession(WorkerSession):
    """One worker in one Podman container; see the module docstring for the defaults.

    Container options: those of :func:`run_args` (the Docker backend's names;
    ``image`` defaults to ``$EAGER_RT_PODMAN_IMAGE``, else Docker's default),
    ``python`` and ``podman`` (the client to run). Session: ``interrupt_grace``,
    ``auto_restart``, ``start_timeout``, ``prerender_figures``, ``exec_timeout``,
    ``max_output`` (as for every worker backend), and ``cwd``: a
    host directory copied into the work directory at every (re)start (mounted
    read-only, copied by the init: the code cannot change the host's files).
    """

    backend_name: ClassVar[str] = "podman"
    process: PodmanWorker

    def __init__(
        self,
        *,
        podman: str = "podman",
        python: str = "python3",
        interrupt_grace: float = DEFAULT_INTERRUPT_GRACE,
        auto_restart: bool = True,
        start_timeout: float = 120.0,
        prerender_figures: bool = True,
        exec_timeout: float | None = DEFAULT_EXEC_TIMEOUT,
        max_output: int | None = DEFAULT_MAX_OUTPUT,
        cwd: str | os.PathLike[str] | None = None,
        **container_options: Any,
    ) -> None:
        host_cwd = None if cwd is None else os.path.abspath(cwd)
        if host_cwd is not None and not os.path.isdir(host_cwd):
            raise ValueError(f"cwd must be a directory on this host: {host_cwd}")
        args = run_args(**container_options)
        mem_limit = container_options.get("mem_limit", "1g")
        super().__init__(
            PodmanWorker(podman, args, host_cwd, mem_limit),
            python=python,
            interrupt_grace=interrupt_grace,
            auto_restart=auto_restart,
            start_timeout=start_timeout,
            prerender_figures=prerender_figures,
            exec_timeout=exec_timeout,
            max_output=max_output,
        )

    @property
    def container_name(self) -> str | None:
        """The current container's name, while there is one."""
        return self.process.name


class PodmanBackend(Backend):
    """Podman sessions; options given here are defaults for every session."""

    name: ClassVar[str] = "podman"

    def __init__(self, **defaults: Any) -> None:
        self.defaults = defaults
        PodmanSession(**defaults)  # fail now on a bad option, not at the first session

    def session(self, **options: Any) -> PodmanSession:
        return PodmanSession(**{**self.defaults, **options})

    async def reap(self) -> list[str]:
        """Remove containers of host processes that died; return their names."""
        return await reap(self.defaults.get("podman", "podman"))
