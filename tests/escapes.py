"""Code that tries to break out of a sandbox, shared by the backends' isolation tests.

Each backend's tests run the same attempt and check both sides: what the code
inside reports, and that the host is untouched.
"""

from __future__ import annotations

import contextlib
import socket
import textwrap
from collections.abc import Iterator, Sequence

#: prints ``bombing`` once, then forks for ever; only a pids limit (and the timeout) stop it
FORK_BOMB = textwrap.dedent(
    """
    import os
    print('bombing', flush=True)
    while True:
        try:
            os.fork()
        except OSError:
            pass
    """
)


def write_attempts(outside: Sequence[str], inside: Sequence[str]) -> str:
    """Code that appends to each path of ``outside`` and writes ``fine`` to each of ``inside``.

    It prints ``wrote PATH`` or ``denied PATH REASON`` per outside path, and
    ``wrote PATH`` per inside path (a write refused there raises: the test fails).
    """
    return textwrap.dedent(
        f"""
        import os
        for path in {list(outside)!r}:
            try:
                with open(path, 'a') as f:
                    f.write('x')
                print('wrote', path)
            except OSError as exc:
                print('denied', path, exc.strerror)
        for path in {list(inside)!r}:
            with open(path, 'w') as f:
                f.write('fine')
            print('wrote', path)
        """
    )


def denied(stdout: str) -> list[str]:
    """The paths :func:`write_attempts` reported as denied, in order."""
    return [line.split()[1] for line in stdout.splitlines() if line.startswith("denied ")]


def host_ip() -> str | None:
    """This machine's primary address (a UDP connect sends nothing), or None without a route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only the route lookup happens
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") else address


class HostServer:
    """A TCP server of the host's, on all its addresses, that never accepts: was it reached?"""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.port: int = sock.getsockname()[1]

    def reached(self) -> bool:
        """Whether a connection came in (the kernel completes it before ``connect`` returns)."""
        try:
            connection, _ = self._sock.accept()
        except BlockingIOError:
            return False
        connection.close()
        return True


@contextlib.contextmanager
def host_server() -> Iterator[HostServer]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        sock.setblocking(False)
        yield HostServer(sock)


def connect_attempts(targets: Sequence[str | None], port: int) -> str:
    """Code that prints its network interfaces, then tries TCP to each target (None skipped).

    It prints ``connected TARGET`` or ``refused TARGET ERROR`` per target.
    """
    return textwrap.dedent(
        f"""
        import socket
        print(sorted(name for _, name in socket.if_nameindex()))
        for target in {[t for t in targets if t is not None]!r}:
            try:
                socket.create_connection((target, {port}), timeout=5).close()
                print('connected', target)
            except OSError as exc:
                print('refused', target, type(exc).__name__)
        """
    )


def connected(stdout: str) -> list[str]:
    """The targets :func:`connect_attempts` reported as reached."""
    return [line.split()[1] for line in stdout.splitlines() if line.startswith("connected ")]
