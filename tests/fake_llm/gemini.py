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
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fake_llm.events import Event, Reply
from tests.fake_llm.replies import pieces
from tests.fake_llm.server import FakeLLM, RequestLog

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
        parts = pieces(code, 7) or [""]
        for i, part in enumerate(parts):
            partial: dict[str, Any] = {"jsonPath": "$.code", "stringValue": part}
            if i < len(parts) - 1:
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
            super()._handle(h)
        finally:
            if not self.keep_alive:
                h.close_connection = True

    def _api(self, path: str) -> str:
        return "gemini" if _ROUTE in path else super()._api(path)

    def _events(self, api: str, reply: Reply, log: RequestLog) -> list[Event]:
        if api == "gemini":
            return gemini_events(reply, log.body)
        return super()._events(api, reply, log)

    def _error_event(self, api: str, seq: int) -> Event:
        if api == "gemini":
            return gemini_error(self.faults.error_message)
        return super()._error_event(api, seq)

    def _refusal(self, api: str, status: int) -> dict[str, Any]:
        if api == "gemini":
            return {"error": {"code": status, "message": "refused", "status": "UNAUTHENTICATED"}}
        return super()._refusal(api, status)

    def _stream_headers(self, api: str, log: RequestLog) -> dict[str, str]:
        if api == "gemini":
            return {"Content-Type": "text/event-stream"}
        return super()._stream_headers(api, log)
