"""LangGraph benchmark: a plain code-execution tool vs eager_rt's, on the same streamed answers.

Each program (corpus scripts, and corpus error variants) is the ``code`` argument
of a ``run_code`` tool call that the loopback server in ``tests/fake_llm``
streams as Chat Completions tool-call chunks, one cl100k token per event, at
``EAGER_RT_BENCH_LG_TPS`` tokens per second (default 50; the end of the
response follows the last token at once, as with a real provider:
``tests/fake_llm/token_paced.py``). The unmodified
``create_react_agent`` with ``ChatOpenAI`` runs it two ways, alternating which
goes first, each program ``EAGER_RT_BENCH_LG_REPEAT`` times (default 3; medians):

* ``plain``: the tool a LangGraph user writes: ``@tool async def run_code(code)``
  that executes the finished code in a warm eager_rt session (one
  ``Session.execute`` after the model is done);
* ``eager``: :class:`eager_rt.integrations.langgraph.EagerCode` on a warm session
  of the same backend: statements run while the tool-call chunks stream; a
  failing statement stops the stream.

Per run, from the agent's own callbacks (seconds from ``ainvoke``): E2EL (until
the ``run_code`` ToolMessage exists), when the last tool-call chunk arrived,
the time after it, and the per-step overhead: the time after the last token
not spent executing code (plain: after the last token minus the execution;
eager: minus the time from the last token to the end of the last execution). For error
variants, how many of the response's events the server never had to send.

Outputs ``bench/results/framework_langgraph.json`` and ``.md``.
``EAGER_RT_BENCH_LG_BACKEND`` (``local``, ``docker``),
``EAGER_RT_BENCH_LG_PROGRAMS`` (comma-separated script or variant names).

    .venv/bin/pytest bench/test_bench_framework_langgraph.py -s
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, cast

import pytest

pytest.importorskip("langgraph")
pytest.importorskip("langchain_openai")

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.messages import ToolMessage  # noqa: E402
from langchain_core.runnables import RunnableConfig  # noqa: E402
from langchain_core.tools import BaseTool, tool  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from bench.corpus_index import ERROR_VARIANTS, script_text  # noqa: E402
from bench.framework import code_arguments  # noqa: E402
from bench.harness import RESULTS_DIR, backend_env, env_list, machine, write_results  # noqa: E402
from eager_rt.agent import TurnResult  # noqa: E402
from eager_rt.events import ExecutionFinished  # noqa: E402
from eager_rt.executor import Backend, ExecResult, Session  # noqa: E402
from eager_rt.integrations.langgraph import EagerCode  # noqa: E402
from eager_rt.registry import get_backend  # noqa: E402
from eager_rt.sources.replay import tokenize_pieces  # noqa: E402
from tests.fake_llm import FakeLLM, Reply  # noqa: E402
from tests.fake_llm.token_paced import TokenPacedLLM  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from langgraph.prebuilt import create_react_agent  # noqa: E402

pytestmark = [
    pytest.mark.timeout(3600),
    pytest.mark.filterwarnings("ignore:create_react_agent has been moved"),
]

PROGRAMS = (
    "sales_dashboard.py",
    "sensor_anomalies.py",
    "kmeans_customers.py",
    "employee_salaries.py",
    "cohort_retention.py",
    "sales_dashboard__KeyError",
    "sensor_anomalies__TypeError",
)
DOCKER_OPTIONS: dict[str, Any] = {"image": "eager-rt-python:local"}
THREAD: RunnableConfig = {"configurable": {"thread_id": "bench"}}


def _program(name: str) -> str:
    for variant in ERROR_VARIANTS:
        if variant.name == name:
            return variant.text()
    return script_text(name)


def _fragments(code: str) -> list[str]:
    """The JSON arguments, one token of code per fragment (as a provider streams them)."""
    return code_arguments(tokenize_pieces(code))


@dataclass
class Row:
    program: str
    variant: str
    status: str
    e2el_s: float
    last_token_s: float
    after_last_token_s: float
    exec_after_s: float  #: execution that ran after the last token
    overhead_s: float
    events_sent: int
    events_total: int
    stdout: str
    rep: int = 0

    @property
    def events_unsent(self) -> int:
        return self.events_total - self.events_sent


class _Clock(BaseCallbackHandler):
    """When the last tool-call chunk arrived and when the run_code ToolMessage was made."""

    run_inline = True

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.last_token: float | None = None
        self.tool_end: float | None = None

    def on_llm_new_token(self, token: Any, *, chunk: Any = None, **kwargs: Any) -> None:
        if getattr(getattr(chunk, "message", None), "tool_call_chunks", None):
            self.last_token = time.perf_counter() - self.t0

    def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        if isinstance(output, ToolMessage) and output.name == "run_code" and self.tool_end is None:
            self.tool_end = time.perf_counter() - self.t0


def _model(llm: FakeLLM) -> ChatOpenAI:
    return ChatOpenAI(
        model="fake",
        base_url=llm.openai_url,
        api_key=SecretStr("sk-fake"),
        max_retries=0,
        streaming=True,
        default_headers={"Connection": "close"},
    )


def _plain_tool(session: Session, ran: list[tuple[float, ExecResult]]) -> BaseTool:
    @tool
    async def run_code(code: str) -> str:
        """Run Python code in a persistent session and return its output."""
        t = time.perf_counter()
        result = await session.execute(code, timeout=600)
        ran.append((time.perf_counter() - t, result))
        if result.error is not None:
            return f"{result.stdout}\n{result.error.ename}: {result.error.evalue}"
        return result.stdout

    return run_code


async def _one(name: str, variant: str, tps: float, plain: Session, eager: EagerCode) -> Row:
    code = _program(name)
    turns = [Reply(tools=[("run_code", _fragments(code))]), Reply(text=["Done."])]
    ran: list[tuple[float, ExecResult]] = []
    results: list[TurnResult] = []
    exec_ends: list[float] = []
    eager.on_result = lambda _id, r: results.append(r)
    eager.on_event = lambda _id, event: (
        exec_ends.append(time.perf_counter()) if isinstance(event, ExecutionFinished) else None
    )
    with TokenPacedLLM(turns, token_interval=1.0 / tps, lifetime=900.0) as llm:
        if variant == "plain":
            agent = create_react_agent(_model(llm), [_plain_tool(plain, ran)])
        else:
            agent = create_react_agent(eager.wrap(_model(llm)), [eager.tool])
        clock = _Clock()
        out = await agent.ainvoke(
            cast(Any, {"messages": [("user", "analyse")]}), {**THREAD, "callbacks": [clock]}
        )
        first = llm.wait_done(0)
    assert clock.tool_end is not None and clock.last_token is not None, name
    after = clock.tool_end - clock.last_token
    assert any(isinstance(m, ToolMessage) for m in out["messages"]), name
    if variant == "plain":
        exec_after, result = ran[0]
        stdout = result.stdout
        status = "ok" if result.ok else "error"
    else:
        turn = results[0]
        last_end = max(exec_ends) - clock.t0 if exec_ends else clock.last_token
        exec_after = max(0.0, last_end - clock.last_token)
        stdout = str(turn.data.get("stdout", ""))
        status = turn.status
    return Row(
        program=name,
        variant=variant,
        status=status,
        e2el_s=clock.tool_end,
        last_token_s=clock.last_token,
        after_last_token_s=after,
        exec_after_s=exec_after,
        overhead_s=after - exec_after,
        events_sent=first.events_sent,
        events_total=first.events_total,
        stdout=stdout,
    )


@dataclass
class Report:
    machine: dict[str, str]
    backend: str
    tps: float
    rows: list[Row]


async def _bench(backend_name: str, programs: list[str], tps: float, repeat: int) -> Report:
    backend: Backend = get_backend(backend_name)(
        **(DOCKER_OPTIONS if backend_name == "docker" else {})
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="eager-bench-lg-") as cwd:
        options = {"cwd": cwd, "env": backend_env()}
        plain = backend.session(**options)
        eager = EagerCode(backend=backend, session_options=options)
        try:
            await plain.start(timeout=120)
            warm = "import numpy, pandas, matplotlib.pyplot\n"
            await plain.execute(warm, timeout=120)
            # the eager session: started and warmed by the same code, through the adapter
            llm_turns = [Reply(tools=[("run_code", _fragments(warm))]), Reply(text=["ok"])]
            with FakeLLM(llm_turns) as llm:
                agent = create_react_agent(eager.wrap(_model(llm)), [eager.tool])
                await agent.ainvoke(cast(Any, {"messages": [("user", "warm up")]}), THREAD)
            assert eager.open_sessions == 1
            for rep in range(repeat):
                for i, name in enumerate(programs):
                    order = ("plain", "eager") if (i + rep) % 2 == 0 else ("eager", "plain")
                    for variant in order:
                        row = await _one(name, variant, tps, plain, eager)
                        row.rep = rep
                        rows.append(row)
        finally:
            await plain.close()
            await eager.aclose()
            await backend.aclose()
    return Report(machine(), backend_name, tps, rows)


def _median_row(rows: list[Row]) -> Row:
    """One program's runs of one variant: the median of each figure."""

    def med(field: str) -> float:
        return float(statistics.median(getattr(r, field) for r in rows))

    first = rows[0]
    return Row(
        program=first.program,
        variant=first.variant,
        status=first.status,
        e2el_s=med("e2el_s"),
        last_token_s=med("last_token_s"),
        after_last_token_s=med("after_last_token_s"),
        exec_after_s=med("exec_after_s"),
        overhead_s=med("overhead_s"),
        events_sent=int(med("events_sent")),
        events_total=first.events_total,
        stdout=first.stdout,
    )


def _pair(report: Report) -> list[tuple[Row, Row]]:
    """Per program: (plain, eager), each the median of its repetitions."""
    names = list(dict.fromkeys(r.program for r in report.rows))
    pairs = []
    for n in names:
        plain = [r for r in report.rows if r.program == n and r.variant == "plain"]
        eager = [r for r in report.rows if r.program == n and r.variant == "eager"]
        pairs.append((_median_row(plain), _median_row(eager)))
    return pairs


def _equal_generation(p: Row, e: Row) -> float:
    """E2EL eager / plain with both generation times set to their mean (error-free programs).

    Both streams are the same events at the same pace; their generation times
    differ only by the machine's jitter, which this takes out.
    """
    gen = (p.last_token_s + e.last_token_s) / 2
    return (gen + e.after_last_token_s) / (gen + p.after_last_token_s)


def _summary(report: Report) -> dict[str, Any]:
    pairs = _pair(report)
    ok = [(p, e) for p, e in pairs if p.status == "ok"]
    err = [(p, e) for p, e in pairs if p.status != "ok"]

    def med(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    return {
        "programs": len(pairs),
        "e2el_ratio_median_ok": med([e.e2el_s / p.e2el_s for p, e in ok]),
        "e2el_ratio_equal_generation_median_ok": med([_equal_generation(p, e) for p, e in ok]),
        "e2el_ratio_median_error": med([e.e2el_s / p.e2el_s for p, e in err]),
        "after_last_token_plain_median_s": med([p.after_last_token_s for p, _ in ok]),
        "after_last_token_eager_median_s": med([e.after_last_token_s for _, e in ok]),
        "after_last_token_ratio_median_ok": med(
            [e.after_last_token_s / p.after_last_token_s for p, e in ok]
        ),
        "overhead_plain_median_s": med([p.overhead_s for p, _ in pairs]),
        "overhead_eager_median_s": med([e.overhead_s for _, e in pairs]),
        "stdout_equal_ok": all(p.stdout.strip() == e.stdout.strip() for p, e in ok),
        "events_unsent_error_eager": [e.events_unsent for _, e in err],
    }


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.0f} ms"


def render(report: Report) -> str:
    s = _summary(report)
    md = [
        f"# LangGraph: plain run_code vs eager_rt ({report.backend}, {report.tps:g} tok/s)",
        "",
        f"Each program {max(r.rep for r in report.rows) + 1} times per way, alternating which "
        "goes first; the figures are the medians of its runs.",
        "",
        "| program | last token plain / eager | after it plain / eager | E2EL plain / eager "
        "| per-step overhead plain / eager | eager status | events not sent |",
        "|---|---|---|---|---|---|---:|",
    ]
    for p, e in _pair(report):
        md.append(
            f"| {p.program} | {p.last_token_s:.2f} / {e.last_token_s:.2f} s "
            f"| {p.after_last_token_s * 1000:.0f} / {e.after_last_token_s * 1000:.0f} ms "
            f"| {p.e2el_s:.2f} / {e.e2el_s:.2f} s "
            f"| {p.overhead_s * 1000:.1f} / {e.overhead_s * 1000:.1f} ms | {e.status} "
            f"| {e.events_unsent}/{e.events_total} |"
        )
    md += [
        "",
        "Error-free programs, medians: time after the last token plain "
        f"{_ms(s['after_last_token_plain_median_s'])}, eager "
        f"{_ms(s['after_last_token_eager_median_s'])} (per program, eager / plain: "
        f"{_x(s['after_last_token_ratio_median_ok'])}); E2EL eager / plain "
        f"{_x(s['e2el_ratio_median_ok'])} as measured, "
        f"{_x(s['e2el_ratio_equal_generation_median_ok'])} at equal generation time.",
        f"Error variants: E2EL eager / plain {_x(s['e2el_ratio_median_error'])} (median); "
        f"events the server never sent: {s['events_unsent_error_eager']}.",
        "Per-step overhead (time after the last token not spent executing code), median: "
        f"plain {s['overhead_plain_median_s'] * 1000:.1f} ms, "
        f"eager {s['overhead_eager_median_s'] * 1000:.1f} ms. Under eager the graph's own "
        "step (model end, routing, tool node) overlaps the code's last statements; with "
        "nothing left to run (error variants) it shows, as it does for plain.",
        f"Outputs identical on the error-free programs: {s['stdout_equal_ok']}.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in report.machine.items()),
    ]
    return "\n".join(md) + "\n"


@pytest.fixture(scope="module")
def report() -> Iterator[Report]:
    backend = os.environ.get("EAGER_RT_BENCH_LG_BACKEND", "local")
    tps = float(os.environ.get("EAGER_RT_BENCH_LG_TPS", "50"))
    programs = env_list("EAGER_RT_BENCH_LG_PROGRAMS") or list(PROGRAMS)
    repeat = int(os.environ.get("EAGER_RT_BENCH_LG_REPEAT", "3"))
    result = asyncio.run(_bench(backend, programs, tps, repeat))
    payload = {
        "machine": result.machine,
        "backend": result.backend,
        "tps": result.tps,
        "summary": _summary(result),
        "runs": [{**asdict(r), "events_unsent": r.events_unsent} for r in result.rows],
    }
    suffix = "" if backend == "local" else f"_{backend}"
    write_results(RESULTS_DIR / f"framework_langgraph{suffix}.md", render(result), payload)
    yield result


def test_report(report: Report, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print("\n" + render(report))
    pairs = _pair(report)
    assert pairs and all(p.status == e.status or "error" in (p.status, e.status) for p, e in pairs)


def test_same_outputs_and_early_stop(report: Report) -> None:
    """Error-free programs print the same; a failing one leaves part of the response unsent."""
    for rep in range(max(r.rep for r in report.rows) + 1):
        for p, e in _pairs_of(report, rep):
            _check(p, e)


def _pairs_of(report: Report, rep: int) -> list[tuple[Row, Row]]:
    by = {(r.program, r.variant): r for r in report.rows if r.rep == rep}
    names = list(dict.fromkeys(r.program for r in report.rows))
    return [(by[(n, "plain")], by[(n, "eager")]) for n in names]


def _check(p: Row, e: Row) -> None:
    if p.status == "ok":
        assert e.status == "ok", e.program
        assert p.stdout.strip() == e.stdout.strip(), e.program
    else:
        assert e.status == "error", e.program
        assert e.events_unsent > 0 and p.events_unsent == 0, e.program
