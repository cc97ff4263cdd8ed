"""What one host tool call costs the code on a session, beside ``execute("pass")``.

Used by the Jupyter and E2B benchmarks (``bench/test_bench_jupyter.py``,
``bench/test_bench_e2b.py``), the same way ``bench/test_bench_tool_calls.py``
measures the worker backends: on one warm session with a trivial sync tool
(``echo(x) -> x``) and a trivial async one defined, three cases run in
alternating blocks, so load on the machine hits every case alike:

* ``pass``: ``execute("pass")``, the per-execution overhead;
* ``sync call``: ``execute("echo(1)")``, one execution making one call;
* ``async call``: ``execute("await aecho(1)")`` (its wait happens on a thread).

A call's cost is the difference of the medians of block medians.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from eager_rt.executor import Session
from eager_rt.tools import ToolHost, as_tools, stub_source, tool

CASES = {"pass": "pass", "sync call": "echo(1)", "async call": "await aecho(1)"}


def echo(x: int) -> int:
    """Give ``x`` back."""
    return x


async def aecho(x: int) -> int:
    """Give ``x`` back, asynchronously."""
    return x


async def measure(session: Session, *, blocks: int, calls: int, warmup: int) -> dict[str, Any]:
    """Medians of block medians per case (seconds), the costs, and every block's median."""
    tools = as_tools([tool(echo, read_only=True), tool(aecho, read_only=True)])
    host = ToolHost(tools)
    assert (await session.execute(stub_source(tools), timeout=60)).ok
    for code in CASES.values():
        for _ in range(warmup):
            result = await session.execute(code, timeout=60, tools=host)
            assert result.ok, result
    medians: dict[str, list[float]] = {case: [] for case in CASES}
    for block in range(blocks):
        order = list(CASES.items()) if block % 2 == 0 else list(CASES.items())[::-1]
        for case, code in order:
            trips = []
            for _ in range(calls):
                t0 = time.perf_counter()
                await session.execute(code, timeout=60, tools=host)
                trips.append(time.perf_counter() - t0)
            medians[case].append(statistics.median(trips))
    row: dict[str, Any] = {case: statistics.median(values) for case, values in medians.items()}
    row["sync cost"] = row["sync call"] - row["pass"]
    row["async cost"] = row["async call"] - row["pass"]
    row["blocks"] = medians
    return row


def table(rows: dict[str, dict[str, Any]], *, blocks: int, calls: int, target: str) -> str:
    lines = [
        f"{blocks} alternating blocks of {calls} executions per case; median of block medians.",
        "",
        '| case | `execute("pass")` | one sync call | its cost | one async call | its cost '
        "| target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['pass'] * 1e3:.2f} ms | {r['sync call'] * 1e3:.2f} ms "
            f"| {r['sync cost'] * 1e3:.2f} ms | {r['async call'] * 1e3:.2f} ms "
            f"| {r['async cost'] * 1e3:.2f} ms | {target} |"
        )
    return "\n".join(lines) + "\n"
