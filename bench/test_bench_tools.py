"""Tool-calling benchmark: serial, eager, eager with speculation, and pydantic-ai-harness.

Every program of ``bench/tools_corpus`` (code a model writes in code mode, over
simulated host tools with deterministic results and 0.2-2 s latencies) is
replayed as a token stream (``eager_rt.sources.replay``, cl100k pieces) and run:

* ``serial``: generate everything, then execute (once per program and
  backend, streamed fast; tools dominate and do not depend on the rate, so
  its E2EL at v tok/s is the replay's nominal generation time L/v plus its
  execution time);
* ``eager``: statements run as they complete, no speculation;
* ``spec literal``: eager, speculating read-only calls whose arguments are
  literals (or loops over literals), the session not read (its ``peek`` says
  it cannot);
* ``spec session``: eager with full speculation: session values read by
  ``Session.peek`` between executions too;
* ``harness eager`` / ``harness spec``: pydantic-ai-harness ``CodeMode(eager=True)``
  without and with ``speculate=[read-only tools]``, driven by a pydantic-ai
  ``FunctionModel`` that streams the same pieces on the same schedule as the
  ``code`` argument of its ``run_code`` call; E2EL ends when ``run_code``
  has returned. Its Monty sandbox runs a subset of Python and takes keyword
  arguments only: programs it rejects are reported, and the side-by-side
  table keeps the programs it ran.

Per run: E2EL; E2EL / serial; the share of tool time hidden (1 - the time
after generation ended during which a call the code used was running /
the same for serial); calls speculated (from literals, from session values),
claimed, wasted; side-effecting calls (must equal serial's; never
speculative); whether stdout equals serial's; and E2EL against the run's own
bound: the best any schedule could do, ``max(L/v, max over calls of (when
the text of a call of that tool had arrived + the call's latency))``, which
ignores data dependencies, so it is optimistic (a true lower bound).

Plans (runs are sequential: the machine has 2 shared cores):

* default: every program at 50 tok/s on local, harness beside it (about 6 min);
* ``EAGER_RT_BENCH_FULL=1``: 20, 50 and 100 tok/s on local and Docker
  (``eager-rt-python:local``), harness at every rate (about 40 min);
* ``EAGER_RT_BENCH_TOOLS_BACKENDS=local,docker``, ``EAGER_RT_BENCH_TOOLS_RATES=20,50``
  and ``EAGER_RT_BENCH_TOOLS_PROGRAMS=a,b`` narrow or widen either plan;
  ``EAGER_RT_BENCH_TOOLS_HARNESS=0`` leaves the harness out.

Outputs: ``bench/results/tools_<plan>.md`` and ``.json``.
``EAGER_RT_BENCH_STRICT=1`` turns the targets (speculation E2EL <= 0.6x serial
at 50 tok/s, corpus median; no wasted side effect; outputs identical) into
assertions.

    .venv/bin/pytest bench/test_bench_tools.py -s
"""

from __future__ import annotations

import ast
import asyncio
import bisect
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.harness import RESULTS_DIR, env_flag, env_list, loadavg, machine, write_results
from bench.tools_corpus import (
    SIDE_EFFECTS,
    TOOL_NAMES,
    TOOLS,
    LoggedCall,
    calls_log,
    latency,
    program_names,
    program_text,
)
from eager_rt.executor import Backend, ExecResult, OutputCallback, Session, ToolHandler
from eager_rt.registry import get_backend
from eager_rt.result import RunResult
from eager_rt.runtime import arun_stream
from eager_rt.sources.replay import Replay, replay
from eager_rt.speculation import summarize

pytestmark = pytest.mark.timeout(4 * 3600)

RATES: tuple[float, ...] = (20.0, 50.0, 100.0)
SERIAL_TPS = 5000.0
TARGET_RATIO = 0.6
DOCKER_OPTIONS: dict[str, Any] = {"image": "eager-rt-python:local"}
EAGER_VARIANTS = ("eager", "spec literal", "spec session")
HARNESS_VARIANTS = ("harness eager", "harness spec")
READ_ONLY = sorted(TOOL_NAMES - SIDE_EFFECTS)


@dataclass(frozen=True, slots=True)
class Plan:
    programs: tuple[str, ...]
    rates: tuple[float, ...]
    backends: tuple[str, ...]
    harness: bool
    full: bool

    @classmethod
    def from_env(cls) -> Plan:
        full = env_flag("EAGER_RT_BENCH_FULL")
        programs = program_names()
        chosen = env_list("EAGER_RT_BENCH_TOOLS_PROGRAMS")
        if chosen:
            unknown = set(chosen) - set(programs)
            if unknown:
                raise ValueError(f"unknown programs: {sorted(unknown)}")
            programs = [p for p in programs if p in chosen]
        rates = tuple(float(r) for r in env_list("EAGER_RT_BENCH_TOOLS_RATES")) or (
            RATES if full else (50.0,)
        )
        backends = tuple(env_list("EAGER_RT_BENCH_TOOLS_BACKENDS")) or (
            ("local", "docker") if full else ("local",)
        )
        return cls(
            programs=tuple(programs),
            rates=rates,
            backends=backends,
            harness=env_flag("EAGER_RT_BENCH_TOOLS_HARNESS", default=True),
            full=full,
        )

    @property
    def name(self) -> str:
        return "full" if self.full else "default"

    def describe(self) -> str:
        rates = ", ".join(f"{r:g}" for r in self.rates)
        harness = "; pydantic-ai-harness CodeMode beside it" if self.harness else ""
        return (
            f"{len(self.programs)} programs at {rates} tok/s on {', '.join(self.backends)}{harness}"
        )


@dataclass(slots=True)
class Row:
    program: str
    backend: str  #: eager_rt backend, or "monty" for the harness
    variant: str
    tps: float
    gen_s: float  #: nominal generation time L/v
    e2el_s: float
    serial_e2el_s: float
    bound_s: float
    hidden: float | None  #: share of serial's exposed tool time hidden
    literal: int = 0
    session: int = 0
    claimed: int = 0
    wasted: int = 0
    side_effects: int = 0
    side_effects_serial: int = 0
    wasted_side_effects: int = 0
    stdout_equal: bool = False
    status: str = ""
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.e2el_s / self.serial_e2el_s

    @property
    def over_bound(self) -> float:
        return self.e2el_s / self.bound_s


@dataclass(slots=True)
class Report:
    plan: Plan
    machine: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  #: harness: program -> why
    wall_s: float = 0.0


# ------------------------------------------------------------------ helpers


class _NoPeek(Session):
    """A session that cannot read values: speculation falls back to literal arguments."""

    def __init__(self, inner: Session) -> None:
        self.inner = inner
        self.backend_name = inner.backend_name  # type: ignore[misc]

    @property
    def alive(self) -> bool:
        return self.inner.alive

    async def start(self, timeout: float | None = None) -> None:
        await self.inner.start(timeout)

    async def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
        tools: ToolHandler | None = None,
    ) -> ExecResult:
        return await self.inner.execute(code, timeout=timeout, on_output=on_output, tools=tools)

    async def interrupt(self) -> None:
        await self.inner.interrupt()

    async def restart(self, timeout: float | None = None) -> None:
        await self.inner.restart(timeout)

    async def close(self) -> None:
        await self.inner.close()


def _union(intervals: Sequence[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def _exposed(calls: Sequence[tuple[float, float]], gen_end: float) -> float:
    """Tool time after generation ended: what the user waits for."""
    return _union([(max(a, gen_end), b) for a, b in calls if b > gen_end])


def _hidden(
    calls: Sequence[tuple[float, float]], gen_end: float, serial_exposed: float
) -> float | None:
    """The share of serial's exposed tool time these calls hid (None: serial exposed none)."""
    return 1 - _exposed(calls, gen_end) / serial_exposed if serial_exposed > 0 else None


def _arrivals(source: Replay) -> tuple[list[int], float]:
    ends, offset = [], 0
    for piece in source.pieces:
        offset += len(piece)
        ends.append(offset)
    return ends, source.tps


def _call_ready_times(code: str, source: Replay) -> dict[str, float]:
    """For each tool, when the text of its first complete call had arrived (s from t0)."""
    ends, tps = _arrivals(source)
    lines = code.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    ready: dict[str, float] = {}
    for node in ast.walk(ast.parse(code)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id not in TOOL_NAMES or node.end_lineno is None:
            continue
        line = lines[node.end_lineno - 1]
        last = starts[node.end_lineno - 1] + len(line.encode()[: node.end_col_offset].decode()) - 1
        piece = bisect.bisect_right(ends, last)
        t = source.ttft + piece / tps
        ready[node.func.id] = min(t, ready.get(node.func.id, t))
    return ready


def _bound(code: str, source: Replay, calls: Sequence[tuple[str, dict[str, Any]]]) -> float:
    """The best any schedule could do: no call before its text, none faster than its latency."""
    ready = _call_ready_times(code, source)
    tools = [ready[name] + latency(name, **args) for name, args in calls if name in ready]
    return max([source.duration, *tools])


def _side_effects(result: RunResult) -> int:
    return sum(1 for c in result.tool_calls if c.tool in SIDE_EFFECTS and c.claimed)


@contextlib.asynccontextmanager
async def _session(backend: Backend) -> AsyncIterator[Session]:
    session = backend.session()
    await session.start(timeout=120)
    try:
        yield session
    finally:
        await session.close()


async def _run(backend: Backend, source: Replay, **options: Any) -> RunResult:
    peek = options.pop("peek", True)
    async with _session(backend) as session:
        target = session if peek else _NoPeek(session)
        return await asyncio.wait_for(
            arun_stream(source, target, tools=TOOLS, **options), source.duration + 120
        )


# ------------------------------------------------------------------ pydantic-ai-harness


def harness_version() -> str | None:
    try:
        from importlib.metadata import version

        harness, monty = version("pydantic-ai-harness"), version("pydantic-monty")
        return f"pydantic-ai-harness {harness}, pydantic-monty {monty}"
    except Exception:  # noqa: BLE001 - not installed: the comparison is skipped
        return None


@dataclass(slots=True)
class HarnessRun:
    e2el_s: float
    output: str | None  #: printed output, None when run_code failed
    error: str
    calls: list[LoggedCall]
    t0: float  #: time.monotonic at the stream's start
    gen_end: float  #: s from t0
    stats: dict[str, int]


async def _harness(code: str, tps: float, speculate: bool) -> HarnessRun:
    """One ``run_code`` call streamed by a FunctionModel at ``tps``, through CodeMode."""
    from pydantic_ai.messages import ModelMessage
    from pydantic_ai.models.function import AgentInfo
    from pydantic_ai_harness import CodeMode

    from bench.pydantic_ai_stream import run_agent, run_code_call, tool_returns

    source = replay(code, tps)
    state: dict[str, Any] = {}

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        returns = tool_returns(messages)
        if returns:
            state["done"] = time.monotonic()
            state["content"] = returns[-1].content
            yield "done"
            return
        t0 = state["t0"] = time.monotonic()
        async for delta in run_code_call(source, t0, "c1"):
            yield delta
        state["gen_end"] = time.monotonic() - t0

    mode = CodeMode(eager=True, speculate=READ_ONLY if speculate else None)
    first = len(calls_log())
    await run_agent(stream, mode, source.duration + 120)
    content = state.get("content")
    output = content.get("output", "") if isinstance(content, dict) else None
    stats = mode.speculation_stats
    return HarnessRun(
        e2el_s=state["done"] - state["t0"],
        output=output,
        error="" if output is not None else str(content)[:300],
        calls=list(calls_log()[first:]),
        t0=state["t0"],
        gen_end=state["gen_end"],
        stats={
            "launched": stats.launched,
            "adopted": stats.adopted,
            "evicted": stats.evicted,
        },
    )


# ------------------------------------------------------------------ the bench


async def _bench_program(
    backend_name: str, backend: Backend, report: Report, name: str, harness: bool
) -> None:
    code = program_text(name)
    serial = await _run(backend, replay(code, SERIAL_TPS), mode="serial")
    serial_exec = serial.e2el_s - serial.gen_s
    serial_calls = [(c.tool, c.arguments) for c in serial.tool_calls]
    serial_intervals = [(c.started, c.ended or c.started) for c in serial.tool_calls]
    serial_exposed = _exposed(serial_intervals, serial.gen_s)
    serial_effects = _side_effects(serial)
    options: dict[str, dict[str, Any]] = {
        "eager": {},
        "spec literal": {"speculate": True, "peek": False},
        "spec session": {"speculate": True},
    }
    for tps in report.plan.rates:
        probe = replay(code, tps)
        bound = _bound(code, probe, serial_calls)
        serial_e2el = probe.duration + serial_exec
        for variant, extra in options.items():
            source = replay(code, tps)
            result = await _run(backend, source, **extra)
            used = [(c.started, c.ended or c.started) for c in result.tool_calls if c.claimed]
            summary = summarize(result.tool_calls)
            report.rows.append(
                Row(
                    program=name,
                    backend=backend_name,
                    variant=variant,
                    tps=tps,
                    gen_s=source.duration,
                    e2el_s=result.e2el_s,
                    serial_e2el_s=serial_e2el,
                    bound_s=bound,
                    hidden=_hidden(used, result.gen_s, serial_exposed),
                    literal=summary.literal,
                    session=summary.session,
                    claimed=summary.claimed,
                    wasted=summary.wasted,
                    side_effects=_side_effects(result),
                    side_effects_serial=serial_effects,
                    wasted_side_effects=sum(
                        1 for c in result.tool_calls if c.speculative and not c.read_only
                    ),
                    stdout_equal=result.stdout == serial.stdout,
                    status=f"{serial.status}/{result.status}",
                )
            )
        if not harness or name in report.rejected:
            continue
        for variant in HARNESS_VARIANTS:
            run = await _harness(code, tps, speculate=variant == "harness spec")
            if run.output is None:
                report.rejected[name] = run.error.replace("\n", " ")[:200]
                break
            used = [(c.started - run.t0, (c.ended or c.started) - run.t0) for c in run.calls]
            report.rows.append(
                Row(
                    program=name,
                    backend="monty",
                    variant=variant,
                    tps=tps,
                    gen_s=probe.duration,
                    e2el_s=run.e2el_s,
                    serial_e2el_s=serial_e2el,
                    bound_s=bound,
                    hidden=_hidden(used, run.gen_end, serial_exposed),
                    literal=run.stats["launched"],
                    claimed=run.stats["adopted"],
                    wasted=run.stats["launched"] - run.stats["adopted"],
                    side_effects=sum(1 for c in run.calls if c.name in SIDE_EFFECTS),
                    side_effects_serial=serial_effects,
                    stdout_equal=run.output == serial.stdout,
                    status=f"{serial.status}/ok",
                )
            )


async def _bench(plan: Plan) -> Report:
    report = Report(plan=plan, machine=_machine())
    started = time.perf_counter()
    harness = plan.harness and harness_version() is not None
    for index, backend_name in enumerate(plan.backends):
        options = DOCKER_OPTIONS if backend_name == "docker" else {}
        backend = get_backend(backend_name)(**options)
        try:
            for name in plan.programs:
                # the harness runs in-process (Monty): once, beside the first backend
                await _bench_program(backend_name, backend, report, name, harness and index == 0)
        finally:
            await backend.aclose()
    report.wall_s = time.perf_counter() - started
    report.machine["load average after"] = loadavg()
    return report


# ------------------------------------------------------------------ reporting


def _machine() -> dict[str, str]:
    harness = harness_version() or "not installed (pip install 'pydantic-ai-harness[code-mode]')"
    return machine(harness=harness)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _summary(rows: list[Row]) -> dict[str, Any]:
    hidden = [r.hidden for r in rows if r.hidden is not None]
    return {
        "n": len(rows),
        "serial_s": statistics.median(r.serial_e2el_s for r in rows),
        "e2el_s": statistics.median(r.e2el_s for r in rows),
        "ratio_median": statistics.median(r.ratio for r in rows),
        "ratio_sum": sum(r.e2el_s for r in rows) / sum(r.serial_e2el_s for r in rows),
        "hidden_median": statistics.median(hidden) if hidden else None,
        "over_bound_median": statistics.median(r.over_bound for r in rows),
        "literal": sum(r.literal for r in rows),
        "session": sum(r.session for r in rows),
        "claimed": sum(r.claimed for r in rows),
        "wasted": sum(r.wasted for r in rows),
        "side_effects_equal": sum(r.side_effects == r.side_effects_serial for r in rows),
        "wasted_side_effects": sum(r.wasted_side_effects for r in rows),
        "stdout_equal": sum(r.stdout_equal for r in rows),
    }


def _table(rows: list[Row], variants: Sequence[str], md: list[str]) -> None:
    md.append(
        "| backend | tok/s | variant | programs | median serial E2EL (s) | median E2EL (s) "
        "| E2EL / serial (median) | (sum) | tool time hidden (median) | E2EL / bound (median) "
        "| speculated literal + session | claimed | wasted | side effects = serial "
        "| wasted side effects | stdout = serial |"
    )
    md.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    keys = sorted({(r.backend, r.tps) for r in rows}, key=lambda k: (k[0] == "monty", k))
    for backend, tps in keys:
        for variant in variants:
            group = [r for r in rows if (r.backend, r.tps, r.variant) == (backend, tps, variant)]
            if not group:
                continue
            s = _summary(group)
            spec = (
                "-"
                if variant == "eager" or variant == "harness eager"
                else (f"{s['literal']} + {s['session']}")
            )
            md.append(
                f"| {backend} | {tps:g} | {variant} | {s['n']} | {s['serial_s']:.2f} "
                f"| {s['e2el_s']:.2f} | {s['ratio_median']:.2f} | {s['ratio_sum']:.2f} "
                f"| {_pct(s['hidden_median'])} | {s['over_bound_median']:.2f} | {spec} "
                f"| {s['claimed']} | {s['wasted']} | {s['side_effects_equal']}/{s['n']} "
                f"| {s['wasted_side_effects']} | {s['stdout_equal']}/{s['n']} |"
            )


def _targets(report: Report) -> list[tuple[str, bool]]:
    out = []
    for backend in report.plan.backends:
        rows = [
            r
            for r in report.rows
            if r.backend == backend and r.tps == 50.0 and r.variant == "spec session"
        ]
        if rows:
            median = statistics.median(r.ratio for r in rows)
            out.append(
                (
                    f"{backend}, 50 tok/s: eager + speculation E2EL <= {TARGET_RATIO}x serial "
                    f"on the corpus median ({median:.2f}x)",
                    median <= TARGET_RATIO,
                )
            )
    ours = [r for r in report.rows if r.backend != "monty"]
    out.append(
        (
            "zero wasted non-read-only calls, side effects as many as serial, every run",
            all(
                r.wasted_side_effects == 0 and r.side_effects == r.side_effects_serial for r in ours
            ),
        )
    )
    out.append(("outputs identical to serial, every run", all(r.stdout_equal for r in ours)))
    return out


def render(report: Report) -> str:
    plan = report.plan
    env = "EAGER_RT_BENCH_FULL=1 " if plan.full else ""
    md = ["# Tool-calling benchmark: serial, eager, speculation, pydantic-ai-harness", ""]
    md.append(
        f"Produced by `{env}.venv/bin/pytest bench/test_bench_tools.py -s` (plan: {plan.name}; "
        f"wall time {report.wall_s / 60:.1f} min): {plan.describe()}."
    )
    md += ["", "## For the README", ""]
    _readme(report, md)
    md += ["", "## Machine", ""]
    md += [f"- {k}: {v}" for k, v in report.machine.items()]
    md += ["", "## Summary", ""]
    _table(report.rows, [*EAGER_VARIANTS, *HARNESS_VARIANTS], md)
    md.append("")
    md.append(
        "E2EL / serial: serial E2EL at v tok/s = L/v + the program's serial execution time "
        "(generation first, then one execution). Tool time hidden = 1 - (time after "
        "generation ended during which a call the code used was running) / (the same for "
        "serial); a negative share means tool time came after generation that serial did not "
        "have (never expected). Bound = max(L/v, max over the program's calls of (the arrival "
        "of the first complete call of that tool in the stream + the call's latency)): it "
        "ignores data dependencies, so no schedule can beat it. Harness rows: "
        "`speculated` counts its launches, `claimed` its adopted launches, `wasted` the rest."
    )
    monty = {r.program for r in report.rows if r.backend == "monty"}
    if monty:
        md += [
            "",
            "## Side by side with pydantic-ai-harness (the programs its Monty sandbox ran)",
            "",
        ]
        md.append(
            f"{len(monty)} of {len(plan.programs)} programs: CodeMode's Monty sandbox rejected "
            "the others (positional tool arguments, sync tools, `ToolError`, methods Monty lacks)."
        )
        md.append("")
        same = [r for r in report.rows if r.program in monty]
        _table(same, [*EAGER_VARIANTS, *HARNESS_VARIANTS], md)
        md += ["", "### Per program, 50 tok/s (E2EL in seconds)", ""]
        _per_program(report, sorted(monty), md)
    if report.rejected:
        md += ["", "### Programs the harness did not run", ""]
        md += [f"- {name}: {why}" for name, why in sorted(report.rejected.items())]
    md += ["", "## Targets (issue 15)", ""]
    md += [f"- [{'x' if ok else ' '}] {text}" for text, ok in _targets(report)]
    md += ["", "## Every program, 50 tok/s (E2EL in seconds)", ""]
    _per_program(report, list(plan.programs), md)
    return "\n".join(md) + "\n"


def _readme(report: Report, md: list[str]) -> None:
    """One compact table: each way of running, on the programs both runtimes ran."""
    monty = {r.program for r in report.rows if r.backend == "monty"}
    common = [r for r in report.rows if not monty or r.program in monty]
    backend = report.plan.backends[0]
    rates = sorted({r.tps for r in common})
    labels = {
        "eager": "eager_rt eager",
        "spec literal": "eager_rt eager + speculation (literal arguments)",
        "spec session": "eager_rt eager + speculation (literals and session values)",
        "harness eager": "pydantic-ai-harness CodeMode(eager=True)",
        "harness spec": "pydantic-ai-harness CodeMode(eager=True, speculate=read-only tools)",
    }
    md.append(
        f"{len({r.program for r in common})} tool-calling programs (tools of 0.2-2 s), "
        f"replayed at {', '.join(f'{t:g}' for t in rates)} tok/s; eager_rt on the "
        f"{backend} backend. Median over programs of E2EL / serial E2EL (lower is better), "
        "median share of tool time hidden at 50 tok/s, median E2EL / the run's own bound, "
        "speculative calls wasted (all read-only)."
    )
    md.append("")
    md.append(
        "| how | "
        + " | ".join(f"E2EL / serial @ {t:g} tok/s" for t in rates)
        + " | tool time hidden | E2EL / bound | wasted calls |"
    )
    md.append("|---|" + "---:|" * len(rates) + "---:|---:|---:|")
    base = [r for r in common if r.variant == "eager" and r.backend == backend]
    if base:
        at50 = [r for r in base if r.tps == 50.0] or base
        bound = statistics.median(r.serial_e2el_s / r.bound_s for r in at50)
        md.append(
            "| serial (generate, then run) | "
            + " | ".join("1.00" for _ in rates)
            + f" | 0% | {bound:.2f} | 0 |"
        )
    for variant, label in labels.items():
        want = "monty" if variant.startswith("harness") else backend
        rows = [r for r in common if r.variant == variant and r.backend == want]
        if not rows:
            continue
        ratios = []
        for t in rates:
            at = [r.ratio for r in rows if r.tps == t]
            ratios.append(f"{statistics.median(at):.2f}" if at else "-")
        at50 = [r for r in rows if r.tps == 50.0] or rows
        hidden = [r.hidden for r in at50 if r.hidden is not None]
        md.append(
            f"| {label} | "
            + " | ".join(ratios)
            + f" | {_pct(statistics.median(hidden) if hidden else None)} "
            f"| {statistics.median(r.over_bound for r in at50):.2f} "
            f"| {sum(r.wasted for r in rows)} |"
        )
    everything = [r for r in report.rows if r.variant == "spec session" and r.backend == backend]
    if monty and everything:
        parts = []
        for t in rates:
            at = [r.ratio for r in everything if r.tps == t]
            if at:
                parts.append(f"{statistics.median(at):.2f} at {t:g} tok/s")
        md.append("")
        md.append(
            f"On all {len({r.program for r in everything})} programs (including those Monty "
            f"rejects), eager_rt with speculation: {', '.join(parts)} (median E2EL / serial)."
        )


def load(path: Path) -> Report:
    """A report back from its JSON dump, to render it again."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    derived = {"ratio", "over_bound"}
    rows = [Row(**{k: v for k, v in r.items() if k not in derived}) for r in raw["runs"]]
    programs = tuple(sorted({r.program for r in rows if r.backend != "monty"}))
    plan = Plan(
        programs=programs,
        rates=tuple(sorted({r.tps for r in rows})),
        backends=tuple(dict.fromkeys(r.backend for r in rows if r.backend != "monty")),
        harness=any(r.backend == "monty" for r in rows),
        full=path.stem.endswith("full"),
    )
    report = Report(plan=plan, machine=raw["machine"], rows=rows)
    report.rejected = raw.get("rejected_by_harness", {})
    report.wall_s = raw["wall_s"]
    return report


def _per_program(report: Report, programs: list[str], md: list[str]) -> None:
    backends = [b for b in report.plan.backends]
    columns = [(b, v) for b in backends for v in EAGER_VARIANTS]
    if any(r.backend == "monty" for r in report.rows):
        columns += [("monty", v) for v in HARNESS_VARIANTS]
    md.append(
        "| program | serial | bound | "
        + " | ".join(f"{b} {v}" for b, v in columns)
        + " | spec: literal + session / wasted |"
    )
    md.append("|---|---:|---:|" + "---:|" * len(columns) + "---:|")
    for name in programs:
        rows = {(r.backend, r.variant): r for r in report.rows if r.program == name and r.tps == 50}
        if not rows:
            continue
        first = next(iter(rows.values()))
        cells = []
        for key in columns:
            r = rows.get(key)
            cells.append("-" if r is None else f"{r.e2el_s:.2f}" + ("" if r.stdout_equal else "!"))
        spec = rows.get((backends[0], "spec session"))
        spec_text = "-" if spec is None else f"{spec.literal} + {spec.session} / {spec.wasted}"
        md.append(
            f"| {name} | {first.serial_e2el_s:.2f} | {first.bound_s:.2f} | "
            + " | ".join(cells)
            + f" | {spec_text} |"
        )
    md.append("")
    md.append("`!`: output differs from serial.")


def _dump(report: Report) -> dict[str, Any]:
    return {
        "machine": report.machine,
        "plan": report.plan.describe(),
        "wall_s": report.wall_s,
        "rejected_by_harness": report.rejected,
        "runs": [{**asdict(r), "ratio": r.ratio, "over_bound": r.over_bound} for r in report.rows],
    }


# ------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def report() -> Iterator[Report]:
    plan = Plan.from_env()
    if not plan.programs:
        pytest.skip("no program selected")
    result = asyncio.run(_bench(plan))
    write_results(RESULTS_DIR / f"tools_{plan.name}.md", render(result), _dump(result))
    yield result


def test_report_written(report: Report, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print("\n" + render(report))
    ours = [r for r in report.rows if r.backend != "monty"]
    assert {r.program for r in ours} == set(report.plan.programs)


def test_side_effects_and_outputs(report: Report) -> None:
    """Never a speculative side effect, never a side effect more or less, never other output."""
    ours = [r for r in report.rows if r.backend != "monty"]
    assert all(r.wasted_side_effects == 0 for r in ours)
    assert all(r.side_effects == r.side_effects_serial for r in ours)
    assert all(r.stdout_equal for r in ours), [r.program for r in ours if not r.stdout_equal]


def test_targets(report: Report) -> None:
    if not env_flag("EAGER_RT_BENCH_STRICT"):
        pytest.skip("timing targets are reported, asserted only with EAGER_RT_BENCH_STRICT=1")
    missed = [text for text, ok in _targets(report) if not ok]
    assert not missed, missed
