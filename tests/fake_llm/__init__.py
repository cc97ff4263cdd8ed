"""A fake model service for the adapter tests: the real SDKs talk to it over loopback HTTP."""

from tests.fake_llm.events import Reply
from tests.fake_llm.server import FakeLLM, Faults, RequestLog

__all__ = ["FakeLLM", "Faults", "Reply", "RequestLog", "tool_fragments"]


def tool_fragments(code: str, size: int = 7, argument: str = "code") -> list[str]:
    """The JSON arguments ``{"code": ...}`` cut in fragments of ``size`` characters."""
    import json

    text = json.dumps({argument: code})
    return [text[i : i + size] for i in range(0, len(text), size)]
