"""A fake model that paces its tokens only, as providers do: the end follows the last token at once.

``Faults(interval=...)`` pauses before *every* event, so the finish chunk, the
usage chunk and ``[DONE]`` each arrive one interval after the last token. A
real service sends them together with (or right after) the last token, and a
framework that waits for the end of the stream before it runs a tool would be
charged two or three intervals it never pays in production. Benchmarks that
compare against such a framework use :class:`TokenPacedLLM`: one
``token_interval`` before each output-carrying event but the first, nothing
before the others.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fake_llm.events import Event, Reply
from tests.fake_llm.server import FakeLLM, RequestLog

__all__ = ["TokenPacedLLM"]


class TokenPacedLLM(FakeLLM):
    """:class:`FakeLLM` whose pause (``token_interval`` s) precedes output events only."""

    def __init__(self, *args: Any, token_interval: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.faults.interval:
            raise ValueError("pace with token_interval=, not Faults(interval=)")
        self.token_interval = token_interval
        self._request = threading.local()  # each request is served on its own thread

    def _stream(
        self,
        h: BaseHTTPRequestHandler,
        api: str,
        body: dict[str, Any],
        log: RequestLog,
        reply: Reply,
    ) -> None:
        self._request.outputs = 0
        super()._stream(h, api, body, log, reply)

    def _send(self, h: BaseHTTPRequestHandler, sock: socket.socket, event: Event) -> None:
        if event[2]:
            if self._request.outputs:
                self._pause(sock, self.token_interval)
            self._request.outputs += 1
        super()._send(h, sock, event)
