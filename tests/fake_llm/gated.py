"""A fake model whose stream pauses until the test opens a gate, with a call id per request.

``Faults(hold_after=N)`` makes :class:`~tests.fake_llm.server.FakeLLM` stop
after N output events until the client goes away. :class:`GatedLLM` also ends
the pause when :attr:`GatedLLM.gate` is set, so a test can prove that something
happened *while the model was still writing*: let the code that runs set the
gate, and the stream only finishes because that code ran. Without eager
execution the pause lasts ``hold_timeout`` and the test sees the order reversed.

It also numbers tool-call ids per request (``call_fake0`` becomes
``call_r1_fake0`` in the second reply): agent frameworks that keep a run's
history (the OpenAI Agents SDK) refuse a call id that an earlier call used.
"""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fake_llm.events import Event, Reply
from tests.fake_llm.server import FakeLLM, RequestLog, _ClientGone, _peer_closed, _Stopped

__all__ = ["GatedLLM"]


class GatedLLM(FakeLLM):
    """:class:`FakeLLM` whose hold also ends when ``gate`` is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self._request = threading.local()  # each request is served on its own thread

    def _stream(
        self,
        h: BaseHTTPRequestHandler,
        api: str,
        body: dict[str, Any],
        log: RequestLog,
        reply: Reply,
    ) -> None:
        with self._lock:
            self._request.index = self.requests.index(log)
        super()._stream(h, api, body, log, reply)

    def _send(self, h: BaseHTTPRequestHandler, sock: socket.socket, event: Event) -> None:
        name, data, output = event
        index = getattr(self._request, "index", 0)
        data = data.replace('"call_fake', f'"call_r{index}_fake')
        data = data.replace('"call_custom', f'"call_r{index}_custom')
        super()._send(h, sock, (name, data, output))

    def _hold(self, sock: socket.socket, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.gate.is_set():
            if self._stopping.is_set():
                raise _Stopped
            if _peer_closed(sock, 0.02):
                raise _ClientGone
