"""The E2B backend offline: SDK overhead, sandbox start overlap, and what batching hides.

Everything runs against the local E2B server (``tests/e2b_server``: the real
SDK, E2B's HTTP protocol, real ipykernels), with a simulated network round
trip added per request where a case says so.

Part 1, per-execution overhead, ``execute("pass")`` timed call by call:

* ``local_backend``: eager_rt's own subprocess backend, the reference;
* ``jupyter_local``: an IPython kernel through ``jupyter_client`` (the kernel floor);
* ``e2b_0ms`` / ``e2b_20ms`` / ``e2b_80ms``: the E2B backend, SDK + HTTP/1.1 +
  the code-interpreter server + kernel, with 0, 20 and 80 ms added per request.

Part 2, sandbox creation overlapped with generation or not. The server boots a
sandbox in ``CREATE_S`` seconds (the real service takes a second or more with
its context); a short script is replayed at 50 tokens/s. "Sequential" starts the
session, then sends the request; "overlapped" hands ``arun_stream`` an unstarted
session, so the sandbox boots while tokens arrive. Wall time from the start of
the session (the moment the LLM request would go out) to the last output.

Part 3, the replay table with 20 and 80 ms added round trips: serial (generate
everything, then one execution), eager with dynamic batching, eager with one
execution per statement, on corpus scripts at 200 tokens/s. Every run gets a
fresh sandbox. ``EAGER_RT_BENCH_SCRIPTS=a.py,b.py`` picks scripts (default:
three synthetic ones, ~4 minutes on a 2-core box).

    .venv/bin/pytest bench/test_bench_e2b.py --benchmark-only -s

Tables print with ``-s`` and are written to ``bench/results/e2b.md`` / ``e2b.json``.

Part 4, host tools: what one trivial tool call costs the code (sync and async,
beside ``execute("pass")`` in alternating blocks, ``bench/tool_cost.py``) with 0
and 20 ms added per request. The issue's target is one network round trip per
call; ``execute("pass")`` is one round trip plus the kernel's work, so a
call's cost should stay under it. Written to ``bench/results/e2b_tools.md`` /
``.json`` (``-k tool``).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import pytest

from bench import tool_cost
from bench.batching import CELLS_HEADER, CELLS_RULE, BatchingRow, totals
from bench.corpus_index import is_dabench, script_names, script_text
from bench.harness import (
    RESULTS_DIR,
    backend_env,
    env_flag,
    env_list,
    machine_line,
    measure_pass,
    p90,
    replay_on,
    write_results,
)
from eager_rt.executor import Session
from eager_rt.registry import open_backend
from eager_rt.result import RunResult
from eager_rt.runtime import arun_stream
from eager_rt.sources.replay import replay
from tests.e2b_server import LocalE2B

pytestmark = pytest.mark.timeout(3600)

BATCH = 20
ROUNDS = 5
WARMUP = 10
CREATE_S = 1.5
OVERLAP_TPS = 50.0
TPS = 200.0
SERIAL_TPS = 5000.0
DELAYS_MS = (20, 80)
DEFAULT_SCRIPTS = 3

SAMPLES: dict[str, list[float]] = {}
OVERLAP: dict[str, list[float]] = {}
ROWS: list[ReplayRow] = []


@pytest.fixture(scope="module")
def server() -> Iterator[LocalE2B]:
    with LocalE2B() as s:
        yield s


# -- part 1 ----------------------------------------------------------------------------


def _measure(benchmark: Any, loop: asyncio.AbstractEventLoop, case: str, session: Session) -> None:
    SAMPLES[case] = measure_pass(
        benchmark, loop, session, batch=BATCH, rounds=ROUNDS, warmup=WARMUP
    )


@pytest.mark.parametrize("case", ["local_backend", "jupyter_local"])
def test_overhead_reference(benchmark: Any, loop: asyncio.AbstractEventLoop, case: str) -> None:
    session = open_backend("local" if case == "local_backend" else "jupyter").session()
    loop.run_until_complete(session.start(timeout=120))
    try:
        _measure(benchmark, loop, case, session)
    finally:
        loop.run_until_complete(session.close())


@pytest.mark.parametrize("delay_ms", [0, *DELAYS_MS])
def test_overhead_e2b(
    benchmark: Any, loop: asyncio.AbstractEventLoop, server: LocalE2B, delay_ms: int
) -> None:
    server.configure(delay_s=delay_ms / 1000)
    session = open_backend("e2b", **server.sdk_options()).session()
    try:
        loop.run_until_complete(session.start(timeout=120))
        _measure(benchmark, loop, f"e2b_{delay_ms}ms", session)
    finally:
        loop.run_until_complete(session.close())
        server.configure(delay_s=0.0)


def _overhead_table() -> str:
    floor_case = "jupyter_local" if "jupyter_local" in SAMPLES else next(iter(SAMPLES), None)
    if floor_case is None:
        return ""
    floor = statistics.median(SAMPLES[floor_case])
    lines = [
        f"per-execution cost, execute('pass'), {BATCH * ROUNDS} calls per case",
        f"| case | median (ms) | p90 (ms) | median - {floor_case} (ms) |",
        "|---|---:|---:|---:|",
    ]
    for case, s in SAMPLES.items():
        median = statistics.median(s)
        lines.append(
            f"| {case} | {median * 1e3:.2f} | {p90(s) * 1e3:.2f} | {(median - floor) * 1e3:+.2f} |"
        )
    return "\n".join(lines)


# -- part 2 ------------------------------------------------------------------------------

OVERLAP_SCRIPT = """\
import math
rows = [(i, math.sqrt(i)) for i in range(50)]
total = sum(r for _, r in rows)
print(f"total={total:.3f}")
squares = {i: i * i for i in range(10)}
print(max(squares.values()))
"""


async def _overlap_once(server: LocalE2B, overlapped: bool) -> float:
    session = open_backend("e2b", **server.sdk_options()).session()
    try:
        t0 = time.perf_counter()
        if not overlapped:
            await session.start(timeout=120)
        result = await arun_stream(replay(OVERLAP_SCRIPT, OVERLAP_TPS), session)
        wall = time.perf_counter() - t0
        assert result.status == "ok", result.error
        return wall
    finally:
        await session.close()


def test_sandbox_start_overlap(
    benchmark: Any, loop: asyncio.AbstractEventLoop, server: LocalE2B
) -> None:
    server.configure(create_delay_s=CREATE_S)
    try:
        walls: dict[str, list[float]] = {"sequential": [], "overlapped": []}

        def once() -> None:
            for name, overlapped in (("sequential", False), ("overlapped", True)):
                walls[name].append(loop.run_until_complete(_overlap_once(server, overlapped)))

        benchmark.pedantic(once, rounds=3, iterations=1)
    finally:
        server.configure(create_delay_s=0.0)
    OVERLAP.update(walls)
    benchmark.extra_info.update({k: round(statistics.median(v), 3) for k, v in walls.items()})
    assert statistics.median(walls["overlapped"]) < statistics.median(walls["sequential"])


def _overlap_table() -> str:
    if not OVERLAP:
        return ""
    gen = replay(OVERLAP_SCRIPT, OVERLAP_TPS).duration
    seq = statistics.median(OVERLAP["sequential"])
    ovl = statistics.median(OVERLAP["overlapped"])
    return "\n".join(
        [
            f"sandbox boot {CREATE_S:g} s, a {gen:.1f} s generation at {OVERLAP_TPS:g} tokens/s "
            "(median of 3, session start -> last output)",
            "| start | wall (s) |",
            "|---|---:|",
            f"| sequential (start, then generate) | {seq:.2f} |",
            f"| overlapped (start as the request goes out) | {ovl:.2f} |",
            f"| saved | {seq - ovl:.2f} ({100 * (1 - ovl / seq):.0f}%) |",
        ]
    )


# -- part 3 ----------------------------------------------------------------------------------


@dataclass(slots=True)
class ReplayRow(BatchingRow):
    delay_ms: int


def _plan() -> list[str]:
    names = [n for n in script_names() if not is_dabench(n)]
    chosen = env_list("EAGER_RT_BENCH_SCRIPTS")
    if chosen:
        return [n for n in script_names() if n in chosen]
    step = max(1, len(names) // DEFAULT_SCRIPTS)
    return names[::step][:DEFAULT_SCRIPTS]


async def _run(server: LocalE2B, text: str, tps: float, **options: Any) -> RunResult:
    session = open_backend("e2b", **server.sdk_options(), env=backend_env()).session()
    return await replay_on(session, replay(text, tps), **options)


async def _replay_rows(server: LocalE2B) -> list[ReplayRow]:
    rows = []
    for delay_ms in DELAYS_MS:
        server.configure(delay_s=delay_ms / 1000)
        try:
            for name in _plan():
                text = script_text(name)
                serial = await _run(server, text, SERIAL_TPS, mode="serial")
                batched = await _run(server, text, TPS, mode="eager", batching=True)
                unbatched = await _run(server, text, TPS, mode="eager", batching=False)
                runs = (serial, batched, unbatched)
                rows.append(
                    ReplayRow.of(
                        name,
                        replay(text, TPS).duration,
                        serial.nel_s,
                        runs,
                        status="/".join(r.status for r in runs),
                        delay_ms=delay_ms,
                    )
                )
        finally:
            server.configure(delay_s=0.0)
    return rows


def test_replay_table(benchmark: Any, loop: asyncio.AbstractEventLoop, server: LocalE2B) -> None:
    rows = benchmark.pedantic(
        lambda: loop.run_until_complete(_replay_rows(server)), rounds=1, iterations=1
    )
    ROWS.extend(rows)
    assert all(r.stdout_equal for r in rows), [r.script for r in rows if not r.stdout_equal]
    assert all(r.status == "ok/ok/ok" for r in rows), [(r.script, r.status) for r in rows]


def _replay_table(rows: list[ReplayRow]) -> str:
    lines = [
        f"replay on the local E2B server at {TPS:g} tokens/s with an added round trip "
        "(serial: generate, then one execution; eager: batched / one execution per statement)",
        f"| script | RTT (ms) | gen (s) {CELLS_HEADER}",
        f"|---|---:|---:|{CELLS_RULE}",
    ]
    for r in rows:
        lines.append(f"| {r.script} | {r.delay_ms} | {r.gen_nominal_s:.1f} {r.cells()}")
    for delay_ms in DELAYS_MS:
        mine = [r for r in rows if r.delay_ms == delay_ms]
        if not mine:
            continue
        t = totals(mine)
        lines.append(
            f"\nRTT {delay_ms} ms, {len(mine)} scripts: NEL hidden batched "
            f"{t['batched_hidden_pct']:.1f}% / unbatched {t['unbatched_hidden_pct']:.1f}%; "
            f"E2EL saving batched {t['batched_e2el_saving_pct']:.1f}% / unbatched "
            f"{t['unbatched_e2el_saving_pct']:.1f}%; executions "
            f"{t['batched_executions']:.0f} batched vs {t['unbatched_executions']:.0f} unbatched"
        )
    return "\n".join(lines)


# -- part 4: host tools ------------------------------------------------------------------

TOOL_BLOCKS = int(os.environ.get("EAGER_RT_BENCH_BLOCKS", "4"))
TOOL_CALLS = int(os.environ.get("EAGER_RT_BENCH_CALLS", "40"))
TOOL_DELAYS_MS = (0, 20)


def test_tool_call_cost(loop: asyncio.AbstractEventLoop, server: LocalE2B) -> None:
    """A trivial tool call against the local server, with and without an added round trip."""
    rows: dict[str, dict[str, Any]] = {}
    backend = open_backend("e2b", **server.sdk_options())
    try:
        for delay_ms in TOOL_DELAYS_MS:
            server.configure(delay_s=delay_ms / 1e3)
            rows[f"e2b_{delay_ms}ms"] = loop.run_until_complete(
                tool_cost.measure_fresh(
                    backend.session(), blocks=TOOL_BLOCKS, calls=TOOL_CALLS, warmup=5
                )
            )
    finally:
        server.configure(delay_s=0.0)
        loop.run_until_complete(backend.aclose())
    tool_cost.publish(
        "e2b_tools",
        "Host tool call cost, E2B against the local server (bench/test_bench_e2b.py -k tool)",
        rows,
        blocks=TOOL_BLOCKS,
        calls=TOOL_CALLS,
        target='one round trip (< "pass")',
    )
    for case, row in rows.items():
        assert row["sync call"] > 0 and row["pass"] > 0, case
        if env_flag("EAGER_RT_BENCH_STRICT"):
            assert row["sync cost"] <= row["pass"], (case, row)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    machine = f"machine: {machine_line()}"
    parts = [machine, _overhead_table(), _overlap_table(), _replay_table(ROWS) if ROWS else ""]
    text = "\n\n".join(p for p in parts if p) + "\n"
    print("\n" + text)
    if SAMPLES or OVERLAP or ROWS:
        data = {
            "machine": machine,
            "overhead_ms": {k: [round(x * 1e3, 3) for x in v] for k, v in SAMPLES.items()},
            "overlap_s": OVERLAP,
            "replay": [asdict(r) for r in ROWS],
        }
        write_results(RESULTS_DIR / "e2b.md", text, data)
