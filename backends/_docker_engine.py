"""Everything the Docker backend asks of the engine, in blocking calls.

The session (:mod:`eager_rt.backends.docker`) runs these in worker threads and
keeps only the worker channel on its event loop. Three things live here:

* :class:`ContainerSpec`: the hardened container a worker runs in, as the
  keyword arguments of the engine's create call;
* :class:`Engine`: a thin layer over the ``docker`` SDK's low-level client
  (imported here, lazily, so ``import eager_rt`` never needs it), plus the one
  thing the SDK does not do well for us: *hijacked* connections. Attach and
  exec-start upgrade an HTTP request into a raw bidirectional byte stream; we
  open those sockets ourselves, read the response head byte by byte so not a
  byte of the stream is swallowed by a buffer, and hand the bare socket to
  asyncio (the worker channel) or read it here (file transfers);
* the reaper: every container carries its owner's pid, host and process start
  time as labels, so containers of a host process that died without cleaning
  up are found and removed at the next start.

The multiplexed stream format (no TTY): each frame is an 8-byte header
``[stream, 0, 0, 0, size(4, big-endian)]`` then ``size`` bytes; stream 1 is
stdout, 2 is stderr.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlparse

from eager_rt.executor import BackendError

__all__ = [
    "LABEL_OWNER_HOST",
    "LABEL_OWNER_PID",
    "LABEL_OWNER_START",
    "LABEL_SESSION",
    "Container",
    "ContainerSpec",
    "Demuxer",
    "Engine",
    "EngineUnreachable",
    "describe_engine_lost",
    "describe_state",
    "owner_labels",
]

LABEL_SESSION = "eager_rt.session"  #: a uuid per container
LABEL_OWNER_PID = "eager_rt.owner_pid"  #: pid of the host process that owns it
LABEL_OWNER_HOST = "eager_rt.owner_host"  #: that process's host name
LABEL_OWNER_START = "eager_rt.owner_start"  #: that process's start time (guards pid reuse)
LABEL_ROLE = "eager_rt.role"  #: "session" or "pool"

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
_HEAD_LIMIT = 64 * 1024  # an HTTP response head longer than this is not an engine talking
_STREAM_STDOUT = 1
_STREAM_STDERR = 2

# File transfer helpers run by the container's own python3 (stdlib only), in an
# exec with stdin open: the engine's archive API cannot write to a read-only
# root file system nor see a tmpfs, which is exactly where the work dir lives.
_UNTAR = (
    "import os,sys,tarfile\n"
    "d=sys.argv[1]\n"
    "os.makedirs(d,exist_ok=True)\n"
    "with tarfile.open(fileobj=sys.stdin.buffer,mode='r|') as t:\n"
    "    if hasattr(tarfile,'data_filter'):\n"
    "        t.extraction_filter=tarfile.data_filter\n"
    "    t.extractall(d)\n"
)
_TAR = (
    "import os,sys,tarfile\n"
    "p=sys.argv[1]\n"
    "if not os.path.exists(p):\n"
    "    sys.stderr.write('FileNotFoundError: '+p+'\\n'); sys.exit(2)\n"
    "with tarfile.open(fileobj=sys.stdout.buffer,mode='w|') as t:\n"
    "    t.add(p,arcname=os.path.basename(p.rstrip('/')) or '.')\n"
)


# --------------------------------------------------------------------------- owner labels


def _process_start(pid: int) -> str:
    """The kernel's start time of ``pid`` (clock ticks since boot), or "" where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return ""
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else ""


def owner_labels() -> dict[str, str]:
    """Labels naming this process as a container's owner."""
    pid = os.getpid()
    return {
        LABEL_OWNER_PID: str(pid),
        LABEL_OWNER_HOST: socket.gethostname(),
        LABEL_OWNER_START: _process_start(pid),
    }


def owner_alive(labels: dict[str, str]) -> bool:
    """Is the host process named by these labels still running? Unknown owners count as alive."""
    if labels.get(LABEL_OWNER_HOST) != socket.gethostname():
        return True  # another machine's container: not ours to judge
    try:
        pid = int(labels.get(LABEL_OWNER_PID, ""))
    except ValueError:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    started = labels.get(LABEL_OWNER_START, "")
    return not started or _process_start(pid) in ("", started)


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class ContainerSpec:
    """The container one worker runs in. Every hardening default can be overridden.

    ``host_config`` holds keyword arguments of the SDK's ``create_host_config``
    (network, limits, capabilities, tmpfs ...); ``environment`` the worker's
    environment; ``command`` the worker's argv.
    """

    image: str
    command: tuple[str, ...]
    user: str | None
    working_dir: str
    environment: tuple[tuple[str, str], ...]
    host_config: tuple[tuple[str, Any], ...]
    labels: tuple[tuple[str, str], ...] = ()

    def key(self) -> str:
        """Identity for the warm pool: two specs with one key make interchangeable containers."""
        return json.dumps(
            [
                self.image,
                self.command,
                self.user,
                self.working_dir,
                self.environment,
                self.host_config,
                self.labels,
            ],
            sort_keys=True,
            default=repr,
        )


@dataclass
class Container:
    """A started container whose main process is a worker waiting for its source.

    ``sock`` is the hijacked attach connection (stdin, stdout, stderr), opened
    before the container started so no byte is missed; the container's stdin
    closes when it closes (``stdin_once``), which ends the worker.
    """

    id: str
    name: str
    labels: dict[str, str]
    sock: socket.socket | None
    created: float = field(default_factory=time.monotonic)
    #: bytes already written to the worker's stdin (the worker's source, for a pooled one)
    preloaded: bytes = b""

    def close_socket(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def socket_at_eof(self) -> bool:
        """True when the engine has closed the attach stream (the container is gone)."""
        sock = self.sock
        if sock is None:
            return True
        try:
            sock.setblocking(False)
            try:
                return sock.recv(1, socket.MSG_PEEK) == b""
            finally:
                sock.setblocking(True)
        except BlockingIOError:
            return False
        except OSError:
            return True


# --------------------------------------------------------------------------- demux


class Demuxer:
    """Splits the engine's multiplexed stream into stdout and stderr callbacks."""

    def __init__(self, on_stdout: Callable[[bytes], None], on_stderr: Callable[[bytes], None]):
        self._buffer = bytearray()
        self._sinks = {_STREAM_STDOUT: on_stdout, _STREAM_STDERR: on_stderr}

    def feed(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        end = len(buffer)
        while end - start >= 8:
            size = int.from_bytes(buffer[start + 4 : start + 8], "big")
            if end - start - 8 < size:
                break
            sink = self._sinks.get(buffer[start])
            if sink is not None and size:
                sink(bytes(buffer[start + 8 : start + 8 + size]))
            start += 8 + size
        if start:
            del buffer[:start]

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still held (non-zero at EOF: a truncated stream)."""
        return len(self._buffer)


# --------------------------------------------------------------------------- engine


def _sdk() -> Any:
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise BackendError(
            "the Docker backend needs the docker SDK: pip install 'eager_rt[docker]'"
        ) from exc
    return docker


class EngineUnreachable(BackendError):
    """No answer from the engine at all (its socket gone, refused, timed out): not a refusal."""

    def __init__(self, base_url: str, reason: str) -> None:
        super().__init__(f"the Docker engine at {base_url} cannot be reached ({reason})")
        self.base_url = base_url
        self.reason = reason


def _reason(exc: BaseException) -> str:
    """The operating system's words for why a connection failed, dug out of the SDK's wrapping.

    requests wraps urllib3, which wraps the ``OSError``: ``ConnectionError(
    ProtocolError('Connection aborted.', FileNotFoundError(2, ...)))``.
    """
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
        stack.extend(link for link in (current.__cause__, current.__context__) if link is not None)
    return str(exc) or type(exc).__name__


class Engine:
    """One Docker engine, reached at ``base_url`` (default: ``DOCKER_HOST`` or the local socket).

    Hijacked streams need a plain socket, so the engine must be reachable over
    a unix socket or plain TCP (not TLS or SSH). An engine that cannot be
    reached at all (stopped, restarting) raises :class:`EngineUnreachable`
    from every call, never the HTTP library's own errors.
    """

    def __init__(self, base_url: str | None = None, timeout: float = 60.0) -> None:
        self.base_url = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
        self.timeout = timeout
        docker = _sdk()
        self.errors = docker.errors
        from requests.exceptions import ConnectionError as NoConnection
        from requests.exceptions import Timeout

        # what requests raises when no HTTP answer comes (the SDK leaves these unwrapped)
        self._no_answer: tuple[type[BaseException], ...] = (NoConnection, Timeout)
        try:
            self.api: Any = docker.APIClient(
                base_url=self.base_url, timeout=timeout, version="auto"
            )
        except docker.errors.DockerException as exc:
            raise BackendError(f"no Docker engine answers at {self.base_url}: {exc}") from exc
        self.version: str = self.api.api_version
        self._lock = threading.Lock()

    def close(self) -> None:
        self.api.close()

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        """Turn the HTTP library's "no answer" into :class:`EngineUnreachable`."""
        try:
            yield
        except self._no_answer as exc:
            raise EngineUnreachable(self.base_url, _reason(exc)) from exc

    # -- plain calls

    def ping(self) -> None:
        try:
            self.api.ping()
        except Exception as exc:
            raise BackendError(
                f"the Docker engine at {self.base_url} does not answer: {exc}"
            ) from exc

    def has_image(self, image: str) -> bool:
        try:
            with self._reaching():
                self.api.inspect_image(image)
        except self.errors.ImageNotFound:
            return False
        return True

    def inspect(self, container_id: str) -> dict[str, Any] | None:
        """The container's inspect document, or None once it is gone."""
        try:
            with self._reaching():
                result: dict[str, Any] = self.api.inspect_container(container_id)
        except self.errors.NotFound:
            return None
        return result

    def signal(self, container_id: str, sig: str) -> None:
        """Send ``sig`` to the container's main process (docker-init forwards it to the worker)."""
        with contextlib.suppress(self.errors.NotFound, self.errors.APIError), self._reaching():
            self.api.kill(container_id, signal=sig)

    def remove(self, container_id: str) -> None:
        """Kill and remove; a container that is already gone is fine."""
        try:
            with self._reaching():
                self.api.remove_container(container_id, force=True, v=True)
        except self.errors.NotFound:
            pass
        except self.errors.APIError as exc:
            # "removal already in progress" is someone else finishing the job
            if "already in progress" not in str(exc):
                raise

    def list_owned(self, *, all_states: bool = True) -> list[dict[str, Any]]:
        """Every container that carries eager_rt's owner labels."""
        with self._reaching():
            result: list[dict[str, Any]] = self.api.containers(
                all=all_states, filters={"label": LABEL_OWNER_PID}
            )
        return result

    def reap(self) -> list[str]:
        """Remove containers whose owning host process is gone; return their ids."""
        removed = []
        for entry in self.list_owned():
            labels = entry.get("Labels") or {}
            if not owner_alive(labels):
                with contextlib.suppress(Exception):
                    self.remove(entry["Id"])
                    removed.append(str(entry["Id"]))
        return removed

    # -- containers

    def start_container(
        self, spec: ContainerSpec, role: str = "session", preload: bytes = b""
    ) -> Container:
        """Create, attach to and start one worker container; write ``preload`` to its stdin."""
        name = f"eager-rt-{uuid.uuid4().hex[:16]}"
        labels = {**dict(spec.labels), LABEL_SESSION: name, LABEL_ROLE: role, **owner_labels()}
        try:
            host_config = self.api.create_host_config(**dict(spec.host_config))
            with self._reaching():
                created = self.api.create_container(
                    spec.image,
                    command=list(spec.command),
                    user=spec.user or "",
                    working_dir=spec.working_dir,
                    environment=dict(spec.environment),
                    labels=labels,
                    name=name,
                    # with detach=False the SDK also sets StdinOnce: the worker's
                    # stdin closes when our attach connection does
                    detach=False,
                    stdin_open=True,
                    tty=False,
                    host_config=host_config,
                    use_config_proxy=False,
                )
        except self.errors.ImageNotFound as exc:
            raise BackendError(
                f"image {spec.image!r} is not on the Docker engine at {self.base_url}; "
                "pull or build it first (scripts/setup-docker.sh builds eager-rt-python:local)"
            ) from exc
        except self.errors.DockerException as exc:
            raise BackendError(f"could not create a container from {spec.image!r}: {exc}") from exc
        container = Container(str(created["Id"]), name, labels, None)
        try:
            container.sock = self.hijack(
                f"/containers/{container.id}/attach",
                {"stream": 1, "stdin": 1, "stdout": 1, "stderr": 1},
            )
            with self._reaching():
                self.api.start(container.id)
            if preload:
                container.sock.sendall(preload)
                container.preloaded = preload
        except BaseException as exc:
            container.close_socket()
            with contextlib.suppress(Exception):
                self.remove(container.id)
            if isinstance(exc, self.errors.DockerException):
                raise BackendError(
                    f"could not start a container from {spec.image!r}: {exc}"
                ) from exc
            raise
        return container

    # -- hijacked connections

    def _connect(self) -> socket.socket:
        url = urlparse(self.base_url)
        if url.scheme in ("unix", "http+unix"):
            path = url.path or url.netloc
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = path
        elif url.scheme in ("tcp", "http") and url.hostname:
            if os.environ.get("DOCKER_TLS_VERIFY"):
                raise BackendError("the Docker backend cannot attach over TLS; use a unix socket")
            address = (url.hostname, url.port or 2375)
            sock = socket.socket(socket.AF_INET6 if ":" in url.hostname else socket.AF_INET)
        else:
            raise BackendError(
                "the Docker backend attaches over a unix socket or plain TCP, "
                f"not {self.base_url!r}"
            )
        sock.settimeout(self.timeout)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            raise EngineUnreachable(self.base_url, _reason(exc)) from exc
        return sock

    def hijack(
        self, path: str, query: dict[str, Any] | None = None, body: dict[str, Any] | None = None
    ) -> socket.socket:
        """POST ``path`` upgraded to a raw stream; return the socket, positioned at the stream."""
        sock = self._connect()
        try:
            payload = json.dumps(body).encode() if body is not None else b""
            target = f"/v{self.version}{quote(path)}"
            if query:
                target += "?" + urlencode(query)
            head = (
                f"POST {target} HTTP/1.1\r\n"
                "Host: docker\r\n"
                "Connection: Upgrade\r\n"
                "Upgrade: tcp\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n"
            )
            sock.sendall(head.encode("ascii") + payload)
            status, response_head = self._read_head(sock)
            if status not in (101, 200):
                raise BackendError(f"the Docker engine refused {path}: {response_head[:500]}")
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        return sock

    @staticmethod
    def _read_head(sock: socket.socket) -> tuple[int, str]:
        """Read the HTTP response head one byte at a time: the stream starts right after it."""
        head = bytearray()
        while not head.endswith(b"\r\n\r\n"):
            byte = sock.recv(1)
            if not byte:
                raise BackendError("the Docker engine closed the connection before answering")
            head += byte
            if len(head) > _HEAD_LIMIT:
                raise BackendError("the Docker engine's answer has no end of headers")
        text = head.decode("latin-1")
        parts = text.split(" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            raise BackendError(
                f"not an HTTP answer from the Docker engine: {text[:200]!r}"
            ) from None
        if status not in (101, 200):
            # an error body follows the head; read what is there for the message
            sock.settimeout(2.0)
            with contextlib.suppress(OSError):
                text += sock.recv(4096).decode("utf-8", "replace")
        return status, text

    # -- file transfer (exec with stdin open)

    def exec_with_stdin(
        self,
        container_id: str,
        argv: list[str],
        data: bytes,
        *,
        user: str | None,
        workdir: str | None,
    ) -> tuple[int, bytes, bytes]:
        """Run ``argv`` in the container, ``data`` on its stdin; return (code, stdout, stderr)."""
        try:
            with self._reaching():
                created = self.api.exec_create(
                    container_id,
                    argv,
                    stdin=True,
                    stdout=True,
                    stderr=True,
                    user=user or "",
                    workdir=workdir,
                )
        except self.errors.DockerException as exc:
            raise BackendError(f"could not run a command in the container: {exc}") from exc
        exec_id = created["Id"]
        sock = self.hijack(f"/exec/{exec_id}/start", body={"Detach": False, "Tty": False})
        out: list[bytes] = []
        err: list[bytes] = []
        demux = Demuxer(out.append, err.append)
        try:
            sock.settimeout(self.timeout)
            # write and read at once: a large stdin must not deadlock against a full stdout
            writer = threading.Thread(target=self._send_all_then_eof, args=(sock, data))
            writer.start()
            try:
                while chunk := sock.recv(65536):
                    demux.feed(chunk)
            finally:
                writer.join(self.timeout)
        except OSError as exc:
            raise BackendError(f"the file transfer broke off: {exc}") from exc
        finally:
            sock.close()
        deadline = time.monotonic() + self.timeout
        while True:
            with self._reaching():
                info = self.api.exec_inspect(exec_id)
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"]), b"".join(out), b"".join(err)
            if time.monotonic() > deadline:
                raise BackendError("the file transfer command did not finish")
            time.sleep(0.01)

    @staticmethod
    def _send_all_then_eof(sock: socket.socket, data: bytes) -> None:
        with contextlib.suppress(OSError):
            if data:
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)  # the engine closes the command's stdin

    def put_archive(
        self,
        container_id: str,
        python: str,
        tar_bytes: bytes,
        dest: str,
        *,
        user: str | None,
        workdir: str | None,
    ) -> None:
        code, _, err = self.exec_with_stdin(
            container_id, [python, "-c", _UNTAR, dest], tar_bytes, user=user, workdir=workdir
        )
        if code != 0:
            message = err.decode("utf-8", "replace").strip().splitlines()
            raise BackendError(
                f"copying into the container failed (exit {code}): {message[-1] if message else ''}"
            )

    def get_archive(
        self, container_id: str, python: str, path: str, *, user: str | None, workdir: str | None
    ) -> bytes:
        code, out, err = self.exec_with_stdin(
            container_id, [python, "-c", _TAR, path], b"", user=user, workdir=workdir
        )
        message = err.decode("utf-8", "replace").strip()
        if code == 2 and message.startswith("FileNotFoundError"):
            raise FileNotFoundError(f"no such file in the container: {path}")
        if code != 0:
            lines = message.splitlines()
            raise BackendError(
                f"copying out of the container failed (exit {code}): {lines[-1] if lines else ''}"
            )
        return out


# --------------------------------------------------------------------------- archives


def tar_of_bytes(name: str, data: bytes, mode: int = 0o644) -> bytes:
    """A tar archive holding one file ``name`` with ``data``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_of_path(local: str | os.PathLike[str], arcname: str) -> bytes:
    """A tar archive of a local file or directory, stored under ``arcname``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(os.fspath(local), arcname=arcname, filter=_plain_owner)
    return buffer.getvalue()


def _plain_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def iter_tar_files(archive: bytes) -> Iterator[tuple[tarfile.TarInfo, bytes | None]]:
    """(member, content) for each member of ``archive``; content is None for non-files."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.isfile() else None
            yield member, (handle.read() if handle is not None else None)


# --------------------------------------------------------------------------- death


_SIGNALS = {
    1: "SIGHUP",
    2: "SIGINT",
    3: "SIGQUIT",
    4: "SIGILL",
    6: "SIGABRT",
    7: "SIGBUS",
    8: "SIGFPE",
    9: "SIGKILL",
    11: "SIGSEGV",
    13: "SIGPIPE",
    15: "SIGTERM",
}


def describe_engine_lost(lost: EngineUnreachable) -> str:
    """Why a container's channel closed when the engine itself could not be asked afterwards.

    A restart of the engine stops its containers (unless it runs with
    live-restore), closing every attach stream; so does an engine that stops.
    """
    return (
        f"the container's channel closed and the Docker engine at {lost.base_url} could not "
        f"be reached ({lost.reason}): the engine restarted or stopped, which ends its "
        "containers, and the worker's state is lost"
    )


def describe_state(state: dict[str, Any] | None, memory_limit: int | None) -> str:
    """One sentence on why a container's worker ended, from its inspect ``State``."""
    if state is None:
        return "the container was removed while the worker ran"
    code = state.get("ExitCode")
    code = int(code) if isinstance(code, int) else None
    if state.get("OOMKilled"):
        limit = f" of {memory_limit // (1 << 20)} MiB" if memory_limit else ""
        return (
            f"the worker ran out of memory: the kernel's OOM killer ended it at the container's "
            f"memory limit{limit} (container exit code {code})"
        )
    if state.get("Running"):
        return "the worker's channel closed while its container still runs"
    error = str(state.get("Error") or "")
    suffix = f"; engine error: {error}" if error else ""
    if code is None:
        return f"the container stopped{suffix}"
    if code > 128 and code - 128 in _SIGNALS:
        name = _SIGNALS[code - 128]
        why = {
            137: " (docker kill, or the engine stopped it)",
            # what docker-init passes on from a stop, and from an engine that stops or restarts
            143: " (docker stop, or the engine stopping or restarting)",
        }.get(code, "")
        return f"the container was killed by {name}{why} (exit code {code}){suffix}"
    return f"the worker exited with code {code}{suffix}"
