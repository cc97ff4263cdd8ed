"""Anthropic Messages streams as token sources, sync and async.

Pass the stream the official ``anthropic`` SDK returns for
``client.messages.create(..., stream=True)`` (or the ``MessageStream`` of
``client.messages.stream(...)``; its extra ``text``/``input_json`` events repeat
the raw deltas and are skipped)::

    t0 = eager_rt.clock.now()
    stream = client.messages.create(model=..., max_tokens=..., messages=..., stream=True)
    result = run_stream(messages(stream, started=t0), session)

``text_delta`` text goes through the markdown-fence extractor; the
``input_json_delta`` fragments of a ``tool_use`` block through the streaming
JSON decoder of its ``code`` argument. The SDK is never imported here.
"""

from __future__ import annotations

from typing import Any

from eager_rt.sources.llm import (
    Assembler,
    AsyncModelSource,
    ModelSource,
    ModelStreamError,
    get,
)

__all__ = ["MessagesReader", "amessages", "messages"]

#: client tool calls; ``server_tool_use`` blocks (web search, Anthropic's own code
#: execution) run on the provider's side and are never run here
_TOOL_BLOCKS = frozenset({"tool_use"})


class MessagesReader:
    """``message_start`` ... ``message_stop`` events of the Messages API."""

    def read(self, event: Any, asm: Assembler) -> None:
        kind = get(event, "type")
        stats = asm.stats
        if kind == "content_block_delta":
            delta = get(event, "delta")
            dtype = get(delta, "type")
            if dtype == "text_delta":
                asm.text(get(delta, "text") or "")
            elif dtype == "input_json_delta":
                asm.tool_args(f"block:{get(event, 'index')}", get(delta, "partial_json") or "")
        elif kind == "content_block_start":
            block = get(event, "content_block")
            btype = get(block, "type")
            if btype in _TOOL_BLOCKS:
                asm.tool_begin(f"block:{get(event, 'index')}", get(block, "name"), get(block, "id"))
            elif btype == "text" and get(block, "text"):
                asm.text(get(block, "text"))
        elif kind == "content_block_stop":
            asm.tool_end(f"block:{get(event, 'index')}")
        elif kind == "message_start":
            message = get(event, "message")
            stats.model = get(message, "model")
            stats.response_id = get(message, "id")
            usage = get(message, "usage")
            if usage is not None:
                stats.input_tokens = get(usage, "input_tokens")
                stats.output_tokens = get(usage, "output_tokens")
        elif kind == "message_delta":
            reason = get(get(event, "delta"), "stop_reason")
            if reason:
                stats.finish_reason = reason
            usage = get(event, "usage")
            if usage is not None and get(usage, "output_tokens") is not None:
                stats.output_tokens = get(usage, "output_tokens")
        elif kind == "message_stop":
            stats.complete = True
        elif kind == "error":  # the SDK raises on these itself; plain-dict streams reach here
            error = get(event, "error")
            message = get(error, "message") or "error event"
            etype = get(error, "type")
            text = f"{message} ({etype})" if etype else message
            stats.error = f"api_error: {text}"
            raise ModelStreamError("api_error", text, stats)


def messages(stream: Any, **options: Any) -> ModelSource:
    """Code from a sync ``client.messages.create(..., stream=True)``.

    Options as for :func:`eager_rt.sources.openai.chat_completions`.
    """
    return ModelSource(stream, MessagesReader(), provider="anthropic", api="messages", **options)


def amessages(stream: Any, **options: Any) -> AsyncModelSource:
    """Async twin of :func:`messages` (an ``AsyncAnthropic`` stream)."""
    return AsyncModelSource(
        stream, MessagesReader(), provider="anthropic", api="messages", **options
    )
