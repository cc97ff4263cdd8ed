"""A small HTTP/1.1 server on asyncio streams: just what the E2B protocol needs.

Written by hand rather than on a framework so the tests control every byte on
the wire: a response can be cut in the middle of a chunk, a head can be
delayed, a stream can stall without a single keepalive. It speaks keep-alive
HTTP/1.1 (the E2B SDK pins its code-interpreter client to HTTP/1.1 so that a
client going away closes the connection, which the server turns into a kernel
interrupt), ``Content-Length`` request bodies, and ``Transfer-Encoding:
chunked`` streamed responses, like uvicorn does for a Starlette
``StreamingResponse``.

Every socket gets ``TCP_NODELAY``: the protocol streams many small NDJSON lines
and Nagle's algorithm would otherwise hold each one back for a delayed ACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ConnectionCut",
    "HTTPServer",
    "Request",
    "Response",
    "StreamResponse",
]

MAX_HEAD = 64 * 1024
MAX_BODY = 32 * 1024 * 1024
MAX_CONNECTIONS = 128

REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class ConnectionCut(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a stream body to drop the TCP connection on the spot (a scripted fault).

    ``reset`` sends an RST (a peer that vanished); otherwise the connection is
    closed in the middle of the chunked body (a proxy that gave up).
    """

    def __init__(self, reset: bool = False) -> None:
        super().__init__("connection cut")
        self.reset = reset


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(cls, value: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(value).encode(), {"content-type": "application/json"})

    @classmethod
    def of_text(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), {"content-type": "text/plain; charset=utf-8"})


@dataclass
class StreamResponse:
    """A chunked response; ``body`` yields the chunks and may raise :class:`ConnectionCut`.

    ``on_disconnect`` runs when the client closes the connection before the
    body is done (the generator is cancelled first).
    """

    body: AsyncIterator[bytes]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response | StreamResponse]]


class HTTPServer:
    """Serve ``handler`` on a loopback port; ``delay_s`` holds every response by one round trip.

    The added delay models network distance, not a slow server: half of it is
    spent before the request is handled (the request's way in) and every byte
    of the response is released half of it after it was produced (the way
    out), so a stream's throughput is unchanged and only its latency grows.
    """

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the local E2B server listens on loopback only")
        self._handler = handler
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.delay_s = 0.0
        self.last_activity = time.monotonic()

    @property
    def port(self) -> int:
        assert self._server is not None
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connection, self._host, self._port, limit=MAX_HEAD, backlog=64
        )
        for sock in self._server.sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if len(self._connections) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ConnectionCut):
            pass
        except asyncio.CancelledError:
            pass  # server shutdown: the connection just ends
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        out = _DelayedWriter(writer, self.delay_s / 2)
        while True:
            try:
                request = await _read_request(reader)
            except _BadRequest as exc:
                await out.send(_head(exc.status, {"content-length": "0", "connection": "close"}))
                await out.drain()
                return
            if request is None:
                return
            self.last_activity = time.monotonic()
            out.delay_s = self.delay_s / 2
            if out.delay_s:
                await asyncio.sleep(out.delay_s)
            try:
                response = await self._handler(request)
            except Exception as exc:  # noqa: BLE001 - a test server reports, never dies
                response = Response.of_text(f"internal error: {exc!r}", 500)
            if isinstance(response, Response):
                headers = {"content-length": str(len(response.body)), **response.headers}
                await out.send(_head(response.status, headers) + response.body)
                await out.drain()
            else:
                finished = await self._stream(response, reader, out)
                if not finished:
                    return
            self.last_activity = time.monotonic()

    async def _stream(
        self, response: StreamResponse, reader: asyncio.StreamReader, out: _DelayedWriter
    ) -> bool:
        """Write a chunked body; False when the connection must close (cut or client gone)."""
        headers = {"transfer-encoding": "chunked", **response.headers}
        await out.send(_head(response.status, headers))
        pump = asyncio.ensure_future(_pump(response.body, out))
        # A client that goes away mid-stream shows up as EOF on the read side;
        # like Starlette's listen_for_disconnect, stop the body at once.
        gone = asyncio.ensure_future(reader.read(1))
        try:
            done, _ = await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
            if pump in done:
                pump.result()
                # Stop watching before the last chunk goes out: once the client
                # has it, the next bytes on the socket are its next request.
                gone.cancel()
                with contextlib.suppress(BaseException):
                    await gone
                if gone.cancelled() or gone.result():
                    await out.send(b"0\r\n\r\n")
                    await out.drain()
                    return True
                return False
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump
            return False
        except ConnectionCut as cut:
            with contextlib.suppress(ConnectionError):
                await out.drain()  # what was written before the cut still arrives
            out.abort(reset=cut.reset)
            return False
        finally:
            gone.cancel()
            with contextlib.suppress(BaseException):
                await gone
            if not pump.done():
                pump.cancel()
                with contextlib.suppress(BaseException):
                    await pump


async def _pump(body: AsyncIterator[bytes], out: _DelayedWriter) -> None:
    try:
        async for chunk in body:
            if chunk:
                await out.send(b"%x\r\n%b\r\n" % (len(chunk), chunk))
    finally:
        aclose = getattr(body, "aclose", None)
        if aclose is not None:
            await aclose()


class _DelayedWriter:
    """Release each write ``delay_s`` after it was made, keeping order and throughput."""

    def __init__(self, writer: asyncio.StreamWriter, delay_s: float) -> None:
        self._writer = writer
        self.delay_s = delay_s
        self._queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def send(self, data: bytes) -> None:
        if self.delay_s <= 0 and self._task is None:
            self._writer.write(data)
            await self._writer.drain()
            return
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        self._queue.put_nowait((time.monotonic() + self.delay_s, data))

    async def drain(self) -> None:
        """Wait until everything sent so far is on the wire."""
        if self._task is None:
            await self._writer.drain()
            return
        self._queue.put_nowait(None)
        task, self._task = self._task, None
        await task

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            due, data = item
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._writer.write(data)
            await self._writer.drain()

    def abort(self, reset: bool) -> None:
        """Drop the connection now, never finishing the chunked body."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        transport = self._writer.transport
        sock = transport.get_extra_info("socket")
        if reset and sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _BadRequest(400) from None
        return None
    except asyncio.LimitOverrunError:
        raise _BadRequest(400) from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError:
        raise _BadRequest(400) from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise _BadRequest(411)
    length = int(headers.get("content-length", "0") or "0")
    if length > MAX_BODY:
        raise _BadRequest(413)
    body = await reader.readexactly(length) if length else b""
    path, _, query = target.partition("?")
    return Request(method.upper(), path, query, headers, body)


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
