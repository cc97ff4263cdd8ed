"""The cost of one host tool call in two revisions of eager_rt, side by side, in one run.

The tool-call twin of ``bench/ab_compare.py`` (whose checkouts and import
trees it reuses): each measurement is a child process importing one
revision's code and running :func:`bench.tool_cost.measure` on a fresh warm
session of one backend; the revisions take turns, the order alternating
every round, so slow spells of the machine hit both alike.

    .venv/bin/python -m bench.ab_tool_cost --before 2b53bdd --after . --backends local,docker

Backends are the rows of ``bench/test_bench_tool_calls.py`` (local, docker,
podman, jupyter, gateway, e2b, e2b_20ms). Prints, per backend and revision,
the median over rounds of each cost (sync, inline, async; ms), and writes
everything to ``bench/results/ab_<name>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from typing import Any

from bench.ab_compare import (
    SIDES,
    add_revision_args,
    child_job,
    revision_trees,
    run_child,
    turns,
    write_report,
)
from bench.tool_cost import COSTS


async def _measure(backend_name: str, blocks: int, calls: int) -> dict[str, Any]:
    from bench.tool_cost import backend_for, measure_fresh

    async with backend_for(backend_name) as backend:
        session = backend.session()
        return await measure_fresh(session, blocks=blocks, calls=calls, warmup=min(50, calls))


def _run_child(raw: str) -> None:
    job = child_job(raw)
    print(json.dumps(asyncio.run(_measure(job["backend"], job["blocks"], job["calls"]))))


def _compare(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"before": args.before, "after": args.after, "backends": {}}
    with revision_trees(args.before, args.after, "eager-ab-tools-") as trees:
        for backend in [b for b in args.backends.split(",") if b]:
            rows: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
            for i in range(args.rounds):
                for side in turns(i):
                    job = {"backend": backend, "blocks": args.blocks, "calls": args.calls}
                    rows[side].append(
                        run_child(trees[side], job, module="bench.ab_tool_cost", timeout=1800)
                    )
            summary = {
                side: {
                    cost: statistics.median(r[cost] for r in rows[side])
                    for cost in ("pass", *(cost for _, cost in COSTS))
                    if all(cost in r for r in rows[side])
                }
                for side in SIDES
            }
            report["backends"][backend] = {"summary": summary, "rounds": rows}
            shown = {
                side: {k: f"{v * 1e3:.3f} ms" for k, v in summary[side].items()} for side in SIDES
            }
            print(backend, json.dumps(shown), flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_revision_args(parser, name="tool_cost")
    parser.add_argument("--backends", default="local")
    parser.add_argument("--rounds", type=int, default=4, help="children per revision")
    parser.add_argument("--blocks", type=int, default=4, help="alternating blocks per child")
    parser.add_argument("--calls", type=int, default=200, help="executions per block")
    args = parser.parse_args()
    write_report(args.name, _compare(args))


if __name__ == "__main__":
    main()
