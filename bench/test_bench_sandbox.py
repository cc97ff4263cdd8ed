"""What the local backend's bounds and its bubblewrap sandbox cost, side by side in one run.

Three ways of running the local worker, measured interleaved so a shift in the
shared machine's load weighs on all alike:

* ``unbounded``: no cgroup, no limits (``cgroup=False, memory_limit=None,
  pids_limit=None``): the local backend as it was before its bounds;
* ``bounded``: the defaults (a cgroup with 2 GiB and 512 tasks for the whole
  tree, where this process may make one);
* ``bwrap``: the defaults in a bubblewrap sandbox (``isolation="bwrap"``).

Start: ``session.start()`` to the worker's ready frame, then ``close()``
(timed apart), ``STARTS`` times each, round-robin. Per execution:
``execute("pass")`` on warm sessions, ``ROUNDS`` rounds of ``BATCH`` calls
alternating between them. The issue's targets: the sandbox starts at most
20 ms later than the local backend and costs nothing measurable per
execution; ``EAGER_RT_BENCH_STRICT=1`` asserts them (reported only, by
default: the machine is shared). Results: ``bench/results/sandbox.json`` and
``sandbox.md``.

    .venv/bin/pytest bench/test_bench_sandbox.py --benchmark-only -s
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
from eager_rt.backends.local import LocalSession

from bench.harness import RESULTS_DIR, env_flag, execute_pass, machine, ms_summary, write_results
from tests.provision.bwrap import require_bwrap
from tests.provision.cgroup import require_cgroup

pytestmark = pytest.mark.timeout(900)

VARIANTS: dict[str, dict[str, Any]] = {
    "unbounded": {"cgroup": False, "memory_limit": None, "pids_limit": None},
    "bounded": {},
    "bwrap": {"isolation": "bwrap"},
}
STARTS = 30
BATCH = 100
ROUNDS = 20
WARMUP = 200
START_BUDGET_S = 0.020  # the sandbox may start this much later than the local backend


@pytest.fixture(scope="module")
def measured(loop: asyncio.AbstractEventLoop) -> Iterator[dict[str, dict[str, list[float]]]]:
    require_cgroup()
    require_bwrap()
    start: dict[str, list[float]] = {v: [] for v in VARIANTS}
    close: dict[str, list[float]] = {v: [] for v in VARIANTS}
    execute: dict[str, list[float]] = {v: [] for v in VARIANTS}

    async def starts() -> None:
        for options in VARIANTS.values():  # a first start of each, not measured
            session = LocalSession(**options)
            await session.start(timeout=60)
            await session.close()
        for _ in range(STARTS):
            for variant, options in VARIANTS.items():
                session = LocalSession(**options)
                t0 = time.perf_counter()
                await session.start(timeout=60)
                t1 = time.perf_counter()
                await session.close()
                start[variant].append(t1 - t0)
                close[variant].append(time.perf_counter() - t1)

    async def executions() -> None:
        sessions = {v: LocalSession(**options) for v, options in VARIANTS.items()}
        try:
            for session in sessions.values():
                await session.start(timeout=60)
                for _ in range(WARMUP):
                    await execute_pass(session)
            for _ in range(ROUNDS):
                for variant, session in sessions.items():
                    for _ in range(BATCH):
                        t0 = time.perf_counter()
                        await execute_pass(session)
                        execute[variant].append(time.perf_counter() - t0)
        finally:
            for session in sessions.values():
                await session.close()

    report = machine()
    loop.run_until_complete(starts())
    loop.run_until_complete(executions())
    result = {"start": start, "close": close, "execute_pass": execute}
    yield result
    _write(result, report)


def _write(result: dict[str, dict[str, list[float]]], report: dict[str, str]) -> None:
    figures = {
        kind: {variant: ms_summary(values) for variant, values in per_variant.items()}
        for kind, per_variant in result.items()
    }
    median = {
        kind: {v: statistics.median(values) for v, values in per_variant.items()}
        for kind, per_variant in result.items()
    }
    least = {v: min(values) for v, values in result["start"].items()}
    deltas = {
        "start_bwrap_minus_bounded_ms": round(
            (median["start"]["bwrap"] - median["start"]["bounded"]) * 1e3, 2
        ),
        "start_bwrap_minus_unbounded_ms": round(
            (median["start"]["bwrap"] - median["start"]["unbounded"]) * 1e3, 2
        ),
        "start_bounded_minus_unbounded_ms": round(
            (median["start"]["bounded"] - median["start"]["unbounded"]) * 1e3, 2
        ),
        # the fastest start of each: what the machine's load adds least to
        "start_min_bwrap_minus_bounded_ms": round((least["bwrap"] - least["bounded"]) * 1e3, 2),
        "start_min_bounded_minus_unbounded_ms": round(
            (least["bounded"] - least["unbounded"]) * 1e3, 2
        ),
        "execute_pass_bwrap_over_unbounded": round(
            median["execute_pass"]["bwrap"] / median["execute_pass"]["unbounded"], 3
        ),
        "execute_pass_bounded_over_unbounded": round(
            median["execute_pass"]["bounded"] / median["execute_pass"]["unbounded"], 3
        ),
    }
    data = {"machine": report, "figures": figures, "deltas": deltas}
    lines = [
        "# Local backend: bounds and bubblewrap sandbox, side by side",
        "",
        ", ".join(f"{k}: {v}" for k, v in report.items()),
        "",
        "| variant | start median (ms) | start p90 | close median (ms) "
        "| execute('pass') median (ms) | p90 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for v in VARIANTS:
        s, c, e = figures["start"][v], figures["close"][v], figures["execute_pass"][v]
        lines.append(
            f"| {v} | {s['median_ms']} | {s['p90_ms']} | {c['median_ms']} "
            f"| {e['median_ms']} | {e['p90_ms']} |"
        )
    lines += ["", *(f"* {k}: {v}" for k, v in deltas.items()), ""]
    write_results(RESULTS_DIR / "sandbox.md", "\n".join(lines), data, indent=2)
    print("\n".join(lines))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_execute_pass(
    benchmark: Any,
    loop: asyncio.AbstractEventLoop,
    measured: dict[str, dict[str, list[float]]],
    variant: str,
) -> None:
    # pytest-benchmark times rounds of BATCH executions of this variant on its own ...
    session = LocalSession(**VARIANTS[variant])
    loop.run_until_complete(session.start(timeout=60))

    async def batch() -> None:
        for _ in range(BATCH):
            await execute_pass(session)

    try:
        benchmark.pedantic(lambda: loop.run_until_complete(batch()), rounds=5, iterations=1)
    finally:
        loop.run_until_complete(session.close())
    # ... the figures compared come from the interleaved measurement
    median = statistics.median(measured["execute_pass"][variant])
    base = statistics.median(measured["execute_pass"]["unbounded"])
    benchmark.extra_info.update(
        {
            "per_call_median_ms": round(median * 1e3, 3),
            "over_unbounded": round(median / base, 3),
            "start_median_ms": round(statistics.median(measured["start"][variant]) * 1e3, 2),
        }
    )
    if variant == "bwrap" and env_flag("EAGER_RT_BENCH_STRICT"):
        start = statistics.median(measured["start"]["bwrap"])
        local = statistics.median(measured["start"]["bounded"])
        assert start - local <= START_BUDGET_S, f"sandbox starts {start - local:.3f} s later"
