"""The Gemini API's streaming wire format, served by the fake model server.

``POST /{version}/models/{model}:streamGenerateContent?alt=sse`` (the Gemini
API) and ``POST /{version}/publishers/google/models/{model}:streamGenerateContent``
(Vertex AI, express mode) answer with ``data: {GenerateContentResponse}``
SSE events, camelCase as on the wire: one chunk per text piece, then the
function calls, then a last chunk with ``finishReason`` and the full
``usageMetadata``. No ``[DONE]``: the body simply ends.

A function call comes whole (``args``), as the Gemini API sends it, unless
the request asked for ``toolConfig.functionCallingConfig.streamFunctionCallArguments``
(Vertex AI only): then it streams as Vertex does, a part with the ``name`` and
``willContinue``, one part per piece of the ``code`` string as
``partialArgs`` (``jsonPath`` ``$.code``), and an empty ``functionCall`` last.

:class:`FakeGemini` is :class:`~tests.fake_llm.server.FakeLLM` with that route
added; every fault of :class:`~tests.fake_llm.server.Faults` applies to it.
"""

from __future__ import annotations

import json
import socket
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fake_llm.events import Event, Reply
from tests.fake_llm.server import FakeLLM, RequestLog, _ClientGone, _Stopped

__all__ = ["FakeGemini", "gemini_error", "gemini_events"]

_ROUTE = ":streamGenerateContent"
_REASONS = {"stop": "STOP", "length": "MAX_TOKENS"}


def _dump(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _streams_arguments(request: dict[str, Any]) -> bool:
    # proto3 JSON: a field is spelled in camelCase or as in the .proto (the SDK sends that)
    config = (request.get("toolConfig") or {}).get("functionCallingConfig") or {}
    return bool(config.get("streamFunctionCallArguments") or config.get(
        "stream_function_call_arguments"))


def gemini_events(reply: Reply, request: dict[str, Any]) -> list[Event]:
    """The SSE events of one streamed response (no event names, as Google sends them)."""
    usage = {"promptTokenCount": 11, "totalTokenCount": 11}

    def chunk(parts: list[dict[str, Any]], **candidate: Any) -> str:
        content = {"parts": parts, "role": "model"}
        return _dump({
            "candidates": [{"content": content, "index": 0, **candidate}],
            "usageMetadata": usage,
            "modelVersion": reply.model,
            "responseId": "resp-fake0001",
        })

    events: list[Event] = [(None, chunk([{"text": piece}]), True) for piece in reply.text]
    streamed = _streams_arguments(request)
    for k, (name, fragments) in enumerate(reply.tools):
        args = json.loads("".join(fragments))  # Gemini never sends malformed arguments
        call_id = f"call_fake{k}"
        if not streamed:
            call = {"id": call_id, "name": name, "args": args}
            events.append((None, chunk([{"functionCall": call}]), True))
            continue
        events.append(
            (None, chunk([{"functionCall": {"id": call_id, "name": name, "willContinue": True}}]),
             True)
        )
        code = str(args.get("code", ""))
        pieces = [code[i : i + 7] for i in range(0, len(code), 7)] or [""]
        for i, piece in enumerate(pieces):
            partial: dict[str, Any] = {"jsonPath": "$.code", "stringValue": piece}
            if i < len(pieces) - 1:
                partial["willContinue"] = True
            call = {"partialArgs": [partial], "willContinue": True}
            events.append((None, chunk([{"functionCall": call}]), True))
        events.append((None, chunk([{"functionCall": {}}]), True))
    out = len(reply.text) + sum(len(f) for _, f in reply.tools)
    usage = {"promptTokenCount": 11, "candidatesTokenCount": out, "totalTokenCount": 11 + out}
    reason = _REASONS.get(reply.finish, reply.finish)
    events.append((None, chunk([{"text": ""}], finishReason=reason), False))
    return events


def gemini_error(message: str) -> Event:
    """A mid-stream error, as the service writes it into the event stream."""
    error = {"code": 503, "message": message, "status": "UNAVAILABLE"}
    return (None, _dump({"error": error}), False)


class FakeGemini(FakeLLM):
    """:class:`FakeLLM` that also speaks ``streamGenerateContent``; ``url`` is the base URL.

    ``keep_alive=False`` closes each connection after its response: for clients
    that keep theirs in a process-wide cache (LiteLLM), whose idle connections
    would otherwise hold the server's handler threads until their timeout.
    """

    def __init__(self, *args: Any, keep_alive: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep_alive = keep_alive

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        try:
            self._route(h)
        finally:
            if not self.keep_alive:
                h.close_connection = True

    def _route(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        if _ROUTE not in path:
            super()._handle(h)
            return
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length) or b"{}")
        log = RequestLog(path, "gemini", body, {k.lower(): v for k, v in h.headers.items()})
        with self._lock:
            n = len(self.requests)
            self.requests.append(log)
        try:
            if n >= self.max_requests or self.status != 200:
                self._refuse_gemini(h, 429 if n >= self.max_requests else self.status)
            else:
                self._stream_gemini(h, log, self._next_reply("gemini", body, n))
        finally:
            log.done.set()

    def _refuse_gemini(self, h: BaseHTTPRequestHandler, status: int) -> None:
        data = _dump({"error": {"code": status, "message": "refused", "status": "UNAUTHENTICATED"}})
        raw = data.encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(raw)))
        h.end_headers()
        h.wfile.write(raw)
        h.wfile.flush()

    def _stream_gemini(self, h: BaseHTTPRequestHandler, log: RequestLog, reply: Reply) -> None:
        faults = self.faults
        events = gemini_events(reply, log.body)
        log.events_total = len(events)
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
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
                        h.wfile.write(b'40\r\ndata: {"can')  # a chunk torn in the middle
                        h.wfile.flush()
                        sock.shutdown(socket.SHUT_RDWR)
                        h.close_connection = True
                        return
                    if outputs in (faults.truncate_after, faults.error_after):
                        if outputs == faults.error_after:
                            self._send(h, sock, gemini_error(faults.error_message))
                        self._end_body(h)
                        h.close_connection = True
                        return
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
