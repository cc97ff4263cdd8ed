"""A fake model that paces its tokens only, as providers do: the end follows the last token at once.

``Faults(interval=...)`` pauses before *every* event, so the finish chunk, the
usage chunk and ``[DONE]`` each arrive one interval after the last token. A
real service sends them together with (or right after) the last token, and a
framework that waits for the end of the stream before it runs a tool would be
charged two or three intervals it never pays in production. Benchmarks that
compare against such a framework use :class:`TokenPacedLLM`: one
``token_interval`` before each output-carrying event but the first, nothing
before the others (``Faults(token_interval=...)``, set for you).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.fake_llm.server import FakeLLM

__all__ = ["TokenPacedLLM"]


class TokenPacedLLM(FakeLLM):
    """:class:`FakeLLM` whose pause (``token_interval`` s) precedes output events only."""

    def __init__(self, *args: Any, token_interval: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.faults.interval:
            raise ValueError("pace with token_interval=, not Faults(interval=)")
        self.faults = dataclasses.replace(self.faults, token_interval=token_interval)
