"""Scripted replies the tests share: code in a fenced block or a tool call, cut in pieces."""

from __future__ import annotations

import json
from typing import Any

from tests.fake_llm.events import Reply

__all__ = ["pieces", "reply_for", "tool_fragments"]


def pieces(text: str, size: int = 6) -> list[str]:
    """``text`` cut in pieces of ``size`` characters, as a model streams it."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def tool_fragments(code: str, size: int = 7, argument: str = "code") -> list[str]:
    """The JSON arguments ``{"code": ...}`` cut in fragments of ``size`` characters."""
    return pieces(json.dumps({argument: code}), size)


def reply_for(form: str, code: str, **kw: Any) -> Reply:
    """``code`` as a ``python`` tool call (``form="tool"``) or in a fenced block between prose."""
    if form == "tool":
        return Reply(tools=[("python", tool_fragments(code))], **kw)
    text = ["I will compute it.\n```py", "thon\n", *pieces(code), "```\nThat is the answer.\n"]
    return Reply(text=text, **kw)
