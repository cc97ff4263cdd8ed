"""Provider adapters end to end: the unmodified SDKs, a fake server, the runtime, a local session.

Every client runs with ``_strict_response_validation=True``, so each event the
fake server sends must also parse as the SDK's own typed model: the fake cannot
drift from the real wire format without these tests failing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest

from eager_rt.executor import Session
from eager_rt.result import RunResult
from eager_rt.runtime import arun_stream, run_stream
from eager_rt.sources.anthropic import amessages, messages
from eager_rt.sources.boundary import is_boundary
from eager_rt.sources.llm import (
    Assembler,
    AsyncModelSource,
    ModelSource,
    ModelStreamError,
    StreamStats,
    model_source,
)
from eager_rt.sources.openai import achat_completions, aresponses, chat_completions, responses
from eager_rt.sources.tool_json import MalformedJSON
from eager_rt.sync import SyncSession
from tests.fake_llm import FakeLLM, Faults, Reply, pieces, reply_for, tool_fragments

APIS = ["chat", "responses", "messages"]
FORMS = ["fences", "tool"]
SYNC_ADAPTERS: dict[str, Callable[..., ModelSource]] = {
    "chat": chat_completions, "responses": responses, "messages": messages,
}
ASYNC_ADAPTERS: dict[str, Callable[..., AsyncModelSource]] = {
    "chat": achat_completions, "responses": aresponses, "messages": amessages,
}
CLIENT_TIMEOUT = 30.0


@contextlib.contextmanager
def sync_stream(api: str, llm: FakeLLM, timeout: float = CLIENT_TIMEOUT) -> Iterator[Any]:
    messages_ = [{"role": "user", "content": "compute"}]
    if api == "messages":
        client: Any = anthropic.Anthropic(
            base_url=llm.url, api_key="test", max_retries=0, timeout=timeout,
            _strict_response_validation=True,
        )
        make = lambda: client.messages.create(  # noqa: E731
            model="fake", max_tokens=1024, messages=messages_, stream=True)
    else:
        client = openai.OpenAI(
            base_url=llm.openai_url, api_key="test", max_retries=0, timeout=timeout,
            _strict_response_validation=True,
        )
        if api == "chat":
            make = lambda: client.chat.completions.create(  # noqa: E731
                model="fake", messages=messages_, stream=True,
                stream_options={"include_usage": True})
        else:
            make = lambda: client.responses.create(  # noqa: E731
                model="fake", input="compute", stream=True)
    try:
        yield make
    finally:
        client.close()


@contextlib.asynccontextmanager
async def async_stream(api: str, llm: FakeLLM, timeout: float = CLIENT_TIMEOUT
                       ) -> AsyncIterator[Any]:
    messages_ = [{"role": "user", "content": "compute"}]
    if api == "messages":
        client: Any = anthropic.AsyncAnthropic(
            base_url=llm.url, api_key="test", max_retries=0, timeout=timeout,
            _strict_response_validation=True,
        )
        make = lambda: client.messages.create(  # noqa: E731
            model="fake", max_tokens=1024, messages=messages_, stream=True)
    else:
        client = openai.AsyncOpenAI(
            base_url=llm.openai_url, api_key="test", max_retries=0, timeout=timeout,
            _strict_response_validation=True,
        )
        if api == "chat":
            make = lambda: client.chat.completions.create(  # noqa: E731
                model="fake", messages=messages_, stream=True)
        else:
            make = lambda: client.responses.create(  # noqa: E731
                model="fake", input="compute", stream=True)
    try:
        yield make
    finally:
        await client.close()


def consumed_events(api: str, sent: int, reply: Reply) -> int:
    """Events the SDK hands over out of those the server sent."""
    if api == "chat":
        return sent - 1  # data: [DONE] ends the stream inside the SDK
    if api == "messages":
        return sent - (1 if reply.text else 0)  # the SDK drops ping events
    return sent


CODE = "import math\nvalues = [1, 2, 3]\nprint(sum(values))\nprint(math.factorial(5))\n"


# -- code runs ---------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("api", APIS)
def test_sync_stream_runs_its_code(api: str, form: str, sync_session: SyncSession) -> None:
    reply = reply_for(form, CODE)
    with FakeLLM(reply) as llm, sync_stream(api, llm) as make:
        t0 = time.perf_counter()
        source = SYNC_ADAPTERS[api](make(), started=t0)
        result = run_stream(source, sync_session, timeout=60)
        log = llm.wait_done(0)
    assert result.status == "ok", result.error
    assert result.stdout == "6\n120\n"
    assert result.code == CODE
    stats = source.stats
    assert stats.complete and not stats.closed_early and stats.error is None
    assert stats.code == result.code
    assert stats.events == consumed_events(api, log.events_sent, reply)
    assert stats.ttft_s is not None  # measured; its size is a benchmark figure, not a test
    assert result.source_info["provider"] == ("anthropic" if api == "messages" else "openai")
    assert result.source_info["model"] == "fake-model-1"
    assert log.finished and not log.client_closed and log.events_unsent == 0
    if form == "tool":
        assert [c.name for c in stats.tool_calls] == ["python"]
        assert stats.tool_calls[0].runs and stats.tool_calls[0].call_id
    else:
        assert "I will compute it." in stats.prose and "That is the answer." in stats.prose
        assert stats.text == "".join(reply.text)


@pytest.mark.anyio
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("api", APIS)
async def test_async_stream_runs_its_code(api: str, form: str, local_session: Session) -> None:
    reply = reply_for(form, CODE)
    with FakeLLM(reply) as llm:
        async with async_stream(api, llm) as make:
            source = ASYNC_ADAPTERS[api](await make())
            result = await arun_stream(source, local_session)
        log = llm.wait_done(0)
    assert result.status == "ok", result.error
    assert result.stdout == "6\n120\n"
    assert source.stats.complete and not source.stats.closed_early
    assert source.stats.events == consumed_events(api, log.events_sent, reply)
    assert log.finished and not log.client_closed


@pytest.mark.parametrize("api", APIS)
def test_detected_api_matches_the_explicit_adapter(api: str, sync_session: SyncSession) -> None:
    with FakeLLM(reply_for("fences", CODE)) as llm, sync_stream(api, llm) as make:
        source = model_source(make())
        result = run_stream(source, sync_session, timeout=60)
    assert result.stdout == "6\n120\n"
    assert source.stats.api == {"chat": "chat", "responses": "responses",
                                "messages": "messages"}[api]


def test_anthropic_stream_helper_is_accepted(sync_session: SyncSession) -> None:
    with FakeLLM(reply_for("tool", CODE)) as llm:
        client = anthropic.Anthropic(base_url=llm.url, api_key="test", max_retries=0,
                                     timeout=CLIENT_TIMEOUT)
        try:
            with client.messages.stream(model="fake", max_tokens=100,
                                        messages=[{"role": "user", "content": "go"}]) as stream:
                result = run_stream(messages(stream), sync_session, timeout=60)
        finally:
            client.close()
    assert result.stdout == "6\n120\n"


def test_openai_stream_helper_manager_is_entered_and_closed(sync_session: SyncSession) -> None:
    with FakeLLM(reply_for("fences", CODE)) as llm:
        client = openai.OpenAI(base_url=llm.openai_url, api_key="test", max_retries=0,
                               timeout=CLIENT_TIMEOUT)
        try:
            manager = client.chat.completions.stream(
                model="fake", messages=[{"role": "user", "content": "go"}])
            source = chat_completions(manager)  # not entered: the source enters and exits it
            result = run_stream(source, sync_session, timeout=60)
        finally:
            client.close()
    assert result.stdout == "6\n120\n"
    assert source.stats.complete


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("api", APIS)
def test_the_end_of_the_code_is_marked(api: str, form: str) -> None:
    with FakeLLM(reply_for(form, CODE)) as llm, sync_stream(api, llm) as make:
        got = list(SYNC_ADAPTERS[api](make()))
    assert "".join(got) == CODE
    assert [is_boundary(p) for p in got] == [False] * (len(got) - 1) + [True]


def _marks(pieces: list[str]) -> list[str]:
    return ["|" if is_boundary(p) else p for p in pieces]


def test_assembler_marks_each_code_unit_as_soon_as_it_ends() -> None:
    asm = Assembler(StreamStats(provider="test", api="test", started=0.0))
    asm.text("Intro\n```python\nfor i in x:\n    y\n```")
    assert _marks(asm.take()) == ["for i in x:\n    y\n"]  # '```' may still grow
    asm.text("\nNow a tool call.\n")
    assert _marks(asm.take()) == ["|"]
    asm.tool_begin(0, "python", "c0")
    asm.tool_args(0, '{"code": "if a:\\n    b\\n')
    assert _marks(asm.take()) == ["if a:\n    b\n"]
    asm.tool_args(0, '", "why": "long prose')
    assert _marks(asm.take()) == ["|"]  # at the closing quote, not at the end of the call
    asm.tool_args(0, '"}')
    asm.tool_end(0)
    assert asm.take() == []
    asm.tool_begin(1, "python", "c1", raw=True)
    asm.tool_args(1, "for j in z:\n    w")
    assert _marks(asm.take()) == ["for j in z:\n    w"]
    asm.tool_end(1)  # a free-form call ends with its input
    assert _marks(asm.take()) == ["|"]
    asm.tool_begin(2, "search", "c2")
    asm.tool_args(2, '{"query": "x"}')
    asm.tool_end(2)  # no code, nothing to mark
    asm.text("```bash\nls\n```\n")
    asm.finish()
    assert asm.take() == []


def test_two_blocks_and_two_tool_calls_run_in_order(sync_session: SyncSession) -> None:
    reply = Reply(
        text=["First:\n```python\n", "a = 2\n", "```\nthen\n```python\n", "print(a * 10)\n```\n"],
        tools=[("python", tool_fragments("b = a + 1")), ("python", tool_fragments("print(b)"))],
    )
    with FakeLLM(reply) as llm, sync_stream("chat", llm) as make:
        result = run_stream(chat_completions(make()), sync_session, timeout=60)
    assert result.stdout == "20\n3\n"
    assert result.code == "a = 2\nprint(a * 10)\nb = a + 1\nprint(b)"


def test_tool_filter_skips_other_tools(sync_session: SyncSession) -> None:
    reply = Reply(tools=[("search", tool_fragments("print('not me')")),
                         ("python", tool_fragments("print('me')"))])
    with FakeLLM(reply) as llm, sync_stream("responses", llm) as make:
        source = responses(make(), tools={"python"}, fences=False)
        result = run_stream(source, sync_session, timeout=60)
    assert result.stdout == "me\n"
    assert [(c.name, c.runs) for c in source.stats.tool_calls] == [("search", False),
                                                                  ("python", True)]


def test_responses_custom_tool_input_is_the_code(sync_session: SyncSession) -> None:
    code = 'label = "a \\"quoted\\" word"\nprint(label)\n'
    reply = Reply(custom_tools=[("python", pieces(code, 4))])
    with FakeLLM(reply) as llm, sync_stream("responses", llm) as make:
        source = responses(make())
        result = run_stream(source, sync_session, timeout=60)
    assert result.stdout == 'a "quoted" word\n'  # no JSON escaping on the way
    (call,) = source.stats.tool_calls
    assert call.raw and call.runs and call.call_id == "call_custom0"


def test_refusal_is_prose_not_code(sync_session: SyncSession) -> None:
    with FakeLLM(Reply(text=["```python\n", "print(1)\n", "```\n"])) as llm, \
            sync_stream("chat", llm) as make:
        stream = make()
        source = chat_completions(_with_refusal(stream, "I can't help with that."))
        result = run_stream(source, sync_session, timeout=60)
    assert result.stdout == "1\n"
    assert source.stats.prose.endswith("I can't help with that.")
    assert "help" not in source.stats.code


def _with_refusal(stream: Any, refusal: str) -> Iterator[Any]:
    """The SDK's own events, then one more chunk carrying a refusal delta."""
    last = None
    for event in stream:
        last = event
        yield event
    assert last is not None
    yield {"choices": [{"index": 0, "delta": {"refusal": refusal}, "finish_reason": "stop"}]}


# -- early interruption --------------------------------------------------------------------

FAILING = "x = 41\nprint(x + 1)\nraise ValueError('bad input')\n" + "y = x * 2\n" * 60
# the server stops after these many output events until the client goes away; the
# failing statement lies well before it in every form
HOLD = Faults(hold_after=14, hold_timeout=1.0, interval=0.01)


def _check_interrupted(result: Any, source: Any, log: Any) -> None:
    assert result.status == "error"
    assert result.error.ename == "ValueError"
    assert result.stdout == "42\n"
    assert result.stream_closed_early
    assert source.stats.closed_early
    assert log.client_closed, "the server never saw the stream closed"
    assert not log.finished and log.events_unsent > 0
    assert source.stats.events < log.events_total


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("api", APIS)
def test_sync_early_interruption_closes_the_stream(
    api: str, form: str, sync_session: SyncSession
) -> None:
    with FakeLLM(reply_for(form, FAILING, model="m"), HOLD) as llm, sync_stream(api, llm) as make:
        source = SYNC_ADAPTERS[api](make())
        result = run_stream(source, sync_session, timeout=60)
        log = llm.wait_done(0)
    _check_interrupted(result, source, log)


@pytest.mark.anyio
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("api", APIS)
async def test_async_early_interruption_closes_the_stream(
    api: str, form: str, local_session: Session
) -> None:
    faults = Faults(hold_after=14, hold_timeout=30.0)  # async closes while the server holds
    with FakeLLM(reply_for(form, FAILING), faults) as llm:
        async with async_stream(api, llm) as make:
            source = ASYNC_ADAPTERS[api](await make())
            result = await arun_stream(source, local_session)
        log = llm.wait_done(0)
    _check_interrupted(result, source, log)
    assert log.events_sent <= 14 + 4  # nothing was sent after the hold


# -- faults --------------------------------------------------------------------------------

CUT = ["a = 1\n", "b = 2", "2\n", "print(a, b)\n"]


class _Failure:
    """The stream error a run ended with, shaped like ``pytest.raises``' info."""

    def __init__(self, value: ModelStreamError) -> None:
        self.value = value


def _stream_failure(result: RunResult) -> _Failure:
    """A broken stream ends the run with a ``source_error`` result, never an exception."""
    assert result.status == "source_error", result.status
    assert result.error is not None and result.error.kind == "source"
    assert isinstance(result.error.cause, ModelStreamError)
    return _Failure(result.error.cause)


def _defined(session: SyncSession, name: str) -> bool:
    out = session.execute(f"print({name!r} in globals())", timeout=30)
    return out.stdout.strip() == "True"


@pytest.mark.parametrize("api", APIS)
def test_dropped_connection_is_a_connection_error(api: str, sync_session: SyncSession) -> None:
    reply = Reply(text=["```python\n", *CUT, "```\n"])
    with FakeLLM(reply, Faults(drop_after=3)) as llm, sync_stream(api, llm) as make:
        source = SYNC_ADAPTERS[api](make())
        info = _stream_failure(run_stream(source, sync_session, timeout=60))
    assert info.value.kind == "connection"
    assert source.stats.error is not None and not source.stats.complete
    assert _defined(sync_session, "a")  # complete before the cut: it ran
    assert not _defined(sync_session, "b")  # "b = 2" was cut: it must never run


@pytest.mark.parametrize("api", APIS)
def test_clean_end_without_final_event_is_truncated(api: str, sync_session: SyncSession) -> None:
    reply = Reply(text=["```python\n", *CUT, "```\n"])
    with FakeLLM(reply, Faults(truncate_after=3)) as llm, sync_stream(api, llm) as make:
        source = SYNC_ADAPTERS[api](make())
        info = _stream_failure(run_stream(source, sync_session, timeout=60))
    assert info.value.kind == "truncated"
    assert not _defined(sync_session, "b")


@pytest.mark.parametrize("api", APIS)
def test_error_event_is_an_api_error(api: str, sync_session: SyncSession) -> None:
    faults = Faults(error_after=2, error_message="Overloaded, try later")
    with FakeLLM(reply_for("fences", CODE), faults) as llm, sync_stream(api, llm) as make:
        source = SYNC_ADAPTERS[api](make())
        info = _stream_failure(run_stream(source, sync_session, timeout=60))
    assert info.value.kind == "api_error"
    assert "Overloaded, try later" in str(info.value)
    assert info.value.stats is source.stats


@pytest.mark.anyio
@pytest.mark.parametrize("api", APIS)
async def test_async_dropped_connection(api: str, local_session: Session) -> None:
    reply = Reply(text=["```python\n", *CUT, "```\n"])
    with FakeLLM(reply, Faults(drop_after=3)) as llm:
        async with async_stream(api, llm) as make:
            source = ASYNC_ADAPTERS[api](await make())
            info = _stream_failure(await arun_stream(source, local_session))
    assert info.value.kind == "connection"


@pytest.mark.parametrize("api", APIS)
def test_slow_first_token_still_runs_and_is_measured(
    api: str, sync_session: SyncSession
) -> None:
    delay = 0.4
    with FakeLLM(reply_for("fences", CODE), Faults(first_token_delay=delay)) as llm, \
            sync_stream(api, llm) as make:
        t0 = time.perf_counter()
        source = SYNC_ADAPTERS[api](make(), started=t0)
        result = run_stream(source, sync_session, timeout=60)
    assert result.status == "ok"
    assert result.code == CODE
    info = source.stats.to_dict()
    # both moments are recorded: the stream's first event, and the first token after the hold
    assert info["first_event_s"] is not None
    assert info["ttft_s"] is not None
    assert result.source_info["ttft_s"] == info["ttft_s"]


@pytest.mark.parametrize("api", APIS)
def test_read_timeout_is_a_timeout_error(api: str, sync_session: SyncSession) -> None:
    with FakeLLM(reply_for("fences", CODE), Faults(first_token_delay=5.0)) as llm, \
            sync_stream(api, llm, timeout=0.3) as make:
        source = SYNC_ADAPTERS[api](make())
        info = _stream_failure(run_stream(source, sync_session, timeout=60))
    assert info.value.kind == "timeout"


@pytest.mark.parametrize("api", APIS)
def test_output_limit_inside_code_is_reported(api: str, sync_session: SyncSession) -> None:
    reply = Reply(text=["```python\n", "a = 1\n", "b = "], finish="length")
    with FakeLLM(reply) as llm, sync_stream(api, llm) as make:
        source = SYNC_ADAPTERS[api](make())
        info = _stream_failure(run_stream(source, sync_session, timeout=60))
    assert info.value.kind == "length"


@pytest.mark.parametrize("api", APIS)
def test_output_limit_in_prose_after_the_code_is_fine(api: str, sync_session: SyncSession
                                                      ) -> None:
    reply = Reply(text=["```python\n", "print(7)\n", "```\nAnd now a long expla"],
                  finish="length")
    with FakeLLM(reply) as llm, sync_stream(api, llm) as make:
        source = SYNC_ADAPTERS[api](make())
        result = run_stream(source, sync_session, timeout=60)
    assert result.stdout == "7\n"
    assert source.stats.finish_reason in ("length", "max_output_tokens", "max_tokens")


@pytest.mark.parametrize("api", APIS)
def test_malformed_tool_arguments_fail_precisely(api: str, sync_session: SyncSession) -> None:
    reply = Reply(tools=[("python", ['{"code": "print(1)\\n', 'x = 1"', " 2}"])])
    with FakeLLM(reply) as llm, sync_stream(api, llm) as make:
        source = SYNC_ADAPTERS[api](make())
        result = run_stream(source, sync_session, timeout=60)
    assert result.status == "source_error"
    assert result.error is not None
    error = result.error.cause
    assert isinstance(error, MalformedJSON)
    assert error.pos == len('{"code": "print(1)\\nx = 1" ')
    assert source.stats.error is not None
    assert result.stdout == "1\n"  # the complete statement before the bad JSON ran
