"""A unix-socket forwarder that a test can kill: an engine that goes away, without touching it.

``python -m tests.socket_proxy LISTEN TARGET`` accepts connections
on ``LISTEN`` and joins each to a new connection to ``TARGET``, byte for byte
both ways (a half-close is passed on, as file transfers over a hijacked
stream need). :class:`SocketProxy` runs it in a subprocess: :meth:`~SocketProxy.kill`
SIGKILLs it and removes its socket, so every connection through it closes at
once and a new one finds no socket, as during a restart of the Docker
engine; :meth:`~SocketProxy.start` brings it back at the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

_READY = "ready"
_CHUNK = 1 << 16


class SocketProxy:
    """A forwarder from ``path`` to the unix socket ``target``, in a process of its own."""

    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self.target = target
        self._process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        """``unix://`` URL of the listening socket (a Docker ``base_url``)."""
        return f"unix://{self.path}"

    def start(self, timeout: float = 30.0) -> None:
        if self._process is not None:
            raise RuntimeError("the proxy runs already")
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(self.path), self.target],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        self._process = process
        assert process.stdout is not None
        try:
            line = _read_line(process, timeout)
        except BaseException:
            self.kill()
            raise
        if line.strip() != _READY:
            self.kill()
            raise RuntimeError(f"the socket proxy did not start: {line!r}")

    def kill(self) -> None:
        """Remove the proxy's socket file, then SIGKILL it (its connections close).

        In that order: whoever sees a connection close and then asks again
        finds no socket (``FileNotFoundError``), as during an engine restart,
        never a refused connection.
        """
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(30)
            if process.stdout is not None:
                process.stdout.close()


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The proxy's first line, or an error if none comes within ``timeout``."""
    import selectors

    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError(f"the socket proxy said nothing within {timeout} s")
    return process.stdout.readline()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


async def _join(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: str) -> None:
    try:
        up_reader, up_writer = await asyncio.open_unix_connection(target)
    except OSError:
        writer.close()
        return
    try:
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
    finally:
        up_writer.close()
        writer.close()


async def _serve(listen: str, target: str) -> None:
    server = await asyncio.start_unix_server(lambda r, w: _join(r, w, target), path=listen)
    print(_READY, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], sys.argv[2]))
