"""A loopback HTTP server that streams like OpenAI and Anthropic, with faults on demand.

Routes: ``POST .../chat/completions`` (Chat Completions), ``.../responses``
(Responses), ``.../messages`` (Anthropic Messages). Every request gets the next
scripted :class:`~tests.fake_llm.events.Reply` rendered in that API's exact
SSE format, over HTTP/1.1 chunked transfer like the real services.

Faults (:class:`Faults`): a slow first token, a pause between events (or
before each token only), a connection dropped mid-stream (torn chunked body,
or a clean end that simply omits the final events), the provider's error
event, and a hold: stop after N events until the client goes away, which
makes "the client closed the stream early" observable without any race.

For each request the server records whether the client closed the stream
before the end and how many events it never sent. It listens on 127.0.0.1
only, serves at most ``max_requests`` requests and shuts itself down after
``lifetime`` seconds even if a test forgets to. Another API (Gemini) is a
subclass that overrides the per-API methods: its route, events, error event,
refusal and headers; the serving and the faults stay here, one for all.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from eager_rt.closing import Closing
from tests.fake_llm.events import (
    Event,
    Reply,
    anthropic_error,
    build,
    chat_error,
    responses_error,
)

__all__ = ["FakeLLM", "Faults", "RequestLog"]


class _QuietServer(ThreadingHTTPServer):
    """A client that leaves a kept-alive connection is normal here, not an error to print."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Faults:
    first_token_delay: float = 0.0  #: seconds before the first event that carries output
    interval: float = 0.0  #: seconds between events
    #: seconds before each output-carrying event but the first; the end follows the last at once
    token_interval: float = 0.0
    #: after this many output-carrying events, tear the connection down mid-chunk
    drop_after: int | None = None
    #: after this many output-carrying events, end the body cleanly without the final events
    truncate_after: int | None = None
    #: after this many output-carrying events, send the provider's error event and end
    error_after: int | None = None
    error_message: str = "The server had an error while processing your request."
    #: after this many output-carrying events, wait (bounded) until the client disconnects
    hold_after: int | None = None
    hold_timeout: float = 20.0


@dataclass
class RequestLog:
    path: str
    api: str
    body: dict[str, Any]
    headers: dict[str, str]
    index: int = 0  #: the request's place in the order the server received them
    events_total: int = 0
    events_sent: int = 0
    client_closed: bool = False  #: the client went away before the last event
    finished: bool = False  #: every scripted event was written
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def events_unsent(self) -> int:
        return self.events_total - self.events_sent


ReplySource = Reply | list[Reply] | Callable[[str, dict[str, Any]], Reply]


class _ClientGone(Exception):
    pass


class _Stopped(Exception):
    """The server is shutting down (close() or its lifetime ran out)."""


class FakeLLM(Closing):
    """``with FakeLLM(Reply(text=[...])) as llm: OpenAI(base_url=llm.openai_url, ...)``."""

    def __init__(
        self,
        replies: ReplySource,
        faults: Faults | None = None,
        *,
        lifetime: float = 120.0,
        max_requests: int = 20,
        status: int = 200,
    ) -> None:
        self._replies = replies
        self.faults = faults or Faults()
        self.lifetime = lifetime
        self.max_requests = max_requests
        self.status = status
        self.requests: list[RequestLog] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = False
        self._server.block_on_close = True
        self._thread = threading.Thread(target=self._serve, name="fake-llm", daemon=True)
        self._timer = threading.Timer(lifetime, self._expire)
        self._timer.daemon = True

    # -- lifecycle ---------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> Self:
        self._thread.start()
        self._timer.start()
        return self

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=0.05)

    def _expire(self) -> None:
        self._stopping.set()
        self._server.shutdown()

    def close(self) -> None:
        """Stop serving; a handler still streaming ends at its next event."""
        self._timer.cancel()
        self._stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(10.0)
        self._server.server_close()  # joins the handler threads

    def __enter__(self) -> Self:
        self.start()
        return self

    def wait_done(self, index: int = 0, timeout: float = 30.0) -> RequestLog:
        """The log of request ``index`` once its handler has finished."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self.requests) > index:
                    log = self.requests[index]
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"request {index} never arrived")
            time.sleep(0.01)
        if not log.done.wait(max(0.0, deadline - time.monotonic())):
            raise TimeoutError(f"request {index} still streaming after {timeout} s")
        return log

    # -- serving -------------------------------------------------------------------

    def _next_reply(self, api: str, body: dict[str, Any], n: int) -> Reply:
        replies = self._replies
        if isinstance(replies, Reply):
            return replies
        if isinstance(replies, list):
            return replies[min(n, len(replies) - 1)]
        return replies(api, body)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30.0

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                fake._handle(self)

        return Handler

    # -- what differs between APIs: a subclass that adds one overrides these ----------

    def _api(self, path: str) -> str:
        """The API a request path belongs to, ``""`` for none (answered 404)."""
        if path.endswith("/chat/completions"):
            return "chat"
        if path.endswith("/responses"):
            return "responses"
        if path.endswith("/messages"):
            return "messages"
        return ""

    def _events(self, api: str, reply: Reply, log: RequestLog) -> list[Event]:
        return build(api, reply, log.body)

    def _error_event(self, api: str, seq: int) -> Event:
        message = self.faults.error_message
        if api == "chat":
            return chat_error(message)
        if api == "responses":
            return responses_error(message, seq)
        return anthropic_error(message)

    def _refusal(self, api: str, status: int) -> dict[str, Any]:
        if api == "messages":
            return {"type": "error", "error": {"type": "rate_limit_error", "message": "refused"}}
        return {"error": {"message": "refused", "type": "requests", "param": None, "code": None}}

    def _stream_headers(self, api: str, log: RequestLog) -> dict[str, str]:
        return {
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "x-request-id": f"req_fake{id(log)}",
        }

    # -- one request ---------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length) or b"{}")
        path = h.path.split("?", 1)[0]
        api = self._api(path)
        log = RequestLog(path, api, body, {k.lower(): v for k, v in h.headers.items()})
        with self._lock:
            n = log.index = len(self.requests)
            self.requests.append(log)
        try:
            if not api:
                self._refuse(h, api, 404)
            elif n >= self.max_requests:
                self._refuse(h, api, 429)
            elif self.status != 200:
                self._refuse(h, api, self.status)
            else:
                self._stream(h, api, log, self._next_reply(api, body, n))
        finally:
            log.done.set()

    def _refuse(self, h: BaseHTTPRequestHandler, api: str, status: int) -> None:
        data = json.dumps(self._refusal(api, status)).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    def _stream(self, h: BaseHTTPRequestHandler, api: str, log: RequestLog, reply: Reply) -> None:
        """Write the reply's events as chunked SSE, with the faults asked for."""
        faults = self.faults
        events = self._events(api, reply, log)
        log.events_total = len(events)
        h.send_response(200)
        for name, value in self._stream_headers(api, log).items():
            h.send_header(name, value)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.wfile.flush()
        sock: socket.socket = h.connection
        outputs = 0
        try:
            for index, event in enumerate(events):
                if event[2]:
                    if outputs == 0 and faults.first_token_delay:
                        self._pause(sock, faults.first_token_delay)
                    if outputs == faults.hold_after:
                        self._hold(sock, faults.hold_timeout)
                    if outputs == faults.drop_after:
                        frame = _chunk(event)
                        h.wfile.write(frame[: len(frame) // 2])  # a chunk torn in the middle
                        h.wfile.flush()
                        sock.shutdown(socket.SHUT_RDWR)
                        h.close_connection = True
                        return
                    if outputs == faults.truncate_after:
                        self._end_body(h)  # a clean end, without the final events
                        h.close_connection = True
                        return
                    if outputs == faults.error_after:
                        self._send(h, sock, self._error_event(api, log.events_sent))
                        self._end_body(h)
                        h.close_connection = True
                        return
                    if outputs and faults.token_interval:
                        self._pause(sock, faults.token_interval)
                    outputs += 1
                if index and faults.interval:
                    self._pause(sock, faults.interval)
                self._send(h, sock, event)
                log.events_sent += 1
            self._end_body(h)
            log.finished = True
        except (_ClientGone, BrokenPipeError, ConnectionResetError):
            log.client_closed = True
            h.close_connection = True
        except _Stopped:
            h.close_connection = True

    def _send(self, h: BaseHTTPRequestHandler, sock: socket.socket, event: Event) -> None:
        if self._stopping.is_set():
            raise _Stopped
        if _peer_closed(sock):
            raise _ClientGone
        h.wfile.write(_chunk(event))
        h.wfile.flush()

    def _end_body(self, h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()

    def _pause(
        self,
        sock: socket.socket,
        seconds: float,
        until: threading.Event | None = None,
        poll: float = 0.05,
    ) -> None:
        """Sleep ``seconds`` (or until ``until`` is set), but notice a client that leaves."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not (until and until.is_set()):
            if self._stopping.is_set():
                raise _Stopped
            if _peer_closed(sock, min(left, poll)):
                raise _ClientGone

    def _hold(self, sock: socket.socket, timeout: float) -> None:
        """Send nothing until the client disconnects (or ``timeout``)."""
        self._pause(sock, timeout)


def _chunk(event: Event) -> bytes:
    """One SSE event framed as one HTTP/1.1 chunk."""
    name, data, _ = event
    raw = ((f"event: {name}\n" if name else "") + f"data: {data}\n\n").encode()
    return f"{len(raw):x}\r\n".encode() + raw + b"\r\n"


def _peer_closed(sock: socket.socket, wait: float = 0.0) -> bool:
    """True when the client has closed its end (readable with nothing to read)."""
    try:
        readable, _, _ = select.select([sock], [], [], wait)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True
