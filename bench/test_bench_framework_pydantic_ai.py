"""pydantic-ai, one agent, the same streamed answers, each code executor in turn.

The model is pydantic-ai's ``FunctionModel``: for every step it streams one
answer as the ``code`` argument of a ``run_code`` call, in cl100k pieces at a
fixed rate (``eager_rt.sources.replay``), and ends the run with text once it
has seen the last tool result. The agent has the tool corpus's simulated
services as its tools (``bench/tools_corpus``: deterministic answers, 0.2-2 s
latencies). The executors, side by side in one run:

* ``harness``: pydantic-ai-harness ``CodeMode()``, its default executor (the
  Monty sandbox runs the code once the call is complete);
* ``harness eager``: ``CodeMode(eager=True)`` (statements fed to Monty while
  the arguments stream);
* ``eager_rt``: :class:`eager_rt.integrations.pydantic_ai.EagerCodeMode` on
  the local backend, no speculation;
* ``eager_rt spec``: the same, the corpus's read-only tools speculated.

Per answer: E2EL (stream start to the tool result reaching the next model
request), the time after the last token (E2EL minus generation), and whether
the code ran. Per-step overhead: one agent run of ``1 + STEPS`` trivial
answers; the time after the last token of steps 2.. (the session is up: what
each step costs on top of generation), and of step 1 (it includes starting the
session, which starts with the run); medians over ``ROUNDS`` rounds in which
the executors alternate, so a busy moment of the machine hits them all alike.

Outputs ``bench/results/framework_pydantic_ai.json`` and ``.md``; the ``.md``
has the README table. ``EAGER_RT_BENCH_PYDANTIC_TPS`` sets the rate (default
50 tok/s).

    .venv/bin/pytest bench/test_bench_framework_pydantic_ai.py -s
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench import framework
from bench.framework import Report, Step
from bench.harness import machine
from bench.tools_corpus import SIDE_EFFECTS, TOOL_NAMES, program_text
from eager_rt.sources.replay import replay

pytestmark = pytest.mark.timeout(3600)

TPS = float(os.environ.get("EAGER_RT_BENCH_PYDANTIC_TPS", "50"))
READ_ONLY = sorted(TOOL_NAMES - SIDE_EFFECTS)
#: corpus programs CodeMode's Monty sandbox runs (bench/results/tools_default.json)
PROGRAMS = ["weather_gather", "stock_portfolio", "flight_status", "travel_brief", "price_alerts"]
COMPUTE = framework.compute_answer(60000, 2000)
STEPS = 6
ROUNDS = 3
NAMES = {
    "harness": "pydantic-ai-harness `CodeMode()` (Monty, default)",
    "harness eager": "pydantic-ai-harness `CodeMode(eager=True)`",
    "eager_rt": "eager_rt `EagerCodeMode(backend='local')`",
    "eager_rt spec": "eager_rt `EagerCodeMode`, read-only tools speculated",
}
EXECUTORS = list(NAMES)


def _capability(executor: str) -> Any:
    if executor.startswith("harness"):
        from pydantic_ai_harness import CodeMode

        return CodeMode(eager=executor == "harness eager")
    from eager_rt.integrations.pydantic_ai import EagerCodeMode

    spec = executor == "eager_rt spec"
    return EagerCodeMode(backend="local", read_only=READ_ONLY, speculate=spec)


def _ok(content: Any, metadata: Any) -> tuple[bool, str]:
    """Whether the run_code call ran its code, by each executor's own result."""
    if isinstance(metadata, dict) and "status" in metadata:  # eager_rt's TurnResult data
        return metadata["status"] == "ok", "" if metadata["status"] == "ok" else str(content)[:300]
    if isinstance(content, dict) and "error" not in content:  # the harness's result
        return True, ""
    if isinstance(content, str) and "error" not in content.lower():
        return True, ""
    return False, str(content)[:300]


async def drive(executor: str, answers: list[str], tps: float) -> list[Step]:
    """One agent run whose model streams ``answers`` as successive run_code calls."""
    from pydantic_ai.messages import ModelMessage
    from pydantic_ai.models.function import AgentInfo

    from bench.pydantic_ai_stream import run_agent, run_code_call, tool_returns

    steps: list[Step] = []

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        returns = tool_returns(messages)
        if returns:
            step = steps[len(returns) - 1]
            step.result_at = time.monotonic()
            step.ok, step.detail = _ok(returns[-1].content, returns[-1].metadata)
        if len(returns) == len(answers):
            yield "done"
            return
        source = replay(answers[len(returns)], tps)
        step = Step(t0=time.monotonic())
        steps.append(step)
        async for delta in run_code_call(source, step.t0, f"c{len(steps)}"):
            yield delta
        step.gen_end = time.monotonic()

    await run_agent(stream, _capability(executor), 600)
    return steps


def render(report: Report) -> str:
    return framework.render(
        report,
        title=f"pydantic-ai agent, {TPS:g} tok/s",
        names=NAMES,
        first_step="first step (session start)",
    )


@pytest.fixture(scope="module")
def report(loop: asyncio.AbstractEventLoop) -> Report:
    from importlib.metadata import version

    env = machine(
        pydantic_ai=version("pydantic-ai-slim"),
        harness=version("pydantic-ai-harness"),
        monty=version("pydantic-monty"),
    )
    answers = {name: program_text(name) for name in PROGRAMS}
    answers["compute"] = COMPUTE
    result = framework.measure(
        lambda executor, codes: loop.run_until_complete(drive(executor, codes, TPS)),
        answers,
        EXECUTORS,
        rounds=ROUNDS,
        steps=STEPS,
    )
    plan = {"tps": TPS, "answers": list(answers), "steps": STEPS, "rounds": ROUNDS}
    framework.write_report("framework_pydantic_ai", result, render(result), env, plan)
    return result


def test_report_written(report: Report, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print("\n" + render(report))
    assert {r.answer for r in report.rows} == {*PROGRAMS, "compute"}


def test_eager_rt_runs_every_answer(report: Report) -> None:
    failed = [(r.answer, r.detail) for r in report.rows if r.executor.startswith("eager_rt")]
    assert all(r.ok for r in report.rows if r.executor.startswith("eager_rt")), failed


def test_less_left_after_the_last_token(report: Report) -> None:
    """The point of eager execution, measured beside the harness in the same run."""
    s = framework.summary(report)
    assert s["eager_rt"]["after_last_token_median_s"] < s["harness"]["after_last_token_median_s"]
