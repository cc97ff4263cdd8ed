"""OpenAI streams as token sources: Chat Completions and Responses, sync and async.

Pass the stream the official ``openai`` SDK returns for ``stream=True``; the
result is what :func:`eager_rt.runtime.run_stream` / ``arun_stream`` iterate::

    t0 = eager_rt.clock.now()
    stream = client.chat.completions.create(model=..., messages=..., stream=True)
    result = run_stream(chat_completions(stream, started=t0), session)

Model text (``delta.content``, ``response.output_text.delta``) goes through the
markdown-fence extractor; tool calls (``delta.tool_calls[].function.arguments``,
``response.function_call_arguments.delta``) through the streaming JSON decoder
of their ``code`` argument. A Responses *custom* tool call
(``response.custom_tool_call_input.delta``) carries free-form text, so its input
is the code itself. Refusals are kept as prose. Any OpenAI-compatible server (vLLM, llama.cpp,
Ollama) works through the same SDK with ``base_url``.

Nothing here imports the SDK: events are read by field name, so the SDK stays
an optional dependency and plain dicts work as well.
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

__all__ = [
    "ChatCompletionsReader",
    "ResponsesReader",
    "achat_completions",
    "aresponses",
    "chat_completions",
    "responses",
]


class ChatCompletionsReader:
    """``chat.completion.chunk`` events (also the ``chunk`` events of ``.stream()`` helpers)."""

    def read(self, event: Any, asm: Assembler) -> None:
        if get(event, "type") == "chunk" and get(event, "chunk") is not None:
            event = get(event, "chunk")  # ChatCompletionStream wraps raw chunks
        elif get(event, "choices") is None:
            return  # a helper's derived event (content.delta ...): the raw chunk carries it too
        stats = asm.stats
        stats.model = stats.model or get(event, "model")
        stats.response_id = stats.response_id or get(event, "id")
        usage = get(event, "usage")
        if usage is not None:
            stats.input_tokens = get(usage, "prompt_tokens", stats.input_tokens)
            stats.output_tokens = get(usage, "completion_tokens", stats.output_tokens)
        for choice in get(event, "choices") or []:
            if get(choice, "index", 0) != 0:
                continue  # n > 1: the first choice is the one that runs
            delta = get(choice, "delta")
            if delta is not None:
                content = get(delta, "content")
                if content:
                    asm.text(content)
                refusal = get(delta, "refusal")
                if refusal:
                    asm.prose(refusal)
                for call in get(delta, "tool_calls") or []:
                    key = f"chat:{get(call, 'index', 0)}"
                    function = get(call, "function")
                    name = get(function, "name") if function is not None else None
                    call_id = get(call, "id")
                    if name or call_id:
                        asm.tool_begin(key, name, call_id)
                    arguments = get(function, "arguments") if function is not None else None
                    if arguments:
                        asm.tool_args(key, arguments)
            finish = get(choice, "finish_reason")
            if finish:
                stats.finish_reason = finish
                stats.complete = True


class ResponsesReader:
    """Responses API stream events (``response.*`` and ``error``)."""

    def read(self, event: Any, asm: Assembler) -> None:
        kind = get(event, "type")
        stats = asm.stats
        if kind == "response.output_text.delta":
            asm.text(get(event, "delta") or "")
        elif kind == "response.function_call_arguments.delta":
            asm.tool_args(get(event, "item_id"), get(event, "delta") or "")
        elif kind == "response.function_call_arguments.done":
            asm.tool_end(get(event, "item_id"))
        elif kind == "response.custom_tool_call_input.delta":
            asm.tool_args(get(event, "item_id"), get(event, "delta") or "")
        elif kind == "response.custom_tool_call_input.done":
            asm.tool_end(get(event, "item_id"))
        elif kind == "response.refusal.delta":
            asm.prose(get(event, "delta") or "")
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = get(event, "item")
            itype = get(item, "type")
            if itype not in ("function_call", "custom_tool_call"):
                return
            raw = itype == "custom_tool_call"  # free-form input: the code itself, no JSON
            key = get(item, "id")
            if kind.endswith("added"):
                asm.tool_begin(key, get(item, "name"), get(item, "call_id"), raw=raw)
                initial = get(item, "input" if raw else "arguments")
                if initial:
                    asm.tool_args(key, initial)
            else:
                asm.tool_end(key)
        elif kind in ("response.created", "response.in_progress"):
            response = get(event, "response")
            stats.model = stats.model or get(response, "model")
            stats.response_id = stats.response_id or get(response, "id")
        elif kind in ("response.completed", "response.incomplete"):
            response = get(event, "response")
            usage = get(response, "usage")
            if usage is not None:
                stats.input_tokens = get(usage, "input_tokens")
                stats.output_tokens = get(usage, "output_tokens")
            details = get(response, "incomplete_details")
            reason = get(details, "reason") if details is not None else None
            stats.finish_reason = reason or get(response, "status") or kind.split(".")[-1]
            stats.complete = True
        elif kind == "response.failed":
            error = get(get(event, "response"), "error")
            message = get(error, "message") or "the response failed"
            code = get(error, "code")
            raise _api_error(asm, f"{message} ({code})" if code else message)
        elif kind == "error":
            message = get(event, "message") or "error event"
            code = get(event, "code")
            raise _api_error(asm, f"{message} ({code})" if code else message)


def _api_error(asm: Assembler, message: str) -> ModelStreamError:
    asm.stats.error = f"api_error: {message}"
    return ModelStreamError("api_error", message, asm.stats)


def chat_completions(stream: Any, **options: Any) -> ModelSource:
    """Code from a sync ``client.chat.completions.create(..., stream=True)``.

    Options: ``started`` (an :func:`eager_rt.clock.now` reading taken before the
    request, for a true time to first token), ``fences``, ``tools``,
    ``argument``, ``strict_json``, ``on_segment`` (see
    :class:`~eager_rt.sources.llm.Assembler`).
    """
    return ModelSource(stream, ChatCompletionsReader(), provider="openai", api="chat", **options)


def achat_completions(stream: Any, **options: Any) -> AsyncModelSource:
    """Async twin of :func:`chat_completions` (an ``AsyncOpenAI`` stream)."""
    return AsyncModelSource(
        stream, ChatCompletionsReader(), provider="openai", api="chat", **options
    )


def responses(stream: Any, **options: Any) -> ModelSource:
    """Code from a sync ``client.responses.create(..., stream=True)``."""
    return ModelSource(stream, ResponsesReader(), provider="openai", api="responses", **options)


def aresponses(stream: Any, **options: Any) -> AsyncModelSource:
    """Async twin of :func:`responses`."""
    return AsyncModelSource(
        stream, ResponsesReader(), provider="openai", api="responses", **options
    )
