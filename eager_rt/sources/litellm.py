"""LiteLLM streams as token sources: one adapter for every provider LiteLLM speaks to.

LiteLLM translates each provider's stream (Anthropic, Gemini, Bedrock, Ollama,
vLLM ...) into OpenAI Chat Completions chunks, so its stream is read like an
OpenAI one: text through the markdown-fence extractor, tool calls through the
streaming JSON decoder of their ``code`` argument::

    t0 = eager_rt.clock.now()
    stream = await litellm.acompletion(model="anthropic/claude-...", messages=..., stream=True)
    result = await arun_stream(acompletion(stream, started=t0), session)

Closing the source closes LiteLLM's ``CustomStreamWrapper``, which closes the
provider's HTTP response. Failures come as LiteLLM's exceptions (subclasses of
OpenAI's); a mid-stream one is wrapped in ``MidStreamFallbackError`` and
classified by the failure it carries (LiteLLM reports a stream that ends
without a finish reason as a connection error).

A limit of LiteLLM itself: for its ``gemini/`` route it reports a finish
reason on every chunk, so a Gemini stream cut short looks complete through
it; :mod:`eager_rt.sources.google` reads Gemini's own final event. LiteLLM is
never imported here.
"""

from __future__ import annotations

from typing import Any

from eager_rt.sources.llm import AsyncModelSource, ModelSource
from eager_rt.sources.openai import ChatCompletionsReader

__all__ = ["acompletion", "completion"]


def completion(stream: Any, **options: Any) -> ModelSource:
    """Code from a sync ``litellm.completion(..., stream=True)``.

    Options as for :func:`eager_rt.sources.openai.chat_completions`.
    """
    return ModelSource(stream, ChatCompletionsReader(), provider="litellm", api="chat", **options)


def acompletion(stream: Any, **options: Any) -> AsyncModelSource:
    """Code from ``await litellm.acompletion(..., stream=True)``."""
    return AsyncModelSource(
        stream, ChatCompletionsReader(), provider="litellm", api="chat", **options
    )
