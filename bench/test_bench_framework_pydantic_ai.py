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
import json
import os
import statistics
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.harness import loadavg, machine
from bench.tools_corpus import SIDE_EFFECTS, TOOL_FUNCTIONS, TOOL_NAMES, program_text
from eager_rt.sources.replay import replay

pytestmark = pytest.mark.timeout(3600)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TPS = float(os.environ.get("EAGER_RT_BENCH_PYDANTIC_TPS", "50"))
READ_ONLY = sorted(TOOL_NAMES - SIDE_EFFECTS)
#: corpus programs CodeMode's Monty sandbox runs (bench/results/tools_default.json)
PROGRAMS = ["weather_gather", "stock_portfolio", "flight_status", "travel_brief", "price_alerts"]
COMPUTE = """\
def is_prime(n):
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True

primes = [n for n in range(2, 60000) if is_prime(n)]
print(len(primes), primes[-1])
words = ("the quick brown fox jumps over the lazy dog " * 2000).split()
counts = {}
for w in words:
    counts[w] = counts.get(w, 0) + 1
print(sorted(counts.items())[:3])
"""
TRIVIAL = "x = 1\nprint(x)\n"
STEPS = 6
ROUNDS = 3
EXECUTORS = ["harness", "harness eager", "eager_rt", "eager_rt spec"]


@dataclass
class Step:
    t0: float
    gen_end: float = 0.0
    result_at: float = 0.0
    ok: bool = False
    detail: str = ""

    @property
    def e2el_s(self) -> float:
        return self.result_at - self.t0

    @property
    def after_last_token_s(self) -> float:
        return self.result_at - self.gen_end


@dataclass
class Row:
    executor: str
    answer: str
    e2el_s: float
    gen_s: float
    after_last_token_s: float
    ok: bool
    detail: str = ""


@dataclass
class Overhead:
    executor: str
    first_step_s: list[float]  #: one per round
    per_step_s: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.per_step_s)

    @property
    def first_median_s(self) -> float:
        return statistics.median(self.first_step_s)


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
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart
    from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

    steps: list[Step] = []

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        returns = [
            p
            for m in messages
            if isinstance(m, ModelRequest)
            for p in m.parts
            if isinstance(p, ToolReturnPart)
        ]
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
        yield {
            0: DeltaToolCall(name="run_code", json_args='{"code": "', tool_call_id=f"c{len(steps)}")
        }
        for i, piece in enumerate(source.pieces):
            delay = step.t0 + i / tps - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            yield {0: DeltaToolCall(json_args=json.dumps(piece)[1:-1])}
        yield {0: DeltaToolCall(json_args='"}')}
        step.gen_end = time.monotonic()

    agent = Agent(
        FunctionModel(stream_function=stream),
        tools=list(TOOL_FUNCTIONS.values()),
        capabilities=[_capability(executor)],
    )

    async def drain(ctx: Any, events: AsyncIterable[Any]) -> None:
        async for _ in events:
            pass

    await asyncio.wait_for(agent.run("go", event_stream_handler=drain), 600)
    return steps


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    overhead: list[Overhead] = field(default_factory=list)
    wall_s: float = 0.0


def _measure(loop: asyncio.AbstractEventLoop) -> Report:
    report = Report()
    started = time.monotonic()
    answers: dict[str, str] = {name: program_text(name) for name in PROGRAMS}
    answers["compute"] = COMPUTE
    for name, code in answers.items():
        for executor in EXECUTORS:  # side by side: each answer on every executor in turn
            (step,) = loop.run_until_complete(drive(executor, [code], TPS))
            report.rows.append(
                Row(
                    executor,
                    name,
                    step.e2el_s,
                    step.gen_end - step.t0,
                    step.after_last_token_s,
                    step.ok,
                    step.detail,
                )
            )
    overhead = {executor: Overhead(executor, []) for executor in EXECUTORS}
    for _ in range(ROUNDS):  # executors alternate, so a busy moment hits them all alike
        for executor in EXECUTORS:
            steps = loop.run_until_complete(drive(executor, [TRIVIAL] * (1 + STEPS), TPS))
            assert all(s.ok for s in steps), [s.detail for s in steps]
            overhead[executor].first_step_s.append(steps[0].after_last_token_s)
            overhead[executor].per_step_s.extend(s.after_last_token_s for s in steps[1:])
    report.overhead.extend(overhead.values())
    report.wall_s = time.monotonic() - started
    return report


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summary(report: Report) -> dict[str, dict[str, float]]:
    """Per executor, over the answers every executor ran: median E2EL and after-last-token."""
    ran_by_all = {
        r.answer for r in report.rows if all(o.ok for o in report.rows if o.answer == r.answer)
    }
    out: dict[str, dict[str, float]] = {}
    for executor in EXECUTORS:
        rows = [r for r in report.rows if r.executor == executor and r.answer in ran_by_all]
        over = next(o for o in report.overhead if o.executor == executor)
        out[executor] = {
            "answers": float(len(rows)),
            "e2el_median_s": _median([r.e2el_s for r in rows]),
            "after_last_token_median_s": _median([r.after_last_token_s for r in rows]),
            "per_step_overhead_median_s": over.median_s,
            "first_step_overhead_s": over.first_median_s,
        }
    return out


def render(report: Report) -> str:
    s = summary(report)
    base = s["harness"]
    lines = [
        f"pydantic-ai agent, {TPS:g} tok/s, the same streamed answers "
        f"({int(base['answers'])} answers every executor ran; medians):",
        "",
        "| executor | E2EL | vs harness | after the last token | per-step overhead "
        "| first step (session start) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    names = {
        "harness": "pydantic-ai-harness `CodeMode()` (Monty, default)",
        "harness eager": "pydantic-ai-harness `CodeMode(eager=True)`",
        "eager_rt": "eager_rt `EagerCodeMode(backend='local')`",
        "eager_rt spec": "eager_rt `EagerCodeMode`, read-only tools speculated",
    }
    for executor, v in s.items():
        lines.append(
            f"| {names[executor]} | {v['e2el_median_s']:.2f} s "
            f"| {v['e2el_median_s'] / base['e2el_median_s']:.2f}x "
            f"| {v['after_last_token_median_s'] * 1000:.0f} ms "
            f"| {v['per_step_overhead_median_s'] * 1000:.1f} ms "
            f"| {v['first_step_overhead_s'] * 1000:.0f} ms |"
        )
    lines.append("")
    lines.append("| answer | " + " | ".join(EXECUTORS) + " |")
    lines.append("| --- |" + " --- |" * len(EXECUTORS))
    for answer in dict.fromkeys(r.answer for r in report.rows):
        cells = []
        for executor in EXECUTORS:
            r = next(x for x in report.rows if x.answer == answer and x.executor == executor)
            cells.append(f"{r.e2el_s:.2f} s (+{r.after_last_token_s:.2f})" if r.ok else "failed")
        lines.append(f"| {answer} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def report(loop: asyncio.AbstractEventLoop) -> Report:
    from importlib.metadata import version

    env = machine(
        pydantic_ai=version("pydantic-ai-slim"),
        harness=version("pydantic-ai-harness"),
        monty=version("pydantic-monty"),
    )
    result = _measure(loop)
    RESULTS_DIR.mkdir(exist_ok=True)
    data = {
        "machine": env,
        "plan": {
            "tps": TPS,
            "answers": [*PROGRAMS, "compute"],
            "steps": STEPS,
            "rounds": ROUNDS,
        },
        "load average after": loadavg(),
        "wall_s": result.wall_s,
        "summary": summary(result),
        "rows": [asdict(r) for r in result.rows],
        "overhead": [{**asdict(o), "median_s": o.median_s} for o in result.overhead],
    }
    (RESULTS_DIR / "framework_pydantic_ai.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS_DIR / "framework_pydantic_ai.md").write_text(render(result))
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
    s = summary(report)
    assert s["eager_rt"]["after_last_token_median_s"] < s["harness"]["after_last_token_median_s"]
