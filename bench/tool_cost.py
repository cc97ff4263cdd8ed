"""What one host tool call costs the code on a session, beside ``execute("pass")``.

Used by ``bench/test_bench_tool_calls.py`` (every backend, the published
table), by the Jupyter and E2B benchmarks, and by ``bench/ab_tool_cost.py``
(two revisions side by side). On one warm session with trivial tools defined
(``echo(x) -> x`` as a sync tool on the host's threads, the same function
declared ``inline=True``, and an async one), the cases run in alternating
blocks, so load on the machine hits every case alike:

* ``pass``: ``execute("pass")``, the per-execution overhead;
* ``sync call``: ``execute("echo(1)")``, one execution making one call of a
  sync tool, which runs on one of the host's tool threads;
* ``inline call``: ``execute("iecho(1)")``, the same with the tool declared
  ``inline=True`` (run on the host's event loop, no thread hop);
* ``async call``: ``execute("await aecho(1)")``, an async tool (in the
  sandbox the async stub's wait happens on a thread).

A call's cost is the difference of the medians of block medians. A revision
without ``inline`` (measured by the A/B driver) skips that case.
"""

from __future__ import annotations

import contextlib
import inspect
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

from eager_rt.executor import Backend, Session
from eager_rt.registry import get_backend, open_backend
from eager_rt.tools import ToolHost, as_tools, stub_source, tool

CASES = {
    "pass": "pass",
    "sync call": "echo(1)",
    "inline call": "iecho(1)",
    "async call": "await aecho(1)",
}
#: the latency the local E2B server adds to every request of the ``e2b_20ms`` row
E2B_DELAY_S = 0.02
#: the cost columns: (case, its cost's key in a row)
COSTS = (("sync call", "sync cost"), ("inline call", "inline cost"), ("async call", "async cost"))


def echo(x: int) -> int:
    """Give ``x`` back."""
    return x


async def aecho(x: int) -> int:
    """Give ``x`` back, asynchronously."""
    return x


@contextlib.asynccontextmanager
async def backend_for(name: str) -> AsyncIterator[Backend]:
    """A ready backend for the row ``name``, local services started on loopback.

    ``local``, ``docker``, ``podman`` (the test image), ``jupyter`` (a local
    kernel), ``gateway`` (a Kernel Gateway), ``e2b`` (the real SDK against
    the local E2B server) and ``e2b_20ms`` (the same, 20 ms added per request).
    """
    async with contextlib.AsyncExitStack() as stack:
        if name in ("docker", "podman"):
            from tests.provision.docker import TEST_IMAGE

            backend = get_backend(name)(image=TEST_IMAGE)
        elif name == "gateway":
            from tests.provision.jupyter import running_gateway

            gateway = stack.enter_context(running_gateway())
            backend = open_backend("jupyter", url=gateway.url, token=gateway.token)
        elif name.startswith("e2b"):
            from tests.e2b_server import LocalE2B

            server = stack.enter_context(LocalE2B(keepalive_s=1.0))
            server.configure(delay_s=E2B_DELAY_S if name == "e2b_20ms" else 0.0)
            backend = open_backend("e2b", **server.sdk_options())
        else:
            backend = get_backend(name)()
        stack.push_async_callback(backend.aclose)
        yield backend


def _host() -> tuple[ToolHost, dict[str, str]]:
    """The trivial tools, and the cases this revision of eager_rt can run."""
    declared = [tool(echo, read_only=True), tool(aecho, read_only=True)]
    cases = dict(CASES)
    if "inline" in inspect.signature(tool).parameters:
        declared.append(tool(echo, name="iecho", read_only=True, inline=True))
    else:
        del cases["inline call"]
    return ToolHost(as_tools(declared)), cases


async def measure(session: Session, *, blocks: int, calls: int, warmup: int) -> dict[str, Any]:
    """Medians of block medians per case (seconds), the costs, and every block's median."""
    host, cases = _host()
    try:
        assert (await session.execute(stub_source(host.tools), timeout=60)).ok
        for code in cases.values():
            for _ in range(warmup):
                result = await session.execute(code, timeout=60, tools=host)
                assert result.ok, result
        medians: dict[str, list[float]] = {case: [] for case in cases}
        for block in range(blocks):
            order = list(cases.items()) if block % 2 == 0 else list(cases.items())[::-1]
            for case, code in order:
                trips = []
                for _ in range(calls):
                    t0 = time.perf_counter()
                    await session.execute(code, timeout=60, tools=host)
                    trips.append(time.perf_counter() - t0)
                medians[case].append(statistics.median(trips))
    finally:
        aclose = getattr(host, "aclose", None)  # a revision before ToolHost owned its threads
        if aclose is not None:
            await aclose()
    row: dict[str, Any] = {case: statistics.median(values) for case, values in medians.items()}
    for case, cost in COSTS:
        if case in row:
            row[cost] = row[case] - row["pass"]
    row["blocks"] = medians
    return row


async def measure_fresh(
    session: Session, *, blocks: int, calls: int, warmup: int
) -> dict[str, Any]:
    """:func:`measure` on ``session``, started here and closed after."""
    await session.start(timeout=120)
    try:
        return await measure(session, blocks=blocks, calls=calls, warmup=warmup)
    finally:
        await session.close()


def publish(
    stem: str, title: str, rows: dict[str, dict[str, Any]], *, blocks: int, calls: int, target: str
) -> None:
    """Print ``rows`` as a table under ``title``; write ``bench/results/<stem>.md``, ``.json``."""
    # imported here: the A/B driver's children import this module against old revisions
    from bench.harness import RESULTS_DIR, machine_line, write_results

    text = f"# {title}\n\nmachine: {machine_line()}\n\n" + table(
        rows, blocks=blocks, calls=calls, target=target
    )
    print("\n" + text)
    write_results(RESULTS_DIR / f"{stem}.md", text, rows)


def table(
    rows: dict[str, dict[str, Any]], *, blocks: int, calls: int, target: str | dict[str, str]
) -> str:
    """A markdown table of ``rows`` (one per backend or case), with the target (per row) named."""
    shown = [(case, cost) for case, cost in COSTS if any(case in r for r in rows.values())]
    head = ['`execute("pass")`'] + [f"one {case} | its cost" for case, _ in shown]
    lines = [
        f"{blocks} alternating blocks of {calls} executions per case; median of block medians.",
        "",
        f"| case | {' | '.join(head)} | target |",
        "| --- | ---: |" + " ---: | ---: |" * len(shown) + " ---: |",
    ]
    for name, r in rows.items():
        cells = [f"{r['pass'] * 1e3:.2f} ms"]
        for case, cost in shown:
            if case in r:
                cells += [f"{r[case] * 1e3:.2f} ms", f"{r[cost] * 1e3:.2f} ms"]
            else:
                cells += ["", ""]
        aim = target if isinstance(target, str) else target.get(name, "")
        lines.append(f"| {name} | {' | '.join(cells)} | {aim} |")
    return "\n".join(lines) + "\n"
