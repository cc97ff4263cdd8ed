"""OpenAI Agents SDK: a plain ``run_code`` function tool beside eager_rt's, on the same streams.

The unmodified SDK (``Runner.run_streamed``, ``OpenAIResponsesModel``) talks to
the loopback server in ``tests/fake_llm``, which streams one ``run_code`` call
per run at ``EAGER_RT_BENCH_TPS`` tokens per second (4 characters a token),
then a short text answer. The code is from the tool-calling corpus
(``bench/tools_corpus``): programs that call the agent's function tools
(simulated services of 0.2-2 s each) from the code (``EAGER_RT_BENCH_PROGRAMS``:
names, or ``all``; six by default). Three ways, interleaved
program by program in one run:

* **after the stream**: the SDK's default shape, a ``@function_tool`` ``run_code``
  the runner calls once the model's response is complete; it runs the code
  on an eager_rt session started before the run (its best case: no start-up
  in the measurement) with the same host tools;
* **EagerCode**: :class:`eager_rt.integrations.openai_agents.EagerCode`, a
  fresh session per run started when the call begins streaming;
* **EagerCode + speculation**: the same with ``speculate=True`` (read-only tools).

Per run, from the client's side of the SDK's event stream: E2EL of the step
(run start to the ``run_code`` output event), time after the last token (last
argument delta to that output), and the whole run. The per-step overhead is
the time after the last token of a one-statement call: a run's first call
(the eager session starts with it) and its second (the session is up).
``error_early`` fails on its second statement: eager_rt stops the stream there.
Results: ``bench/results/framework_openai_agents.json`` and ``.md``.

    .venv/bin/pytest bench/test_bench_framework_openai_agents.py -s
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("agents")

from agents import (  # noqa: E402
    Agent,
    FunctionTool,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI  # noqa: E402

from bench.harness import RESULTS_DIR, loadavg, machine, write_results  # noqa: E402
from bench.tools_corpus import (  # noqa: E402
    SIDE_EFFECTS,
    TOOL_FUNCTIONS,
    TOOLS,
    program_names,
    program_text,
)
from eager_rt.agent import arun_turn  # noqa: E402
from eager_rt.integrations.openai_agents import RUN_CODE_DESCRIPTION, EagerCode  # noqa: E402
from eager_rt.registry import get_backend  # noqa: E402
from tests.fake_llm import Faults, Reply, tool_fragments  # noqa: E402
from tests.fake_llm.gated import GatedLLM  # noqa: E402

pytestmark = pytest.mark.timeout(3600)

TPS = float(os.environ.get("EAGER_RT_BENCH_TPS", "50"))
CHARS_PER_TOKEN = 4
REPEAT = int(os.environ.get("EAGER_RT_BENCH_REPEAT", "1"))
DEFAULT_PROGRAMS = (
    "weather_trip,currency_table,user_orders,search_summarize,kpi_dashboard,flight_status"
)
PROGRAMS = os.environ.get("EAGER_RT_BENCH_PROGRAMS", DEFAULT_PROGRAMS).split(",")
OVERHEAD_RUNS = int(os.environ.get("EAGER_RT_BENCH_OVERHEAD_RUNS", "5"))
MODES = ("after the stream", "EagerCode", "EagerCode + speculation")
READ_ONLY = frozenset(TOOL_FUNCTIONS) - SIDE_EFFECTS


def _programs() -> dict[str, str]:
    names = program_names() if PROGRAMS == ["all"] else [n for n in PROGRAMS if n]
    programs = {name: program_text(name) for name in names}
    trip = program_text("weather_trip")
    head, _, rest = trip.partition("report = {}\n")
    programs["error_early"] = head + "print(cities[10])\nreport = {}\n" + rest
    return programs


def _function_tools() -> list[FunctionTool]:
    return [function_tool(f, strict_mode=False) for f in TOOL_FUNCTIONS.values()]


def _plain_run_code(session: Any) -> FunctionTool:
    """The SDK's ordinary way: a function tool that runs the code once it is called."""

    async def run_code(code: str) -> str:
        turn = await arun_turn([code], session, tools=TOOLS)
        return turn.text

    return function_tool(run_code, description_override=RUN_CODE_DESCRIPTION)


async def _one_run(mode: str, codes: list[str], backend: Any) -> dict[str, float]:
    """One agent run whose model writes one ``run_code`` call per code, then answers."""
    replies = [Reply(tools=[("run_code", _fragments(code))]) for code in codes]
    replies.append(Reply(text=["Done."]))
    plain_session = None
    with GatedLLM(replies, Faults(interval=1.0 / TPS)) as llm:
        client = AsyncOpenAI(base_url=llm.openai_url, api_key="sk-bench", max_retries=0)
        model = OpenAIResponsesModel("fake-model", client)
        base = Agent(name="analyst", model=model, tools=list(_function_tools()))
        eager: EagerCode | None = None
        if mode == "after the stream":
            plain_session = backend.session()
            await plain_session.start(timeout=120)
            agent = base.clone(tools=[*base.tools, _plain_run_code(plain_session)])
        else:
            options: dict[str, Any] = {"speculate": True} if "speculation" in mode else {}
            eager = EagerCode(backend, read_only=READ_ONLY, **options)
            agent = eager.agent(base)
        steps: list[dict[str, float]] = []
        try:
            t0 = time.perf_counter()
            step: dict[str, float] = {}
            result = Runner.run_streamed(agent, "Do the task.", max_turns=len(codes) + 2)
            async for event in result.stream_events():
                now = time.perf_counter()
                if event.type == "raw_response_event":
                    if event.data.type == "response.created":
                        step = {"start": now}
                    elif event.data.type == "response.function_call_arguments.delta":
                        step["last_token"] = now
                elif event.type == "run_item_stream_event" and event.name == "tool_output":
                    steps.append({**step, "tool_done": now})
            end = time.perf_counter()
            first_request = llm.wait_done(0)
        finally:
            await client.close()
            if plain_session is not None:
                await plain_session.close()
            if eager is not None:
                await eager.aclose()
    assert result.final_output == "Done.", result.final_output
    assert len(steps) == len(codes), steps
    first, last = steps[0], steps[-1]
    return {
        "e2el_s": first["tool_done"] - t0,
        "after_last_token_s": first["tool_done"] - first["last_token"],
        "run_s": end - t0,
        "last_step_after_last_token_s": last["tool_done"] - last["last_token"],
        "events_unsent": first_request.events_unsent,  # never generated: the stream was cut
        "events_total": first_request.events_total,
    }


def _fragments(code: str) -> list[str]:
    text = json.dumps({"code": code})
    pieces = max(1, len(text) // CHARS_PER_TOKEN)
    return tool_fragments(code, -(-len(text) // pieces))


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


async def _measure() -> dict[str, Any]:
    backend = get_backend("local")()
    runs: dict[str, dict[str, list[dict[str, float]]]] = {}
    try:
        for name, code in _programs().items():
            runs[name] = {m: [] for m in MODES}
            for _ in range(REPEAT):
                for mode in MODES:  # side by side: the modes take turns
                    runs[name][mode].append(await _one_run(mode, [code], backend))
        overhead: dict[str, list[dict[str, float]]] = {m: [] for m in MODES[:2]}
        for _ in range(OVERHEAD_RUNS):
            for mode in MODES[:2]:
                # the second call of a run: the session is up, what remains is the adapter
                codes = ["x = 1\n", "print('ok', x)\n"]
                overhead[mode].append(await _one_run(mode, codes, backend))
    finally:
        await backend.aclose()
    return {"runs": runs, "overhead": overhead}


def _report(data: dict[str, Any], wall_s: float) -> str:
    runs: dict[str, dict[str, list[dict[str, float]]]] = data["runs"]
    names = [n for n in runs if n != "error_early"]
    lines = [
        "# OpenAI Agents SDK: run_code after the stream vs eager_rt "
        "(bench/test_bench_framework_openai_agents.py)",
        "",
        f"{len(names)} tool-calling programs from bench/tools_corpus streamed as one `run_code` "
        f"call at {TPS:g} tok/s through the unmodified SDK (`Runner.run_streamed`, "
        "`OpenAIResponsesModel` on the loopback server), local backend, "
        f"{REPEAT} run(s) per program and way, interleaved; wall time {wall_s / 60:.1f} min.",
        "",
        "## For the README",
        "",
        "| way | E2EL of the step / after the stream | time after the last token | "
        "per-step overhead (1 statement; a run's first step, a later step) |",
        "|---|---:|---:|---:|",
    ]
    base = "after the stream"

    def ratio(mode: str, key: str) -> float:
        return statistics.median(
            _median(runs[n][mode], key) / _median(runs[n][base], key) for n in names
        )

    overhead = data["overhead"]
    for mode in MODES:
        after = statistics.median(_median(runs[n][mode], "after_last_token_s") for n in names)
        step = (
            f"{_median(overhead[mode], 'after_last_token_s') * 1e3:.0f} ms first, "
            f"{_median(overhead[mode], 'last_step_after_last_token_s') * 1e3:.0f} ms next"
            if mode in overhead
            else "-"
        )
        lines.append(f"| {mode} | {ratio(mode, 'e2el_s'):.2f} | {after:.2f} s | {step} |")
    err = runs["error_early"]
    lines += [
        "",
        "A program that fails on its second statement (`error_early`): step E2EL "
        + ", ".join(f"{m} {_median(err[m], 'e2el_s'):.2f} s" for m in MODES)
        + " (eager_rt stops the model's stream at the failure: "
        + ", ".join(
            f"{m} {_median(err[m], 'events_unsent'):.0f} of {err[m][0]['events_total']:.0f}"
            for m in MODES
        )
        + " stream events never sent).",
        "",
        "## Per program (medians, seconds)",
        "",
        "| program | way | E2EL of the step | after the last token | whole run |",
        "|---|---|---:|---:|---:|",
    ]
    for name, by_mode in runs.items():
        for mode, rows in by_mode.items():
            lines.append(
                f"| {name} | {mode} | {_median(rows, 'e2el_s'):.2f} | "
                f"{_median(rows, 'after_last_token_s'):.2f} | {_median(rows, 'run_s'):.2f} |"
            )
    lines += ["", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in data["machine"].items()]
    lines.append(f"- load average after: {loadavg()}")
    return "\n".join(lines) + "\n"


def test_openai_agents_run_code_after_the_stream_vs_eager(benchmark: Any) -> None:
    set_tracing_disabled(True)
    info = machine(sdk=_sdk_version())
    box: dict[str, Any] = {}
    started = time.perf_counter()
    run: Callable[[], None] = lambda: box.update(asyncio.run(_measure()))  # noqa: E731
    benchmark.pedantic(run, rounds=1, iterations=1)
    data = {**box, "machine": info, "tps": TPS, "repeat": REPEAT}
    report = _report(data, time.perf_counter() - started)
    print("\n" + report)
    write_results(RESULTS_DIR / "framework_openai_agents.md", report, data)
    runs = data["runs"]
    for name, by_mode in runs.items():
        for mode, rows in by_mode.items():
            for row in rows:
                assert row["run_s"] >= row["e2el_s"] > row["after_last_token_s"] >= 0, (name, mode)


def _sdk_version() -> str:
    from importlib.metadata import version

    return f"openai-agents {version('openai-agents')}, openai {version('openai')}"
