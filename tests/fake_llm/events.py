"""The providers' streaming wire formats, built from a scripted reply.

Each builder returns the SSE events one real response would carry, in order,
as ``(event_name_or_None, data_text, carries_output)``. Payloads follow the
official formats field for field (the tests also parse them with the SDKs'
strict validation on), so the unmodified ``openai`` and ``anthropic`` clients
cannot tell the fake from the real service:

* Chat Completions: ``data: {chat.completion.chunk}`` lines, no event names,
  the finish chunk, an optional usage chunk, then ``data: [DONE]``.
* Responses: ``event: response.*`` + ``data:`` with a ``sequence_number``; no
  ``[DONE]``: the stream ends after ``response.completed``/``incomplete``.
* Anthropic Messages: ``message_start``, ``content_block_start``/``delta``/
  ``stop`` per block, ``ping``, ``message_delta``, ``message_stop``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "Reply", "anthropic_error", "build", "chat_error", "responses_error"]

Event = tuple[str | None, str, bool]


@dataclass
class Reply:
    """What the fake model says: text pieces, then optionally one or more tool calls."""

    text: list[str] = field(default_factory=list)
    #: (tool name, argument JSON fragments) per call
    tools: list[tuple[str, list[str]]] = field(default_factory=list)
    #: (tool name, free-form input fragments) per call: Responses custom tools only
    custom_tools: list[tuple[str, list[str]]] = field(default_factory=list)
    #: "stop" / "length"; tool calls make the natural reason tool_calls / tool_use
    finish: str = "stop"
    model: str = "fake-model-1"


def _dump(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def build(api: str, reply: Reply, request: dict[str, Any]) -> list[Event]:
    if api == "chat":
        return _chat(reply, request)
    if api == "responses":
        return _responses(reply)
    if api == "messages":
        return _messages(reply)
    raise ValueError(api)


def _output_tokens(reply: Reply) -> int:
    calls = [*reply.tools, *reply.custom_tools]
    return len(reply.text) + sum(len(frags) for _, frags in calls)


# -- Chat Completions ---------------------------------------------------------------


def _chat(reply: Reply, request: dict[str, Any]) -> list[Event]:
    created = int(time.time())
    base = {
        "id": "chatcmpl-fake0001",
        "object": "chat.completion.chunk",
        "created": created,
        "model": reply.model,
        "system_fingerprint": "fp_fake",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _dump({**base, "choices": [choice]})

    first = chunk({"role": "assistant", "content": "", "refusal": None})
    events: list[Event] = [(None, first, False)]
    for piece in reply.text:
        events.append((None, chunk({"content": piece}), True))
    for k, (name, fragments) in enumerate(reply.tools):
        start = {
            "index": k,
            "id": f"call_fake{k}",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        events.append((None, chunk({"tool_calls": [start]}), True))
        for frag in fragments:
            delta = {"tool_calls": [{"index": k, "function": {"arguments": frag}}]}
            events.append((None, chunk(delta), True))
    finish = reply.finish
    if finish == "stop" and reply.tools:
        finish = "tool_calls"
    events.append((None, chunk({}, finish), False))
    if (request.get("stream_options") or {}).get("include_usage"):
        out = _output_tokens(reply)
        usage = {"prompt_tokens": 11, "completion_tokens": out, "total_tokens": 11 + out}
        events.append((None, _dump({**base, "choices": [], "usage": usage}), False))
    events.append((None, "[DONE]", False))
    return events


def chat_error(message: str) -> Event:
    error = {"message": message, "type": "server_error", "param": None, "code": None}
    return (None, _dump({"error": error}), False)


# -- Responses ----------------------------------------------------------------------


def _response(reply: Reply, status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    return {
        "id": "resp_fake0001",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": reply.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _responses(reply: Reply) -> list[Event]:
    events: list[Event] = []
    seq = 0

    def add(payload: dict[str, Any], output: bool = False) -> None:
        nonlocal seq
        payload["sequence_number"] = seq
        seq += 1
        events.append((payload["type"], _dump(payload), output))

    add({"type": "response.created", "response": _response(reply, "in_progress", [], None)})
    add({"type": "response.in_progress", "response": _response(reply, "in_progress", [], None)})
    output: list[Any] = []
    index = 0
    if reply.text:
        item_id = "msg_fake0001"
        item = {"id": item_id, "type": "message", "status": "in_progress", "content": [],
                "role": "assistant"}
        add({"type": "response.output_item.added", "output_index": index, "item": item})
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        add({"type": "response.content_part.added", "item_id": item_id, "output_index": index,
             "content_index": 0, "part": part})
        for piece in reply.text:
            add({"type": "response.output_text.delta", "item_id": item_id, "output_index": index,
                 "content_index": 0, "delta": piece, "logprobs": []}, True)
        full = "".join(reply.text)
        add({"type": "response.output_text.done", "item_id": item_id, "output_index": index,
             "content_index": 0, "text": full, "logprobs": []})
        done_part = {**part, "text": full}
        add({"type": "response.content_part.done", "item_id": item_id, "output_index": index,
             "content_index": 0, "part": done_part})
        done_item = {**item, "status": "completed", "content": [done_part]}
        add({"type": "response.output_item.done", "output_index": index, "item": done_item})
        output.append(done_item)
        index += 1
    for k, (name, fragments) in enumerate(reply.tools):
        item_id = f"fc_fake{k}"
        item = {"id": item_id, "type": "function_call", "status": "in_progress", "arguments": "",
                "call_id": f"call_fake{k}", "name": name}
        add({"type": "response.output_item.added", "output_index": index, "item": item}, True)
        for frag in fragments:
            add({"type": "response.function_call_arguments.delta", "item_id": item_id,
                 "output_index": index, "delta": frag}, True)
        args = "".join(fragments)
        add({"type": "response.function_call_arguments.done", "item_id": item_id,
             "output_index": index, "arguments": args})
        done_item = {**item, "status": "completed", "arguments": args}
        add({"type": "response.output_item.done", "output_index": index, "item": done_item})
        output.append(done_item)
        index += 1
    for k, (name, fragments) in enumerate(reply.custom_tools):
        item_id = f"ctc_fake{k}"
        item = {"id": item_id, "type": "custom_tool_call", "call_id": f"call_custom{k}",
                "name": name, "input": ""}
        add({"type": "response.output_item.added", "output_index": index, "item": item}, True)
        for frag in fragments:
            add({"type": "response.custom_tool_call_input.delta", "item_id": item_id,
                 "output_index": index, "delta": frag}, True)
        text = "".join(fragments)
        add({"type": "response.custom_tool_call_input.done", "item_id": item_id,
             "output_index": index, "input": text})
        done_item = {**item, "input": text}
        add({"type": "response.output_item.done", "output_index": index, "item": done_item})
        output.append(done_item)
        index += 1
    out = _output_tokens(reply)
    usage = {
        "input_tokens": 11,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 11 + out,
    }
    if reply.finish == "length":
        add({"type": "response.incomplete",
             "response": _response(reply, "incomplete", output, usage)})
    else:
        add({"type": "response.completed",
             "response": _response(reply, "completed", output, usage)})
    return events


def responses_error(message: str, seq: int) -> Event:
    payload = {"type": "error", "code": "server_error", "message": message, "param": None,
               "sequence_number": seq}
    return ("error", _dump(payload), False)


# -- Anthropic Messages -------------------------------------------------------------


def _messages(reply: Reply) -> list[Event]:
    events: list[Event] = []

    def add(payload: dict[str, Any], output: bool = False) -> None:
        events.append((payload["type"], _dump(payload), output))

    message: dict[str, Any] = {
        "id": "msg_fake0001",
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 11,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
        },
    }
    add({"type": "message_start", "message": message})
    index = 0
    if reply.text:
        add({"type": "content_block_start", "index": index,
             "content_block": {"type": "text", "text": ""}})
        add({"type": "ping"})
        for piece in reply.text:
            add({"type": "content_block_delta", "index": index,
                 "delta": {"type": "text_delta", "text": piece}}, True)
        add({"type": "content_block_stop", "index": index})
        index += 1
    for k, (name, fragments) in enumerate(reply.tools):
        block = {"type": "tool_use", "id": f"toolu_fake{k}", "name": name, "input": {}}
        add({"type": "content_block_start", "index": index, "content_block": block}, True)
        for frag in fragments:
            add({"type": "content_block_delta", "index": index,
                 "delta": {"type": "input_json_delta", "partial_json": frag}}, True)
        add({"type": "content_block_stop", "index": index})
        index += 1
    reason = {"stop": "tool_use" if reply.tools else "end_turn", "length": "max_tokens"}.get(
        reply.finish, reply.finish
    )
    add({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None},
         "usage": {"output_tokens": _output_tokens(reply)}})
    add({"type": "message_stop"})
    return events


def anthropic_error(message: str) -> Event:
    payload = {"type": "error", "error": {"type": "overloaded_error", "message": message}}
    return ("error", _dump(payload), False)
