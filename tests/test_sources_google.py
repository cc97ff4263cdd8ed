"""Google Gen AI streams end to end: the unmodified ``google-genai`` SDK, the fake Gemini route.

The SDK's ``http_options.base_url`` points at :class:`~tests.fake_llm.gemini.FakeGemini`,
which speaks ``streamGenerateContent?alt=sse`` for the Gemini API and for Vertex AI
(express mode, where function-call arguments can stream as ``partial_args``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from google import genai
from google.genai import types

from eager_rt.executor import Session
from eager_rt.result import RunResult
from eager_rt.runtime import arun_stream, run_stream
from eager_rt.sources.boundary import is_boundary
from eager_rt.sources.google import agenerate_content_stream, generate_content_stream
from eager_rt.sources.llm import ModelStreamError, model_source
from eager_rt.sync import SyncSession
from tests.fake_llm import FakeLLM, Faults, Reply, pieces, reply_for
from tests.fake_llm.gemini import FakeGemini

CODE = "import math\nvalues = [1, 2, 3]\nprint(sum(values))\nprint(math.factorial(5))\n"
FAILING = "x = 41\nprint(x + 1)\nraise ValueError('bad input')\n" + "y = x * 2\n" * 60
#: the Gemini API (whole function calls) and Vertex AI (streamed arguments)
ROUTES = ["gemini", "vertex"]
FORMS = ["fences", "tool"]


def config(route: str) -> types.GenerateContentConfig:
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="python",
        description="Run Python code in a persistent session.",
        parameters_json_schema={"type": "object", "properties": {"code": {"type": "string"}},
                                "required": ["code"]},
    )])
    calling = None
    if route == "vertex":
        calling = types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
            stream_function_call_arguments=True))
    return types.GenerateContentConfig(tools=[tool], tool_config=calling)


def client_for(route: str, llm: FakeLLM, timeout_s: float = 30.0) -> genai.Client:
    options = types.HttpOptions(base_url=llm.url, timeout=int(timeout_s * 1000))
    return genai.Client(api_key="test", vertexai=route == "vertex", http_options=options)


@contextlib.contextmanager
def sync_stream(route: str, llm: FakeLLM, timeout_s: float = 30.0
                ) -> Iterator[Callable[[], Any]]:
    client = client_for(route, llm, timeout_s)
    try:
        yield lambda: client.models.generate_content_stream(
            model="gemini-fake", contents="compute", config=config(route))
    finally:
        client.close()


@contextlib.asynccontextmanager
async def async_stream(route: str, llm: FakeLLM) -> AsyncIterator[Any]:
    client = client_for(route, llm)
    try:
        yield lambda: client.aio.models.generate_content_stream(
            model="gemini-fake", contents="compute", config=config(route))
    finally:
        await client.aio.aclose()
        client.close()


# -- code runs -----------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("route", ROUTES)
def test_sync_stream_runs_its_code(route: str, form: str, sync_session: SyncSession) -> None:
    reply = reply_for(form, CODE)
    with FakeGemini(reply) as llm, sync_stream(route, llm) as make:
        source = generate_content_stream(make())
        result = run_stream(source, sync_session, timeout=60)
        log = llm.wait_done(0)
    assert result.status == "ok", result.error
    assert result.stdout == "6\n120\n"
    assert result.code == CODE
    stats = source.stats
    assert stats.complete and stats.finish_reason == "STOP" and stats.error is None
    assert stats.events == log.events_sent
    assert stats.model == "fake-model-1" and stats.response_id == "resp-fake0001"
    # the final chunk's count, as the server computed it
    assert stats.output_tokens == len(reply.text) + sum(len(f) for _, f in reply.tools)
    assert result.source_info["provider"] == "google"
    assert log.finished and not log.client_closed
    if form == "tool":
        (call,) = stats.tool_calls
        assert call.name == "python" and call.call_id == "call_fake0" and call.runs
        assert call.arguments and '"code"' in call.arguments
    else:
        assert "That is the answer." in stats.prose


@pytest.mark.anyio
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("route", ROUTES)
async def test_async_stream_runs_its_code(route: str, form: str, local_session: Session) -> None:
    with FakeGemini(reply_for(form, CODE)) as llm:
        async with async_stream(route, llm) as make:
            source = agenerate_content_stream(await make())
            result = await arun_stream(source, local_session)
        log = llm.wait_done(0)
    assert result.status == "ok", result.error
    assert result.stdout == "6\n120\n"
    assert source.stats.complete and not source.stats.closed_early
    assert log.finished


def test_streamed_arguments_are_rendered_back_into_their_json() -> None:
    code = 'label = "a \\"quoted\\" word"\nprint(label)\n'
    with FakeGemini(reply_for("tool", code)) as llm, sync_stream("vertex", llm) as make:
        source = generate_content_stream(make())
        got = list(source)
        log = llm.wait_done(0)
    assert "".join(p for p in got if not is_boundary(p)) == code
    assert is_boundary(got[-1])
    assert log.events_total > 5  # the call really came in pieces
    import json

    (call,) = source.stats.tool_calls
    assert json.loads(call.arguments) == {"code": code}


def test_each_code_piece_is_released_as_its_argument_piece_arrives() -> None:
    code = "a = 1\nb = 2\nc = 3\n"
    with FakeGemini(reply_for("tool", code)) as llm, sync_stream("vertex", llm) as make:
        source = generate_content_stream(make())
        got = [p for p in source if not is_boundary(p)]
    assert got == pieces(code, 7)  # one code piece per streamed piece of the argument


def test_detected_api_matches_the_explicit_adapter(sync_session: SyncSession) -> None:
    with FakeGemini(reply_for("fences", CODE)) as llm, sync_stream("gemini", llm) as make:
        source = model_source(make())
        result = run_stream(source, sync_session, timeout=60)
    assert result.stdout == "6\n120\n"
    assert (source.stats.provider, source.stats.api) == ("google", "gemini")


def test_thoughts_are_not_answer_text() -> None:
    chunk = types.GenerateContentResponse(candidates=[types.Candidate(
        content=types.Content(role="model", parts=[
            types.Part(text="```python\nprint('thinking')\n```\n", thought=True),
            types.Part(text="```python\nprint('answer')\n"),
        ]),
        finish_reason=types.FinishReason.STOP,
    )])
    source = generate_content_stream(iter([chunk]))
    assert "".join(p for p in source if not is_boundary(p)) == "print('answer')\n"


def test_gemini_code_execution_parts_are_not_run() -> None:
    chunk = types.GenerateContentResponse(candidates=[types.Candidate(
        content=types.Content(role="model", parts=[
            types.Part(executable_code=types.ExecutableCode(
                code="print('on google')", language=types.Language.PYTHON)),
            types.Part(text="Done."),
        ]),
        finish_reason=types.FinishReason.STOP,
    )])
    source = generate_content_stream(iter([chunk]))
    assert list(source) == []
    assert source.stats.prose == "Done."


# -- early interruption --------------------------------------------------------------------


def _check_interrupted(result: RunResult, source: Any, log: Any) -> None:
    assert result.status == "error"
    assert result.error is not None and result.error.ename == "ValueError"
    assert result.stdout == "42\n"
    assert result.stream_closed_early
    assert source.stats.closed_early
    assert log.client_closed, "the server never saw the stream closed"
    assert not log.finished and log.events_unsent > 0


@pytest.mark.parametrize("form", FORMS)
def test_sync_early_interruption_closes_the_stream(form: str, sync_session: SyncSession) -> None:
    # Vertex streams the tool call in pieces: the failing statement comes well before the hold
    faults = Faults(hold_after=14, hold_timeout=20.0, interval=0.01)
    with FakeGemini(reply_for(form, FAILING), faults) as llm, sync_stream("vertex", llm) as make:
        source = generate_content_stream(make())
        result = run_stream(source, sync_session, timeout=60)
        log = llm.wait_done(0)
    _check_interrupted(result, source, log)


@pytest.mark.anyio
@pytest.mark.parametrize("form", FORMS)
async def test_async_early_interruption_closes_the_stream(form: str, local_session: Session
                                                          ) -> None:
    with FakeGemini(reply_for(form, FAILING), Faults(hold_after=14, hold_timeout=20.0)) as llm:
        async with async_stream("vertex", llm) as make:
            source = agenerate_content_stream(await make())
            result = await arun_stream(source, local_session)
        log = llm.wait_done(0)
    _check_interrupted(result, source, log)
    assert log.events_sent <= 14 + 1  # nothing was sent after the hold


# -- faults --------------------------------------------------------------------------------

CUT = ["a = 1\n", "b = 2", "2\n", "print(a, b)\n"]


def _stream_failure(
    reply: Reply, session: SyncSession, faults: Faults | None = None, timeout_s: float = 30.0
) -> ModelStreamError:
    """Why the Gemini API's stream of ``reply`` ended the run; the run must end on it."""
    with FakeGemini(reply, faults) as llm, sync_stream("gemini", llm, timeout_s) as make:
        result = run_stream(generate_content_stream(make()), session, timeout=60)
    assert result.status == "source_error", result.status
    assert result.error is not None and isinstance(result.error.cause, ModelStreamError)
    return result.error.cause


def _defined(session: SyncSession, name: str) -> bool:
    return session.execute(f"print({name!r} in globals())", timeout=30).stdout.strip() == "True"


@pytest.mark.parametrize(
    ("faults", "kind"),
    [
        (Faults(drop_after=3), "connection"),
        (Faults(truncate_after=3), "truncated"),
        (Faults(error_after=3, error_message="Model overloaded"), "api_error"),
    ],
)
def test_a_broken_stream_runs_only_complete_statements(
    faults: Faults, kind: str, sync_session: SyncSession
) -> None:
    error = _stream_failure(Reply(text=["```python\n", *CUT, "```\n"]), sync_session, faults)
    assert error.kind == kind
    if kind == "api_error":
        assert "Model overloaded" in str(error)
    assert _defined(sync_session, "a")  # complete before the cut: it ran
    assert not _defined(sync_session, "b")  # "b = 2" was cut: it never ran


def test_read_timeout_is_a_timeout_error(sync_session: SyncSession) -> None:
    faults = Faults(first_token_delay=5.0)
    error = _stream_failure(reply_for("fences", CODE), sync_session, faults, timeout_s=0.5)
    assert error.kind == "timeout"


def test_output_limit_inside_code_is_reported(sync_session: SyncSession) -> None:
    reply = Reply(text=["```python\n", "a = 1\n", "b = "], finish="length")
    error = _stream_failure(reply, sync_session)
    assert error.kind == "length" and "MAX_TOKENS" in error.message


def test_a_safety_stop_is_an_api_error(sync_session: SyncSession) -> None:
    reply = Reply(text=["```python\n", "a = 1\n", "b = 2"], finish="SAFETY")
    error = _stream_failure(reply, sync_session)
    assert error.kind == "api_error" and "SAFETY" in error.message
    assert not _defined(sync_session, "b")


def test_a_refused_request_is_an_api_error_with_the_sdk_error_as_cause() -> None:
    # the SDK sends the request at the first iteration, so a refusal comes from the stream
    with FakeGemini(reply_for("fences", CODE), status=401) as llm, \
            sync_stream("gemini", llm) as make, pytest.raises(ModelStreamError) as info:
        list(generate_content_stream(make()))
    assert info.value.kind == "api_error"
    assert isinstance(info.value.__cause__, genai.errors.ClientError)
    assert info.value.__cause__.code == 401
