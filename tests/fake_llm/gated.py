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
from typing import Any

from tests.fake_llm.events import Event, Reply
from tests.fake_llm.server import FakeLLM, RequestLog

__all__ = ["GatedLLM"]


class GatedLLM(FakeLLM):
    """:class:`FakeLLM` whose hold also ends when ``gate`` is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()

    def _events(self, api: str, reply: Reply, log: RequestLog) -> list[Event]:
        n = log.index
        return [
            (name, data.replace('"call_fake', f'"call_r{n}_fake').replace(
                '"call_custom', f'"call_r{n}_custom'), output)
            for name, data, output in super()._events(api, reply, log)
        ]

    def _hold(self, sock: socket.socket, timeout: float) -> None:
        self._pause(sock, timeout, until=self.gate, poll=0.02)
