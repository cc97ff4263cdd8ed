"""Google Gen AI (Gemini) streams as token sources, sync and async.

Pass what ``google-genai`` returns for a streamed generation::

    t0 = eager_rt.clock.now()
    stream = await client.aio.models.generate_content_stream(model=..., contents=..., config=...)
    result = await arun_stream(agenerate_content_stream(stream, started=t0), session)

Each chunk is a ``GenerateContentResponse``; the first candidate's parts are
read in order: ``text`` goes through the markdown-fence extractor (thought
summaries are not answer text and are skipped), a ``function_call`` through
the streaming JSON decoder of its ``code`` argument. Function calls arrive in
one of two ways:

* whole, ``args`` already parsed (the Gemini API): its code is known at once;
* streamed (Vertex AI with ``stream_function_call_arguments``): a part with
  the ``name`` and ``will_continue``, parts with ``partial_args`` (a JSON path
  such as ``$.code`` and a piece of its value), and a last part without
  ``will_continue``. The pieces are rendered back into the JSON text they
  stand for, so the code runs while its argument is still being written.

Code the model runs with Gemini's own code-execution tool
(``executable_code`` parts) runs on Google's side and is never run here.
The final chunk's ``finish_reason`` ends the stream: ``MAX_TOKENS`` is the
output limit; a stop for any reason other than the limit or a natural end
(``SAFETY``, ``RECITATION``, ``MALFORMED_FUNCTION_CALL`` ...) is an
``api_error``, as is a blocked prompt. The SDK is never imported here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from eager_rt.sources.llm import Assembler, AsyncModelSource, ModelSource, ModelStreamError, get

__all__ = ["GenerateContentReader", "agenerate_content_stream", "generate_content_stream"]

#: finish reasons of a response that ended as the model meant it to (or at the limit)
_NATURAL_ENDS = frozenset({"STOP", "MAX_TOKENS", "FINISH_REASON_UNSPECIFIED"})
# a top-level member of the arguments: $.name or $['name']
_TOP_LEVEL = re.compile(r"""\$(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[['"](.+)['"]\])\Z""")


def _value(obj: Any) -> str | None:
    """An SDK enum's wire value (``FinishReason.STOP`` -> ``"STOP"``)."""
    if obj is None:
        return None
    return str(getattr(obj, "value", obj))


@dataclass(slots=True)
class _StreamedCall:
    """A function call whose arguments arrive as ``partial_args``, rendered as JSON text."""

    key: str
    members: int = 0
    open_path: str | None = None  #: the string member still being written

    def render(self, partial: Any) -> str:
        path = get(partial, "json_path") or ""
        member = _TOP_LEVEL.match(path)
        if member is None:
            return ""  # nested members are never the code; their pieces are not kept
        out: list[str] = []
        if self.open_path is not None and self.open_path != path:
            out.append('"')
            self.open_path = None
        text = get(partial, "string_value")
        if self.open_path is None:
            name = member.group(1) or member.group(2)
            out.append(("{" if self.members == 0 else ",") + json.dumps(name) + ":")
            self.members += 1
            if text is None:
                out.append(_scalar(partial))
                return "".join(out)
            out.append('"')
            self.open_path = path
        if text:
            out.append(json.dumps(text)[1:-1])
        if not get(partial, "will_continue"):
            out.append('"')
            self.open_path = None
        return "".join(out)

    def close(self) -> str:
        tail = '"' if self.open_path is not None else ""
        self.open_path = None
        return tail + ("}" if self.members else "{}")


def _scalar(partial: Any) -> str:
    for name in ("number_value", "bool_value"):
        value = get(partial, name)
        if value is not None:
            return json.dumps(value)
    return "null"


@dataclass(slots=True)
class GenerateContentReader:
    """``GenerateContentResponse`` chunks of ``generate_content_stream``."""

    _calls: int = 0
    _streaming: _StreamedCall | None = None

    def read(self, event: Any, asm: Assembler) -> None:
        stats = asm.stats
        stats.model = stats.model or get(event, "model_version")
        stats.response_id = stats.response_id or get(event, "response_id")
        usage = get(event, "usage_metadata")
        if usage is not None:
            stats.input_tokens = get(usage, "prompt_token_count", stats.input_tokens)
            stats.output_tokens = get(usage, "candidates_token_count", stats.output_tokens)
        feedback = get(event, "prompt_feedback")
        blocked = _value(get(feedback, "block_reason")) if feedback is not None else None
        if blocked:
            raise _api_error(asm, f"the prompt was blocked ({blocked})")
        for candidate in get(event, "candidates") or []:
            if (get(candidate, "index") or 0) != 0:
                continue  # candidate_count > 1: the first candidate is the one that runs
            content = get(candidate, "content")
            for part in (get(content, "parts") if content is not None else None) or []:
                self._part(part, asm)
            reason = _value(get(candidate, "finish_reason"))
            if reason:
                self._end_call(asm)
                stats.finish_reason = reason
                stats.complete = True
                if reason not in _NATURAL_ENDS:
                    message = get(candidate, "finish_message") or "the model stopped"
                    raise _api_error(asm, f"{message} ({reason})")

    def _part(self, part: Any, asm: Assembler) -> None:
        call = get(part, "function_call")
        if call is not None:
            self._function_call(call, asm)
            return
        text = get(part, "text")
        if text and not get(part, "thought"):
            asm.text(text)

    def _function_call(self, call: Any, asm: Assembler) -> None:
        name = get(call, "name")
        streaming = self._streaming
        if name or streaming is None:  # a new call (a nameless one only when none is open)
            self._end_call(asm)
            key = f"fc:{self._calls}"
            self._calls += 1
            asm.tool_begin(key, name, get(call, "id"))
            args = get(call, "args")
            if args is not None:
                asm.tool_args(key, json.dumps(args))
            if not get(call, "will_continue"):
                asm.tool_end(key)
                return
            streaming = self._streaming = _StreamedCall(key)
        assert streaming is not None
        for partial in get(call, "partial_args") or []:
            asm.tool_args(streaming.key, streaming.render(partial))
        if not get(call, "will_continue") and not name:
            self._end_call(asm)

    def _end_call(self, asm: Assembler) -> None:
        streaming, self._streaming = self._streaming, None
        if streaming is not None:
            asm.tool_args(streaming.key, streaming.close())
            asm.tool_end(streaming.key)


def _api_error(asm: Assembler, message: str) -> ModelStreamError:
    asm.stats.error = f"api_error: {message}"
    return ModelStreamError("api_error", message, asm.stats)


def generate_content_stream(stream: Any, **options: Any) -> ModelSource:
    """Code from a sync ``client.models.generate_content_stream(...)``.

    Options as for :func:`eager_rt.sources.openai.chat_completions`.
    """
    return ModelSource(
        stream, GenerateContentReader(), provider="google", api="gemini", **options
    )


def agenerate_content_stream(stream: Any, **options: Any) -> AsyncModelSource:
    """Async twin: ``await client.aio.models.generate_content_stream(...)``."""
    return AsyncModelSource(
        stream, GenerateContentReader(), provider="google", api="gemini", **options
    )
