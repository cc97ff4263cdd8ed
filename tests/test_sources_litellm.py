"""LiteLLM streams end to end: the unmodified ``litellm`` package against the loopback server.

Three of LiteLLM's provider routes, each translated by LiteLLM itself from that
provider's own wire format: ``openai/`` (Chat Completions), ``anthropic/``
(Messages) and ``gemini/`` (``streamGenerateContent``), all served by
:class:`~tests.fake_llm.gemini.FakeGemini` (the fake server with the Gemini route).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at import

import litellm  # noqa: E402
import openai  # noqa: E402
import pytest  # noqa: E402
from litellm.llms.custom_httpx.async_client_cleanup import (  # noqa: E402
    close_litellm_async_clients,
)

from eager_rt.executor import Session  # noqa: E402
from eager_rt.result import RunResult  # noqa: E402
from eager_rt.runtime import arun_stream, run_stream  # noqa: E402
from eager_rt.sources.litellm import acompletion, completion  # noqa: E402
from eager_rt.sources.llm import ModelStreamError, model_source  # noqa: E402
from eager_rt.sync import SyncSession  # noqa: E402
from tests.fake_llm import FakeLLM, Faults, Reply, reply_for  # noqa: E402
from tests.fake_llm.gemini import FakeGemini  # noqa: E402

litellm.suppress_debug_info = True

CODE = "import math\nvalues = [1, 2, 3]\nprint(sum(values))\nprint(math.factorial(5))\n"
FAILING = "x = 41\nprint(x + 1)\nraise ValueError('bad input')\n" + "y = x * 2\n" * 60
ROUTES = ["openai", "anthropic", "gemini"]
FORMS = ["fences", "tool"]
PYTHON_TOOL = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python code in a persistent session.",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}},
                       "required": ["code"]},
    },
}


def request(route: str, llm: FakeLLM, **extra: Any) -> dict[str, Any]:
    """``litellm.acompletion`` arguments for one route of the fake server."""
    model, base = {
        "openai": ("openai/fake", llm.openai_url),
        "anthropic": ("anthropic/fake", llm.url),
        "gemini": ("gemini/gemini-fake", f"{llm.url}/v1beta"),
    }[route]
    return {
        "model": model, "api_base": base, "api_key": "test", "max_tokens": 512,
        "messages": [{"role": "user", "content": "compute"}], "stream": True,
        "tools": [PYTHON_TOOL], "num_retries": 0, "timeout": 30, **extra,
    }


@contextlib.asynccontextmanager
async def serve(reply: Reply, faults: Faults | None = None) -> AsyncIterator[FakeLLM]:
    """The fake server, and LiteLLM's cached clients closed before it stops.

    LiteLLM keeps its HTTP clients between calls, in a process-wide cache: each
    test closes them so none outlives its event loop, and the server closes
    each connection after its response so no idle one holds it open.
    """
    with FakeGemini(reply, faults, keep_alive=False) as llm:
        try:
            yield llm
        finally:
            await close_litellm_async_clients()  # type: ignore[no-untyped-call]
            litellm.in_memory_llm_clients_cache.flush_cache()  # type: ignore[no-untyped-call]


# -- code runs -----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("route", ROUTES)
async def test_stream_runs_its_code(route: str, form: str, local_session: Session) -> None:
    reply = reply_for(form, CODE)
    async with serve(reply) as llm:
        source = acompletion(await litellm.acompletion(**request(route, llm)))
        result = await arun_stream(source, local_session)
        log = llm.wait_done(0)
    assert log.api == {"openai": "chat", "anthropic": "messages", "gemini": "gemini"}[route]
    assert result.status == "ok", result.error
    assert result.stdout == "6\n120\n"
    assert result.code == CODE
    stats = source.stats
    assert stats.complete and stats.error is None and not stats.closed_early
    assert (stats.provider, stats.api) == ("litellm", "chat")
    assert result.source_info["provider"] == "litellm"
    assert log.finished and not log.client_closed
    if form == "tool":
        (call,) = stats.tool_calls
        assert call.name == "python" and call.runs and call.call_id
        assert stats.finish_reason == "tool_calls"
    else:
        assert "That is the answer." in stats.prose
        assert stats.finish_reason == "stop"


def test_sync_completion_runs_its_code(sync_session: SyncSession) -> None:
    with FakeLLM(reply_for("fences", CODE)) as llm:
        client = openai.OpenAI(base_url=llm.openai_url, api_key="test", max_retries=0,
                               timeout=30.0)
        try:  # our own client, closed here: LiteLLM's cached one would outlive the server
            stream = litellm.completion(**request("openai", llm, client=client))
            source = completion(stream)
            result = run_stream(source, sync_session, timeout=60)
        finally:
            client.close()
    assert result.status == "ok", result.error
    assert result.stdout == "6\n120\n"
    assert source.stats.complete


@pytest.mark.anyio
async def test_detected_api_is_litellm(local_session: Session) -> None:
    async with serve(reply_for("fences", CODE)) as llm:
        source = model_source(await litellm.acompletion(**request("anthropic", llm)))
        result = await arun_stream(source, local_session)
    assert result.stdout == "6\n120\n"
    assert (source.stats.provider, source.stats.api) == ("litellm", "chat")


# -- early interruption --------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("route", ["openai", "anthropic"])
async def test_early_interruption_closes_the_stream(
    route: str, form: str, local_session: Session
) -> None:
    faults = Faults(hold_after=14, hold_timeout=20.0)
    async with serve(reply_for(form, FAILING), faults) as llm:
        source = acompletion(await litellm.acompletion(**request(route, llm)))
        result = await arun_stream(source, local_session)
        log = llm.wait_done(0)
    assert result.status == "error"
    assert result.error is not None and result.error.ename == "ValueError"
    assert result.stdout == "42\n"
    assert result.stream_closed_early and source.stats.closed_early
    assert log.client_closed, "the server never saw the stream closed"
    assert not log.finished and log.events_unsent > 0


# -- faults --------------------------------------------------------------------------------

CUT = ["a = 1\n", "b = 2", "2\n", "print(a, b)\n"]


def _stream_failure(result: RunResult) -> ModelStreamError:
    assert result.status == "source_error", result.status
    assert result.error is not None and isinstance(result.error.cause, ModelStreamError)
    return result.error.cause


async def _defined(session: Session, name: str) -> bool:
    out = await session.execute(f"print({name!r} in globals())", timeout=30)
    return out.stdout.strip() == "True"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("route", "faults", "kind"),
    [
        ("openai", Faults(drop_after=3), "connection"),
        ("anthropic", Faults(drop_after=3), "connection"),
        # LiteLLM raises its own connection error for a stream without a finish reason
        ("openai", Faults(truncate_after=3), "connection"),
        ("anthropic", Faults(truncate_after=3), "connection"),
        ("anthropic", Faults(error_after=3, error_message="Overloaded"), "api_error"),
        ("gemini", Faults(error_after=3, error_message="Overloaded"), "api_error"),
    ],
)
async def test_a_broken_stream_runs_only_complete_statements(
    route: str, faults: Faults, kind: str, local_session: Session
) -> None:
    async with serve(Reply(text=["```python\n", *CUT, "```\n"]), faults) as llm:
        source = acompletion(await litellm.acompletion(**request(route, llm)))
        error = _stream_failure(await arun_stream(source, local_session))
    assert error.kind == kind
    assert source.stats.error is not None
    assert await _defined(local_session, "a")  # complete before the cut: it ran
    assert not await _defined(local_session, "b")  # "b = 2" was cut: it never ran


@pytest.mark.anyio
@pytest.mark.parametrize("route", ROUTES)
async def test_output_limit_inside_code_is_reported(route: str, local_session: Session) -> None:
    reply = Reply(text=["```python\n", "a = 1\n", "b = "], finish="length")
    async with serve(reply) as llm:
        source = acompletion(await litellm.acompletion(**request(route, llm)))
        error = _stream_failure(await arun_stream(source, local_session))
    assert error.kind == "length"  # each provider's own limit, as LiteLLM maps it
    assert source.stats.finish_reason == "length"
    assert await _defined(local_session, "a")
