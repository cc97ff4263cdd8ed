"""The Docker backend: the framed worker inside a hardened container.

Each session is one container whose main process *is* the worker: the host
attaches to the container's stdin/stdout before starting it and speaks the
same framed protocol as the local backend over that one hijacked connection
(:class:`~eager_rt.backends._framed.WorkerSession` does all the protocol
work). An execution is one frame each way on an open socket, never an
``exec_run``, so a trivial round trip costs well under a millisecond. The
worker is injected at start, so any image with ``python3`` (>= 3.8) works.

Hardened by default, every setting overridable per backend or per session:
no network, read-only root file system with a tmpfs work directory (``/work``,
also ``HOME``) and a tmpfs ``/tmp``, an unprivileged user (65534, "nobody"),
all capabilities dropped, no-new-privileges, 1 GiB of memory (no swap), 256
processes, one CPU, and docker-init as PID 1 so signals reach the worker and
zombies are reaped.

Faults: :meth:`~DockerSession.interrupt` sends SIGINT to the worker (state
kept); a timeout interrupts, then kills and replaces the container
(``state_lost``); a container that dies (OOM kill, ``docker kill``) closes the
channel at once and the result says why, read from the engine
(``State.OOMKilled``, exit code). A restart of the engine stops every
container: the channel closes, the engine cannot be asked why, and the result
says that the engine restarted or stopped and the state is lost (a container
the engine could not be asked to remove then is removed at the next restart
or close). The worker ends when its channel closes, even while busy, so a
container whose host was killed stops at once. Containers carry labels
naming their owner process; those of dead owners are removed at the next start.

Cold start is hidden two ways. The backend keeps a warm pool (``pool_size``,
1 by default) of started containers, refilled in a background thread. And a
session can start while the model is still being asked::

    backend = DockerBackend(image="eager-rt-python:local")
    session = backend.prestart()          # container start begins now ...
    stream = client.chat.completions.create(..., stream=True)
    result = await arun_stream(tokens(stream), session)   # ... and is ready by now

(``session.start()`` called while a prestart is under way waits for it.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import tarfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from eager_rt.backends._docker_engine import (
    Container,
    ContainerSpec,
    Demuxer,
    Engine,
    EngineUnreachable,
    describe_engine_lost,
    describe_state,
    iter_tar_files,
    tar_of_bytes,
    tar_of_path,
)
from eager_rt.backends._docker_pool import WarmPool
from eager_rt.backends._framed import WorkerSession
from eager_rt.backends._hardening import Hardening
from eager_rt.backends._limits import DEFAULT_EXEC_TIMEOUT, DEFAULT_MAX_OUTPUT
from eager_rt.backends._process import WorkerProcess
from eager_rt.backends._protocol import worker_command
from eager_rt.backends._recovery import DEFAULT_INTERRUPT_GRACE

from eager_rt import clock
from eager_rt.executor import Backend, BackendError, SessionDead

__all__ = ["DEFAULT_IMAGE", "IMAGE_ENV", "DockerBackend", "DockerSession"]

DEFAULT_IMAGE = "python:3.12-slim"
IMAGE_ENV = "EAGER_RT_DOCKER_IMAGE"  #: overrides DEFAULT_IMAGE when no ``image=`` is given
_STDERR_KEEP = 4096  # bytes of the worker's private stderr kept for death reports
_STOP_WAIT_S = 3.0  # how long a death report waits for the engine to see the container stop
_READER_LIMIT = 1 << 20

# one reap per engine address per process: stale containers of dead owners go
# before this process starts its first container
_reaped: set[str] = set()
_reap_lock = threading.Lock()


def _reap_once(engine: Engine) -> None:
    with _reap_lock:
        if engine.base_url in _reaped:
            return
        _reaped.add(engine.base_url)
    engine.reap()


def _numeric_user(user: str | None) -> tuple[int, int] | None:
    """(uid, gid) of a "uid" or "uid:gid" user, so the tmpfs can belong to it."""
    if not user:
        return None
    uid, _, gid = user.partition(":")
    if uid.isdigit() and (not gid or gid.isdigit()):
        return int(uid), int(gid or uid)
    return None


def build_spec(
    *,
    image: str | None = None,
    python: str = "python3",
    init: bool = True,
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    host_config: Mapping[str, Any] | None = None,
    **hardening: Any,
) -> ContainerSpec:
    """The container spec for these options; ``hardening`` are :class:`Hardening`'s fields."""
    image = image or os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE
    h = Hardening(**hardening)
    ids = _numeric_user(h.user)
    owner = f",uid={ids[0]},gid={ids[1]},mode=0700" if ids else ",mode=1777"
    config: dict[str, Any] = {
        "network_mode": h.network_mode,
        "read_only": h.read_only,
        "cap_drop": list(h.cap_drop),
        "security_opt": ["no-new-privileges"] if h.no_new_privileges else [],
        "tmpfs": {
            h.workdir: f"rw,size={h.workdir_size}{owner}",
            "/tmp": f"rw,size={h.tmp_size},mode=1777",
        },
        "init": init,
        # the channel runs over attach; a log driver would copy every frame to disk
        "log_config": {"type": "none"},
    }
    if h.mem_limit is not None:
        config["mem_limit"] = h.mem_limit
        config["memswap_limit"] = h.mem_limit  # no swap: the limit is the limit
    if h.pids_limit is not None:
        config["pids_limit"] = h.pids_limit
    if h.cpus is not None:
        config["nano_cpus"] = int(h.cpus * 1e9)
    config.update(host_config or {})
    return ContainerSpec(
        image=image,
        command=tuple(worker_command(python)),
        user=h.user,
        working_dir=h.workdir,
        environment=tuple(sorted(h.environment(env).items())),
        host_config=tuple(sorted(config.items())),
        labels=tuple(sorted((labels or {}).items())),
    )


class _EngineHolder:
    """One engine client, made on first use (in a thread: making it asks the engine)."""

    def __init__(self, base_url: str | None, api_timeout: float) -> None:
        self.base_url = base_url
        self.api_timeout = api_timeout
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def make(self) -> Engine:
        return Engine(self.base_url, self.api_timeout)

    def get(self) -> Engine:
        with self._lock:
            if self._engine is None:
                engine = self.make()
                _reap_once(engine)
                self._engine = engine
            return self._engine

    def close(self) -> None:
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()


class _AttachProtocol(asyncio.Protocol):
    """The attach connection on the event loop: stdout frames feed the worker channel.

    Demultiplexing happens in ``data_received``, so a frame reaches the
    session's reader with no extra task hop. It also provides what
    :class:`asyncio.StreamWriter` expects of a protocol (drain, close waiter).
    """

    def __init__(self, reader: asyncio.StreamReader, on_stderr: Callable[[bytes], None]) -> None:
        self._reader = reader
        self._demux = Demuxer(reader.feed_data, on_stderr)
        self._loop = asyncio.get_running_loop()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._reader.set_transport(transport)

    def data_received(self, data: bytes) -> None:
        self._demux.feed(data)

    def eof_received(self) -> bool:
        self._reader.feed_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None:
            self._reader.feed_eof()
        else:
            self._reader.set_exception(exc)
        if not self._closed.done():
            self._closed.set_result(None)
        self._wake_drainers()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_drainers()

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _drain_helper(self) -> None:
        if self._closed.done():
            raise ConnectionResetError("the container's attach connection is closed")
        if not self._paused:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def _get_close_waiter(self, stream: asyncio.StreamWriter) -> asyncio.Future[None]:
        return self._closed


class _PreloadedWriter(asyncio.StreamWriter):
    """The channel to a pooled worker, which was sent its source while it waited in the pool.

    :class:`WorkerSession` begins every launch by writing the worker's source;
    this writer drops that one write (checking it is byte for byte what the
    pool sent) and passes everything after it, starting with the init frame.
    """

    def __init__(
        self,
        transport: asyncio.Transport,
        protocol: asyncio.BaseProtocol,
        reader: asyncio.StreamReader,
        loop: asyncio.AbstractEventLoop,
        already_sent: bytes,
    ) -> None:
        super().__init__(transport, protocol, reader, loop)
        self._already_sent: bytes | None = already_sent

    def write(self, data: bytes | bytearray | memoryview) -> None:
        expected, self._already_sent = self._already_sent, None
        if expected is None:
            super().write(data)
        elif bytes(data) != expected:
            raise BackendError("the pooled worker was preloaded with a different worker source")


class DockerWorker(WorkerProcess):
    """The worker as a container's main process, reached over the engine's attach stream."""

    unit: ClassVar[str] = "container"

    def __init__(
        self,
        spec: ContainerSpec,
        engine: _EngineHolder,
        pool: WarmPool | None,
        cwd: Path | None,
    ) -> None:
        self.spec = spec
        self.engine = engine
        self.pool = pool
        self.cwd = cwd
        self.container: Container | None = None
        self._transport: asyncio.Transport | None = None
        self._stderr_tail = bytearray()
        self._removals: set[asyncio.Future[None]] = set()
        #: containers whose removal found the engine unreachable: tried again at every terminate
        self._leftovers: set[str] = set()
        self.last_start_s: float | None = None  #: seconds the last container launch took
        self.last_start_pooled = False  #: whether it came from the warm pool

    async def launch(
        self, command: Sequence[str], timeout: float | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        # the container's command is the worker argv already (see build_spec)
        began = clock.now()
        self._stderr_tail = bytearray()
        container = self.pool.take() if self.pool is not None else None
        self.last_start_pooled = container is not None
        if container is None:
            container = await self._start_container()
        self.container = container
        sock, container.sock = container.sock, None
        if sock is None:
            raise BackendError("the container has no attach connection")
        if self.cwd is not None:
            try:
                archive = await asyncio.to_thread(tar_of_path, self.cwd, ".")
                await self.put_archive(archive, ".", container)
            except BaseException:
                sock.close()
                raise
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_READER_LIMIT, loop=loop)
        protocol = _AttachProtocol(reader, self._on_stderr)
        try:
            transport, _ = await loop.create_connection(lambda: protocol, sock=sock)
        except BaseException:
            sock.close()
            raise
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.last_start_s = clock.now() - began
        if container.preloaded:
            return reader, _PreloadedWriter(transport, protocol, reader, loop, container.preloaded)
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    async def _start_container(self) -> Container:
        """Start a container in a thread; if we are cancelled meanwhile, remove what it started."""
        engine = await asyncio.to_thread(self.engine.get)
        if self.pool is not None:
            self.pool.start()  # refill for the next session or restart
        job = asyncio.ensure_future(asyncio.to_thread(engine.start_container, self.spec))
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                orphan = await job
                orphan.close_socket()
                await asyncio.to_thread(engine.remove, orphan.id)
            raise

    def _on_stderr(self, data: bytes) -> None:
        self._stderr_tail += data
        del self._stderr_tail[:-_STDERR_KEEP]

    async def send_interrupt(self, pid: int) -> None:
        container = self.container
        if container is not None:
            engine = await asyncio.to_thread(self.engine.get)
            # an engine that is gone cannot deliver it: the grace runs out, then the kill
            with contextlib.suppress(EngineUnreachable):
                await asyncio.to_thread(engine.signal, container.id, "SIGINT")

    async def terminate(self) -> None:
        transport, self._transport = self._transport, None
        container, self.container = self.container, None
        doomed = set(self._leftovers)
        if container is not None:
            container.close_socket()
            doomed.add(container.id)
        for container_id in doomed:
            # the removal runs to its end even if whoever awaits it is cancelled
            # (a timeout's escalation is, once the code is gone); every later
            # terminate (restart, close) waits for it, so nothing outlives close()
            removal = asyncio.ensure_future(self._remove(container_id))
            self._removals.add(removal)
            removal.add_done_callback(self._removals.discard)
        if transport is not None:
            transport.abort()
        for pending_removal in list(self._removals):
            with contextlib.suppress(Exception):
                await asyncio.shield(pending_removal)

    async def _remove(self, container_id: str) -> None:
        """Remove a container; one the engine cannot be asked to remove now is kept for later."""
        self._leftovers.discard(container_id)
        try:
            engine = await asyncio.to_thread(self.engine.get)
            await asyncio.to_thread(engine.remove, container_id)
        except EngineUnreachable:
            self._leftovers.add(container_id)
            raise

    async def death_detail(self) -> str:
        container = self.container
        if container is None:
            return ""
        engine = await asyncio.to_thread(self.engine.get)
        try:
            document = await asyncio.to_thread(_inspect_when_stopped, engine, container.id)
        except EngineUnreachable as lost:
            # a restart of the engine stops its containers: the channel closes,
            # and the engine cannot be asked why until it is back
            detail = describe_engine_lost(lost)
        else:
            state = document.get("State") if document is not None else None
            memory = (document or {}).get("HostConfig", {}).get("Memory") or None
            detail = describe_state(state, memory)
        tail = self._stderr_tail.decode("utf-8", "replace").strip()
        if tail:
            detail += f"; worker stderr: {tail[-1000:]}"
        return detail

    async def put_archive(self, archive: bytes, dest: str, container: Container) -> None:
        engine = await asyncio.to_thread(self.engine.get)
        await asyncio.to_thread(
            engine.put_archive,
            container.id,
            self.spec.command[0],
            archive,
            dest,
            user=self.spec.user,
            workdir=self.spec.working_dir,
        )

    async def get_archive(self, path: str, container: Container) -> bytes:
        engine = await asyncio.to_thread(self.engine.get)
        return await asyncio.to_thread(
            engine.get_archive,
            container.id,
            self.spec.command[0],
            path,
            user=self.spec.user,
            workdir=self.spec.working_dir,
        )


class DockerSession(WorkerSession):
    """One worker in one container; see the module docstring for the defaults.

    Container options (all keyword, all overridable): ``image`` (default
    ``$EAGER_RT_DOCKER_IMAGE`` or ``python:3.12-slim``), ``python`` (the
    interpreter in the image), ``workdir`` and ``workdir_size`` (the tmpfs
    work directory), ``tmp_size``, ``user`` (``None`` keeps the image's),
    ``network_mode``, ``read_only``, ``cap_drop``, ``no_new_privileges``,
    ``mem_limit``, ``pids_limit``, ``cpus``, ``init``, ``env``, ``labels``,
    and ``host_config`` (any other keyword of the SDK's
    ``create_host_config``, applied last). Engine: ``base_url`` (default
    ``$DOCKER_HOST`` or the local socket), ``api_timeout``. Session:
    ``interrupt_grace``, ``auto_restart``, ``start_timeout``,
    ``prerender_figures``, ``exec_timeout``, ``max_output`` (as for every
    worker backend), and ``cwd``: a
    host directory whose contents are copied into the work directory at every
    (re)start, so a script's relative data paths work as they do locally
    (copied, never mounted: the code cannot change the host's files).
    """

    backend_name: ClassVar[str] = "docker"
    process: DockerWorker

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_timeout: float = 60.0,
        interrupt_grace: float = DEFAULT_INTERRUPT_GRACE,
        auto_restart: bool = True,
        start_timeout: float = 120.0,
        prerender_figures: bool = True,
        exec_timeout: float | None = DEFAULT_EXEC_TIMEOUT,
        max_output: int | None = DEFAULT_MAX_OUTPUT,
        cwd: str | os.PathLike[str] | None = None,
        _engine: _EngineHolder | None = None,
        _pool: WarmPool | None = None,
        **container_options: Any,
    ) -> None:
        directory = None if cwd is None else Path(cwd)
        if directory is not None and not directory.is_dir():
            raise ValueError(f"cwd must be a directory on this host: {directory}")
        spec = build_spec(**container_options)
        self._owns_engine = _engine is None
        engine = _engine or _EngineHolder(base_url, api_timeout)
        pool = _pool if _pool is not None and _pool.spec.key() == spec.key() else None
        super().__init__(
            DockerWorker(spec, engine, pool, directory),
            python=str(container_options.get("python", "python3")),
            interrupt_grace=interrupt_grace,
            auto_restart=auto_restart,
            start_timeout=start_timeout,
            prerender_figures=prerender_figures,
            exec_timeout=exec_timeout,
            max_output=max_output,
        )
        self.cwd = directory
        self.spec = spec
        self._start_lock: asyncio.Lock | None = None
        self._start_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ public extras

    @property
    def container_id(self) -> str | None:
        """The current container's id, while there is one."""
        container = self.process.container
        return container.id if container is not None else None

    @property
    def container_labels(self) -> dict[str, str]:
        container = self.process.container
        return dict(container.labels) if container is not None else {}

    @property
    def last_start_s(self) -> float | None:
        """Seconds the last container launch took."""
        return self.process.last_start_s

    @property
    def last_start_pooled(self) -> bool:
        """Whether the last container came from the warm pool."""
        return self.process.last_start_pooled

    def start_soon(self, timeout: float | None = None) -> asyncio.Task[None]:
        """Begin :meth:`start` in the background, e.g. when the LLM request is sent.

        Container start then overlaps the model's time to first token. A later
        ``start()`` (``async with session``, the runtime) waits for this one;
        ``close()`` cancels it. A failure surfaces at that later ``start()``.
        """
        task = self._start_task
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self.start(timeout))
            task.add_done_callback(_consume_exception)
            self._start_task = task
        return task

    async def start(self, timeout: float | None = None) -> None:
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            await super().start(timeout)

    async def close(self) -> None:
        task, self._start_task = self._start_task, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await super().close()
        if self._owns_engine:
            await asyncio.to_thread(self.process.engine.close)

    async def put_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        """Write ``data`` to ``path`` in the container (relative paths: under the work dir)."""
        directory, name = posixpath.split(path)
        if not name:
            raise ValueError(f"not a file path: {path!r}")
        archive = tar_of_bytes(name, data, mode)
        await self.process.put_archive(archive, directory or ".", self._require_container())

    async def upload(self, local: str | os.PathLike[str], dest: str = ".") -> None:
        """Copy a local file or directory into directory ``dest`` of the container."""
        source = Path(local)
        if not source.exists():
            raise FileNotFoundError(f"no such local file: {source}")
        archive = await asyncio.to_thread(tar_of_path, source, source.name)
        await self.process.put_archive(archive, dest, self._require_container())

    async def get_file(self, path: str) -> bytes:
        """The content of file ``path`` in the container."""
        archive = await self.process.get_archive(path, self._require_container())
        for member, content in iter_tar_files(archive):
            if content is not None:
                return content
            if member.isdir():
                raise IsADirectoryError(f"{path} is a directory in the container; use download()")
        raise BackendError(f"{path} is not a regular file in the container")

    async def download(self, path: str, local_dir: str | os.PathLike[str]) -> Path:
        """Copy file or directory ``path`` out of the container into ``local_dir``; return it."""
        archive = await self.process.get_archive(path, self._require_container())
        target = Path(local_dir)
        target.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(_extract, archive, target)
        return target / posixpath.basename(path.rstrip("/"))

    def _require_container(self) -> Container:
        container = self.process.container
        if container is None or not self.alive:
            raise SessionDead("the Docker session is not running; start it first")
        return container


def _consume_exception(task: asyncio.Task[None]) -> None:
    """A background start's failure is reported by the next start(), not as a stray warning."""
    if not task.cancelled():
        task.exception()


def _inspect_when_stopped(engine: Engine, container_id: str) -> dict[str, Any] | None:
    """Inspect, giving the engine a moment to record the exit (code, OOM) after the EOF."""
    deadline = time.monotonic() + _STOP_WAIT_S
    while True:
        document = engine.inspect(container_id)
        if document is None or not document.get("State", {}).get("Running"):
            return document
        if time.monotonic() > deadline:
            return document
        time.sleep(0.02)


def _extract(archive: bytes, target: Path) -> None:
    import io

    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(target, filter="data")
        else:  # pragma: no cover - Pythons before the extraction filters
            root = target.resolve()
            for member in tar.getmembers():
                if not (target / member.name).resolve().is_relative_to(root):
                    raise BackendError(f"refusing to extract {member.name!r} outside {target}")
                if member.issym() or member.islnk():
                    raise BackendError(f"refusing to extract link {member.name!r}")
            tar.extractall(target)


class DockerBackend(Backend):
    """Docker sessions; options given here are defaults for every session.

    ``pool_size`` (default 1) containers of the default configuration are kept
    started in the background once the backend is first used (or
    :meth:`warm_up` is awaited); a session whose options change the container
    starts its own. :meth:`aclose` removes the pool.
    """

    name: ClassVar[str] = "docker"

    def __init__(
        self,
        *,
        pool_size: int = 1,
        base_url: str | None = None,
        api_timeout: float = 60.0,
        **defaults: Any,
    ) -> None:
        if pool_size < 0:
            raise ValueError("pool_size must be >= 0")
        self.defaults = defaults
        spec = build_spec(**{k: v for k, v in defaults.items() if k not in _SESSION_ONLY})
        DockerSession(**defaults)  # fail now on a bad option, not at the first session
        self._engine = _EngineHolder(base_url, api_timeout)
        self.pool = WarmPool(self._engine.make, spec, pool_size)

    def session(self, **options: Any) -> DockerSession:
        return DockerSession(_engine=self._engine, _pool=self.pool, **{**self.defaults, **options})

    def prestart(self, **options: Any) -> DockerSession:
        """A session whose start has already begun (call with a running event loop)."""
        session = self.session(**options)
        session.start_soon()
        return session

    async def warm_up(self, timeout: float = 120.0) -> None:
        """Reach the engine, reap stale containers and fill the warm pool; wait until full."""
        await asyncio.to_thread(self._engine.get)
        self.pool.start()
        if self.pool.size and not await asyncio.to_thread(self.pool.wait_full, timeout):
            error = self.pool.last_error
            raise BackendError(f"the warm pool did not fill within {timeout} s: {error!r}")

    async def reap(self) -> list[str]:
        """Remove containers of host processes that died; return their ids."""
        engine = await asyncio.to_thread(self._engine.get)
        return await asyncio.to_thread(engine.reap)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.pool.close)
        await asyncio.to_thread(self._engine.close)


_SESSION_ONLY = frozenset(
    {
        "interrupt_grace",
        "auto_restart",
        "start_timeout",
        "prerender_figures",
        "exec_timeout",
        "max_output",
        "cwd",
    }
)
