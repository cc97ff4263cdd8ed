"""smolagents, one CodeAgent, the same streamed answers, each code executor in turn.

The model is smolagents' own ``OpenAIServerModel`` against the loopback
server of ``tests/fake_llm``: each action is streamed over HTTP as
``Thought: …\\n<code>\\n`` then the program in cl100k pieces, one Chat
Completions event per piece at a fixed rate, ending where a real server stops
at smolagents' ``</code>`` stop sequence; the next step calls
``final_answer``. The agent's tools are the tool corpus's simulated services
(``bench/tools_corpus``: deterministic answers, 0.2-2 s latencies) as
smolagents tools. The executors, side by side in one run:

* ``smolagents``: ``CodeAgent`` with its default ``LocalPythonExecutor``: the
  action streams, then smolagents parses and runs it (stream, then execute);
* ``eager_rt``: :class:`eager_rt.integrations.smolagents.EagerCodeAgent` on
  the local backend: each statement runs while the model writes the next.

Both agents read the model through the same timing wrapper (it notes when the
response's stream ended) with ``stream_outputs=False``, so neither pays for the
live markdown view. Per answer: E2EL (the step's request to the next request,
which carries the observation), the time after the last token (after the
response's stream ended), whether the code ran. Per-step overhead: ``BLOCKS`` runs of
``1 + STEPS`` trivial actions per executor, in alternating blocks; the time
after the last token of actions 2.. (median of all), and of action 1.

Outputs ``bench/results/framework_smolagents.json`` and ``.md`` (the README
table). ``EAGER_RT_BENCH_SMOLAGENTS_TPS`` sets the rate (default 50 tok/s).

    .venv/bin/pytest bench/test_bench_framework_smolagents.py -s
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Generator
from typing import Any

import pytest
from smolagents import CodeAgent, OpenAIServerModel, tool
from smolagents.memory import ActionStep
from smolagents.models import ChatMessageStreamDelta, agglomerate_stream_deltas

from bench import framework
from bench import tools_corpus as corpus
from bench.framework import Report, Step
from bench.harness import machine
from eager_rt.integrations.smolagents import EagerCodeAgent
from eager_rt.sources.replay import replay
from tests.fake_llm.events import Reply
from tests.fake_llm.server import FakeLLM, Faults

pytestmark = pytest.mark.timeout(3600)

TPS = float(os.environ.get("EAGER_RT_BENCH_SMOLAGENTS_TPS", "50"))
#: corpus programs without asyncio (smolagents' interpreter runs no event loop), await dropped
PROGRAMS = ["stock_portfolio", "db_report", "flight_status", "travel_brief", "weather_trip"]
COMPUTE = framework.compute_answer(20000, 500)
STEPS = 5
BLOCKS = 3
EXECUTORS = ["smolagents", "eager_rt"]  #: the first is the baseline


# ------------------------------------------------------------------ the corpus services as tools


@tool
def get_stock_price(symbol: str) -> float:
    """The last price of a stock, in USD.

    Args:
        symbol: the ticker
    """
    return asyncio.run(corpus.get_stock_price(symbol))


@tool
def exchange_rate(base: str, quote: str) -> float:
    """How many ``quote`` one ``base`` buys.

    Args:
        base: the currency sold
        quote: the currency bought
    """
    return asyncio.run(corpus.exchange_rate(base, quote))


@tool
def query_db(sql: str) -> list:  # type: ignore[type-arg]
    """Rows of ``key``/``value`` for a SQL query.

    Args:
        sql: the query
    """
    return corpus.query_db(sql)


@tool
def get_flight(code: str) -> dict:  # type: ignore[type-arg]
    """A flight's status, gate and delay.

    Args:
        code: the flight number
    """
    return asyncio.run(corpus.get_flight(code))


@tool
def get_weather(city: str, units: str = "metric") -> dict:  # type: ignore[type-arg]
    """Current weather for a city: temperature, condition, humidity.

    Args:
        city: the city
        units: metric or imperial
    """
    return asyncio.run(corpus.get_weather(city, units))


@tool
def search_web(query: str, limit: int = 3) -> list:  # type: ignore[type-arg]
    """Search the web; each result has title, url and snippet.

    Args:
        query: what to search for
        limit: how many results
    """
    return asyncio.run(corpus.search_web(query, limit))


TOOLS = [get_stock_price, exchange_rate, query_db, get_flight, get_weather, search_web]


def program(name: str) -> str:
    return corpus.program_text(name).replace("await ", "")


# ------------------------------------------------------------------ one agent run


class TimedModel(OpenAIServerModel):  # type: ignore[misc]
    """The server model, noting when each response's stream ended; generate() streams.

    The end of the stream (the finish and usage events included, or the moment
    it was closed early) is what ends generation for both executors alike.
    """

    stream_ends: list[float]

    def generate_stream(self, *args: Any, **kwargs: Any) -> Generator[ChatMessageStreamDelta]:
        try:
            yield from super().generate_stream(*args, **kwargs)
        finally:
            self.stream_ends.append(time.monotonic())

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        return agglomerate_stream_deltas(list(self.generate_stream(*args, **kwargs)))


def _pieces(text: str) -> list[str]:
    return list(replay(text, TPS).pieces)


def drive(executor: str, actions: list[str]) -> list[Step]:
    """One agent run whose model streams ``actions``, then a final answer."""
    arrivals: list[float] = []
    replies = [
        Reply(text=_pieces(f"Thought: step {i}.\n<code>\n{a}")) for i, a in enumerate(actions)
    ]
    replies.append(Reply(text=_pieces("Thought: done.\n<code>\nfinal_answer('done')\n")))

    def reply(api: str, body: dict[str, Any]) -> Reply:
        arrivals.append(time.monotonic())
        return replies[min(len(arrivals) - 1, len(replies) - 1)]

    with FakeLLM(
        reply, Faults(interval=1 / TPS), lifetime=600, max_requests=len(replies) + 2
    ) as llm:
        model = TimedModel(model_id="fake-model-1", api_base=llm.openai_url, api_key="sk-fake")
        model.stream_ends = []
        kwargs: dict[str, Any] = {"tools": TOOLS, "model": model, "verbosity_level": 0}
        agent: CodeAgent = (
            EagerCodeAgent(backend="local", **kwargs)
            if executor == "eager_rt"
            else CodeAgent(**kwargs)
        )
        gen_ends: list[float] = []
        with agent:
            for event in agent.run("go", stream=True, max_steps=len(actions) + 2):
                if isinstance(event, ActionStep):
                    gen_ends.append(model.stream_ends[-1])
            steps = [s for s in agent.memory.steps if isinstance(s, ActionStep)]
    out = []
    for i in range(len(actions)):
        step = Step(t0=arrivals[i], gen_end=gen_ends[i], result_at=arrivals[i + 1])
        step.ok = steps[i].error is None
        step.detail = "" if step.ok else str(steps[i].error)[:300]
        out.append(step)
    return out


# ------------------------------------------------------------------ the report

NAMES = {
    "smolagents": "smolagents `CodeAgent` (LocalPythonExecutor: stream, then execute)",
    "eager_rt": "eager_rt `EagerCodeAgent(backend='local')`",
}


def render(report: Report) -> str:
    return framework.render(
        report,
        title=f"smolagents CodeAgent, {TPS:g} tok/s over HTTP",
        names=NAMES,
        first_step="first step",
    )


@pytest.fixture(scope="module")
def report() -> Report:
    from importlib.metadata import version

    env = machine(smolagents=version("smolagents"), openai=version("openai"))
    answers = {name: program(name) for name in PROGRAMS}
    answers["compute"] = COMPUTE
    # alternating blocks: both executors see the same machine
    result = framework.measure(drive, answers, EXECUTORS, rounds=BLOCKS, steps=STEPS)
    plan = {"tps": TPS, "answers": list(answers), "steps": STEPS, "blocks": BLOCKS}
    framework.write_report("framework_smolagents", result, render(result), env, plan)
    return result


def test_report_written(report: Report, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print("\n" + render(report))
    assert {r.answer for r in report.rows} == {*PROGRAMS, "compute"}


def test_both_executors_run_every_answer(report: Report) -> None:
    failed = [(r.executor, r.answer, r.detail) for r in report.rows if not r.ok]
    assert not failed, failed


def test_less_left_after_the_last_token(report: Report) -> None:
    """The point of eager execution, measured beside smolagents' executor in the same run."""
    s = framework.summary(report)
    assert s["eager_rt"]["after_last_token_median_s"] < s["smolagents"]["after_last_token_median_s"]
