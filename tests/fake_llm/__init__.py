"""A fake model service for the adapter tests: the real SDKs talk to it over loopback HTTP."""

from tests.fake_llm.events import Reply
from tests.fake_llm.replies import pieces, reply_for, tool_fragments
from tests.fake_llm.server import FakeLLM, Faults, RequestLog

__all__ = ["FakeLLM", "Faults", "Reply", "RequestLog", "pieces", "reply_for", "tool_fragments"]
