"""Token sources over real model streams: SDK events in, code pieces out.

This is the shared half of the provider adapters (:mod:`eager_rt.sources.openai`,
:mod:`eager_rt.sources.anthropic`). A provider module only knows how to read
its SDK's events; it reports model text, tool-call starts, argument fragments
and ends to an :class:`Assembler`, which turns them into runnable code (through
:class:`~eager_rt.sources.fences.FenceExtractor` for text and
:class:`~eager_rt.sources.tool_json.StreamingArgumentDecoder` for tool calls)
and keeps the :class:`StreamStats`.

:class:`ModelSource` (sync) and :class:`AsyncModelSource` are what the runtime
iterates. Each is a generator over the SDK stream with the stream's ``close`` in
its ``finally``: when the runtime stops early and closes the generator, the HTTP
response is closed at once, so the provider stops generating and billing.
They also answer ``info()``, which the runtime copies into
``RunResult.source_info``.

A stream that fails (connection dropped, an error event, a read timeout, or an
end without the provider's final event) raises :class:`ModelStreamError` and
never lets the half-received last statement run: the runtime only runs a
pending statement when the source ends cleanly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from eager_rt import clock
from eager_rt.sources._close import aclose_quietly, close_quietly
from eager_rt.sources.boundary import BOUNDARY
from eager_rt.sources.fences import PYTHON_LANGUAGES, FenceExtractor, Segment
from eager_rt.sources.tool_json import MissingArgument, StreamingArgumentDecoder

__all__ = [
    "Assembler",
    "AsyncModelSource",
    "AutoReader",
    "EventReader",
    "ModelSource",
    "ModelStreamError",
    "StreamErrorKind",
    "StreamStats",
    "ToolCallRecord",
    "get",
    "model_source",
]

#: ``connection``: the transport failed mid-stream; ``timeout``: a read timed out;
#: ``api_error``: the provider sent an error event; ``truncated``: the stream ended
#: without the provider's final event; ``length``: the output limit cut the code
StreamErrorKind = Literal["connection", "timeout", "api_error", "truncated", "length"]


class ModelStreamError(RuntimeError):
    """The model stream failed; ``stats`` says how far it got."""

    def __init__(self, kind: StreamErrorKind, message: str, stats: StreamStats | None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind: StreamErrorKind = kind
        self.message = message
        self.stats = stats


def get(obj: Any, name: str, default: Any = None) -> Any:
    """Field ``name`` of an SDK model or of a plain dict (streams replayed from JSON)."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


@dataclass(slots=True)
class ToolCallRecord:
    key: str  #: the stream's own handle for the call (index or item id)
    name: str | None
    call_id: str | None
    arguments: str = ""  #: the raw JSON text received (the code itself for a raw call)
    runs: bool = False  #: its ``argument`` was decoded and run
    raw: bool = False  #: a free-form call (Responses custom tool): its input is the code, no JSON


@dataclass(slots=True)
class StreamStats:
    """What one model stream did; times are :func:`eager_rt.clock.now` readings."""

    provider: str
    api: str
    started: float
    model: str | None = None
    response_id: str | None = None
    first_event_at: float | None = None
    first_token_at: float | None = None  #: first text or tool-argument delta
    first_code_at: float | None = None
    last_event_at: float | None = None  #: the last event consumed: the response's end
    ended_at: float | None = None
    events: int = 0  #: events consumed from the SDK stream
    deltas: int = 0  #: events that carried text or argument fragments
    text_parts: list[str] = field(default_factory=list)
    prose_parts: list[str] = field(default_factory=list)
    code_parts: list[str] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None  #: as the provider reported it (final or running count)
    complete: bool = False  #: the provider's final event arrived
    closed_early: bool = False  #: the consumer closed the stream before its end
    error: str | None = None
    fence_unclosed: bool = False

    @property
    def text(self) -> str:
        """All model text (prose and fenced code), as received."""
        return "".join(self.text_parts)

    @property
    def prose(self) -> str:
        """Model text that is not run: prose, fence lines, blocks in other languages."""
        return "".join(self.prose_parts)

    @property
    def code(self) -> str:
        """The code handed to the runtime."""
        return "".join(self.code_parts)

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started

    @property
    def response_s(self) -> float | None:
        """The whole response's time, prose after the last code included (last event received)."""
        return None if self.last_event_at is None else self.last_event_at - self.started

    def to_dict(self) -> dict[str, Any]:
        def rel(t: float | None) -> float | None:
            return None if t is None else t - self.started

        return {
            "provider": self.provider,
            "api": self.api,
            "model": self.model,
            "response_id": self.response_id,
            "ttft_s": self.ttft_s,
            "first_event_s": rel(self.first_event_at),
            "first_code_s": rel(self.first_code_at),
            "duration_s": self.duration_s,
            "response_s": self.response_s,
            "events": self.events,
            "deltas": self.deltas,
            "finish_reason": self.finish_reason,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "complete": self.complete,
            "closed_early": self.closed_early,
            "error": self.error,
            "fence_unclosed": self.fence_unclosed,
            "tool_calls": [
                {"name": c.name, "id": c.call_id, "arguments": c.arguments, "runs": c.runs,
                 "raw": c.raw}
                for c in self.tool_calls
            ],
            "text": self.text,
        }


@dataclass(slots=True)
class _Call:
    record: ToolCallRecord
    decoder: StreamingArgumentDecoder | None
    runs: bool = False
    ended: bool = False
    unit_over: bool = False  #: BOUNDARY was sent for its code


class Assembler:
    """Turns model text and tool-call fragments into one ordered stream of code.

    Code from different blocks or calls is joined with a newline when the
    previous part did not end with one, so two calls ``print(1)`` and
    ``print(2)`` run as two statements.  Where a code unit is known to end
    (a runnable block's closing fence, a tool call's closing quote or its
    end) the pieces carry :data:`~eager_rt.sources.boundary.BOUNDARY`, so the
    runtime runs the unit's last statement without waiting for more.

    ``tools``: names of the tool calls whose ``argument`` is code. ``None`` runs
    the ``argument`` of any call that has one (calls without it are recorded
    and skipped); an explicit set makes a listed call without it an error.
    """

    def __init__(
        self,
        stats: StreamStats,
        *,
        fences: bool = True,
        languages: Collection[str] = PYTHON_LANGUAGES,
        tools: Collection[str] | None = None,
        argument: str = "code",
        strict_json: bool = True,
        on_segment: Callable[[Segment], None] | None = None,
    ) -> None:
        self.stats = stats
        self._fences = FenceExtractor(languages) if fences else None
        self._tools = None if tools is None else frozenset(tools)
        self._argument = argument
        self._strict = strict_json
        self._on_segment = on_segment
        self._calls: dict[str, _Call] = {}
        self._pending: list[str] = []
        self._last_char = "\n"
        self._last_source: object = None
        self._code_len = 0  # characters of code handed out
        self._unit_start = 0  # where the code unit still open starts in it

    # -- what readers report -------------------------------------------------------

    def text(self, text: str) -> None:
        if not text:
            return
        self._delta()
        self.stats.text_parts.append(text)
        if self._fences is None:
            self._segment(Segment("prose", text))
            return
        for seg in self._fences.feed(text):
            self._segment(seg)

    def prose(self, text: str) -> None:
        """Model text that is never code (a refusal): kept and shown, not run."""
        if not text:
            return
        self._delta()
        self.stats.text_parts.append(text)
        self._segment(Segment("prose", text))

    def tool_begin(
        self, key: object, name: str | None, call_id: str | None, *, raw: bool = False
    ) -> None:
        """A tool call starts; ``raw`` when its input is the code itself rather than JSON."""
        k = str(key)
        if k in self._calls:
            call = self._calls[k]
            call.record.name = call.record.name or name
            call.record.call_id = call.record.call_id or call_id
            return
        self._new_call(k, name, call_id, raw=raw)

    def tool_args(self, key: object, fragment: str) -> None:
        if not fragment:
            return
        self._delta()
        k = str(key)
        call = self._calls.get(k) or self._new_call(k, None, None)
        call.record.arguments += fragment
        if call.ended:
            return
        if call.record.raw:
            code = fragment if call.runs else ""
        elif call.decoder is not None:
            code = call.decoder.feed(fragment)
        else:
            return
        if code:
            call.record.runs = True
            self._code(code, ("tool", k))
            if self._on_segment is not None:
                self._on_segment(Segment("code", code, None))
        if call.decoder is not None and call.decoder.value_done:
            self._unit_over(call)  # the closing quote: the rest of the JSON holds no code

    def tool_end(self, key: object) -> None:
        call = self._calls.get(str(key))
        if call is None or call.ended:
            return
        call.ended = True
        self._unit_over(call)
        if call.decoder is None:
            return
        try:
            call.decoder.close()
        except MissingArgument:
            if self._tools is not None:
                raise

    def finish(self) -> None:
        """The stream ended cleanly: flush the fences, end every open call."""
        if self._fences is not None:
            for seg in self._fences.close():
                self._segment(seg)
            self.stats.fence_unclosed = self._fences.unclosed
        for key in list(self._calls):
            self.tool_end(key)

    @property
    def inside_code(self) -> bool:
        """A fenced block or a code-carrying tool call is open (the code may be cut)."""
        if self._fences is not None and self._fences.in_block:
            return True
        return any(
            c.runs and not c.ended and (c.record.raw or (c.decoder is not None
                                                         and not c.decoder.complete))
            for c in self._calls.values()
        )

    def take(self) -> list[str]:
        out, self._pending = self._pending, []
        return out

    def open_unit_code(self) -> str:
        """The code of the unit not yet known to be over (from the last boundary on)."""
        return self.stats.code[self._unit_start :]

    # -- internals -----------------------------------------------------------------

    def _delta(self) -> None:
        self.stats.deltas += 1
        if self.stats.first_token_at is None:
            self.stats.first_token_at = clock.now()

    def _new_call(
        self, key: str, name: str | None, call_id: str | None, *, raw: bool = False
    ) -> _Call:
        runs = self._tools is None or (name is not None and name in self._tools)
        decoder = None
        if runs and not raw:
            decoder = StreamingArgumentDecoder(self._argument, strict=self._strict)
        record = ToolCallRecord(key=key, name=name, call_id=call_id, raw=raw)
        self.stats.tool_calls.append(record)
        call = _Call(record, decoder, runs)
        self._calls[key] = call
        return call

    def _segment(self, seg: Segment) -> None:
        if self._on_segment is not None:
            self._on_segment(seg)
        if seg.kind == "code":
            self._code(seg.text, ("fence", seg.block))
        else:
            self.stats.prose_parts.append(seg.text)
            if seg.closes:
                self._boundary()

    def _unit_over(self, call: _Call) -> None:
        """A tool call's code is complete: say so once, if it ran any."""
        if call.record.runs and not call.unit_over:
            call.unit_over = True
            self._boundary()

    def _boundary(self) -> None:
        self._pending.append(BOUNDARY)
        self._unit_start = self._code_len

    def _code(self, code: str, source: object) -> None:
        if source != self._last_source and self._last_char != "\n":
            self._pending.append("\n")
            self.stats.code_parts.append("\n")
            self._code_len += 1
        self._last_source = source
        self._last_char = code[-1]
        self._pending.append(code)
        self.stats.code_parts.append(code)
        self._code_len += len(code)
        if self.stats.first_code_at is None:
            self.stats.first_code_at = clock.now()


class EventReader(Protocol):
    """Reads one SDK event and reports what it carries to the assembler.

    Raises :class:`ModelStreamError` for an error event; sets
    ``stats.complete`` on the provider's final event.
    """

    def read(self, event: Any, asm: Assembler) -> None: ...


_TIMEOUT_NAMES = frozenset({"APITimeoutError", "TimeoutException", "ReadTimeout", "TimeoutError"})
_CONNECTION_NAMES = frozenset(
    {"APIConnectionError", "RemoteProtocolError", "ReadError", "NetworkError", "TransportError",
     "ConnectionError", "ProtocolError", "IncompleteRead"}
)


def classify(exc: BaseException) -> StreamErrorKind:
    """Which kind of stream failure an SDK or transport exception is.

    A wrapper that carries the failure it stands for (LiteLLM's
    ``MidStreamFallbackError.original_exception``) is classified by that failure.
    """
    inner = getattr(exc, "original_exception", None)
    if isinstance(inner, BaseException) and inner is not exc:
        return classify(inner)
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _TIMEOUT_NAMES:
        return "timeout"
    if names & _CONNECTION_NAMES:
        return "connection"
    return "api_error"


_ANTHROPIC_EVENTS = frozenset(
    {"message_start", "content_block_start", "content_block_delta", "content_block_stop",
     "message_delta", "message_stop", "ping"}
)


class AutoReader:
    """Tells the API from the first event it recognises, then reads like that API's reader.

    For callers that hold "some model stream" (the agent helper, the CLI): a
    ``chat.completion.chunk`` means Chat Completions (from LiteLLM when its
    class is LiteLLM's), a ``response.*`` event the Responses API, a
    ``message_start`` the Anthropic Messages API, a chunk with ``candidates``
    Google's ``generate_content_stream``.
    """

    def __init__(self) -> None:
        self._reader: EventReader | None = None

    def read(self, event: Any, asm: Assembler) -> None:
        if self._reader is None:
            self._reader = self._detect(event, asm.stats)
            if self._reader is None:
                return
        self._reader.read(event, asm)

    @staticmethod
    def _detect(event: Any, stats: StreamStats) -> EventReader | None:
        from eager_rt.sources.anthropic import MessagesReader
        from eager_rt.sources.google import GenerateContentReader
        from eager_rt.sources.openai import ChatCompletionsReader, ResponsesReader

        kind = get(event, "type")
        if get(event, "choices") is not None or kind == "chunk":
            litellm = type(event).__module__.split(".", 1)[0] == "litellm"
            stats.provider, stats.api = ("litellm" if litellm else "openai"), "chat"
            return ChatCompletionsReader()
        if get(event, "candidates") is not None or get(event, "prompt_feedback") is not None:
            stats.provider, stats.api = "google", "gemini"
            return GenerateContentReader()
        if isinstance(kind, str) and (
            kind.startswith("response.")
            or (kind == "error" and get(event, "sequence_number") is not None)
        ):
            stats.provider, stats.api = "openai", "responses"
            return ResponsesReader()
        if kind in _ANTHROPIC_EVENTS or kind == "error":
            stats.provider, stats.api = "anthropic", "messages"
            return MessagesReader()
        return None


_LENGTH_REASONS = frozenset({"length", "max_tokens", "max_output_tokens", "MAX_TOKENS"})


def _ends_complete(code: str) -> bool:
    """Every statement of ``code`` is complete: the chunker holds nothing but trivia.

    The chunker is the judge, as in the runtime: a statement that could still
    grow (an open block, a line without its newline) stays pending there and is
    never run when the stream fails.
    """
    from eager_rt.chunker import Chunker

    chunker = Chunker(top_level_await=True)
    chunker.feed(code)
    return all(
        not line.strip() or line.lstrip().startswith("#")
        for line in chunker.pending.splitlines()
    )


class _SourceBase:
    provider = "?"
    api = "?"

    def __init__(
        self,
        stream: Any,
        reader: EventReader,
        *,
        started: float | None = None,
        fences: bool = True,
        languages: Collection[str] = PYTHON_LANGUAGES,
        tools: Collection[str] | None = None,
        argument: str = "code",
        strict_json: bool = True,
        on_segment: Callable[[Segment], None] | None = None,
        provider: str | None = None,
        api: str | None = None,
    ) -> None:
        self._stream = stream
        self._reader = reader
        self.stats = StreamStats(
            provider=provider or self.provider,
            api=api or self.api,
            started=clock.now() if started is None else started,
        )
        self._asm = Assembler(
            self.stats,
            fences=fences,
            languages=languages,
            tools=tools,
            argument=argument,
            strict_json=strict_json,
            on_segment=on_segment,
        )
        self._iterated = False

    @property
    def started_at(self) -> float:
        """When the request started: the runtime measures the run from here."""
        return self.stats.started

    def info(self) -> dict[str, Any]:
        """The stream's statistics, for ``RunResult.source_info``."""
        return self.stats.to_dict()

    def _claim(self) -> None:
        if self._iterated:
            raise RuntimeError("a model stream can be iterated only once")
        self._iterated = True

    def _event(self, event: Any) -> list[str]:
        stats = self.stats
        stats.events += 1
        stats.last_event_at = clock.now()
        if stats.first_event_at is None:
            stats.first_event_at = stats.last_event_at
        self._reader.read(event, self._asm)
        return self._asm.take()

    def _end(self) -> list[str]:
        """The SDK stream ran out: settle it, or say why it is not a clean end."""
        stats = self.stats
        if not stats.complete:
            raise self._error("truncated", "the stream ended before the provider's final event")
        if stats.finish_reason in _LENGTH_REASONS and self._asm.inside_code:
            limit = f"the output limit ({stats.finish_reason})"
            if _ends_complete(self._asm.open_unit_code()):
                raise self._error(
                    "length",
                    f"{limit} ended the response inside the code, after a complete statement: "
                    "every statement received ran, but the program may be unfinished",
                )
            raise self._error("length", f"{limit} cut the code; its last statement was not run")
        self._asm.finish()
        return self._asm.take()

    def _error(self, kind: StreamErrorKind, message: str) -> ModelStreamError:
        self.stats.error = f"{kind}: {message}"
        return ModelStreamError(kind, message, self.stats)

    def _wrap(self, exc: Exception) -> ModelStreamError:
        if isinstance(exc, ModelStreamError):
            return exc
        return self._error(classify(exc), f"{type(exc).__name__}: {exc}")


class ModelSource(_SourceBase):
    """Code pieces from a blocking SDK stream; iterate once (the runtime does)."""

    def __iter__(self) -> Iterator[str]:
        self._claim()
        stream = self._stream
        entered = None
        if not hasattr(stream, "__iter__") and hasattr(stream, "__enter__"):
            entered, stream = stream, stream.__enter__()  # an SDK stream manager
        it = iter(stream)
        try:
            while True:
                try:
                    event = next(it)
                except StopIteration:
                    break
                except Exception as exc:
                    raise self._wrap(exc) from exc
                yield from self._event(event)
            yield from self._end()
        except Exception as exc:
            if self.stats.error is None:
                self.stats.error = f"{type(exc).__name__}: {exc}"
            raise
        except BaseException:  # closed (GeneratorExit) or cancelled while waiting for an event
            self.stats.closed_early = True
            raise
        finally:
            self.stats.ended_at = clock.now()
            close_quietly(it)
            close_quietly(stream)
            if entered is not None:
                entered.__exit__(None, None, None)


class AsyncModelSource(_SourceBase):
    """Code pieces from an async SDK stream; iterate once (the runtime does)."""

    async def __aiter__(self) -> AsyncIterator[str]:
        self._claim()
        stream = self._stream
        entered = None
        if not hasattr(stream, "__aiter__") and hasattr(stream, "__aenter__"):
            entered, stream = stream, await stream.__aenter__()
        it = aiter(stream)
        try:
            while True:
                try:
                    event = await anext(it)
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    raise self._wrap(exc) from exc
                for piece in self._event(event):
                    yield piece
            for piece in self._end():
                yield piece
        except Exception as exc:
            if self.stats.error is None:
                self.stats.error = f"{type(exc).__name__}: {exc}"
            raise
        except BaseException:  # closed (GeneratorExit) or cancelled while waiting for an event
            self.stats.closed_early = True
            raise
        finally:
            self.stats.ended_at = clock.now()
            await aclose_quietly(it)
            await aclose_quietly(stream)
            if entered is not None:
                await entered.__aexit__(None, None, None)


def model_source(stream: Any, **options: Any) -> ModelSource | AsyncModelSource:
    """A token source over any supported SDK stream, sync or async; the API is detected.

    Options as for :func:`eager_rt.sources.openai.chat_completions`.
    """
    options.setdefault("provider", "auto")
    options.setdefault("api", "auto")
    if hasattr(stream, "__aiter__") or hasattr(stream, "__aenter__"):
        return AsyncModelSource(stream, AutoReader(), **options)
    return ModelSource(stream, AutoReader(), **options)
