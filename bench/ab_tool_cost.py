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
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.ab_compare import RESULTS, ROOT, _import_tree, _source_tree

COSTS = ("sync cost", "inline cost", "async cost")


def _child(tree: Path, job: dict[str, Any]) -> dict[str, Any]:
    """One measurement in a fresh interpreter that imports the revision at ``tree``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(ROOT)])}
    code = "import sys; from bench.ab_tool_cost import _run_child; _run_child(sys.argv[1])"
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(job)],
        cwd=str(tree),
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def _measure(backend_name: str, blocks: int, calls: int) -> dict[str, Any]:
    from bench.tool_cost import backend_for, measure

    async with backend_for(backend_name) as backend:
        session = backend.session()
        await session.start(timeout=120)
        try:
            return await measure(session, blocks=blocks, calls=calls, warmup=min(50, calls))
        finally:
            await session.close()


def _run_child(raw: str) -> None:
    import eager_rt

    job: dict[str, Any] = json.loads(raw)
    assert Path(eager_rt.__file__).parent.parent.name.startswith("import-"), eager_rt.__file__
    print(json.dumps(asyncio.run(_measure(job["backend"], job["blocks"], job["calls"]))))


def _compare(args: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="eager-ab-tools-"))
    sources = {
        "before": _source_tree(args.before, scratch),
        "after": _source_tree(args.after, scratch),
    }
    trees = {side: _import_tree(src, scratch, side) for side, src in sources.items()}
    sides = ["before", "after"]
    report: dict[str, Any] = {"before": args.before, "after": args.after, "backends": {}}
    try:
        for backend in [b for b in args.backends.split(",") if b]:
            rows: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
            for i in range(args.rounds):
                for side in sides if i % 2 == 0 else sides[::-1]:
                    job = {"backend": backend, "blocks": args.blocks, "calls": args.calls}
                    rows[side].append(_child(trees[side], job))
            summary = {
                side: {
                    cost: statistics.median(r[cost] for r in rows[side])
                    for cost in ("pass", *COSTS)
                    if all(cost in r for r in rows[side])
                }
                for side in sides
            }
            report["backends"][backend] = {"summary": summary, "rounds": rows}
            shown = {
                side: {k: f"{v * 1e3:.3f} ms" for k, v in summary[side].items()} for side in sides
            }
            print(backend, json.dumps(shown), flush=True)
    finally:
        for src in sources.values():
            if src != ROOT:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(src)],
                    capture_output=True,
                )
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="HEAD~1")
    parser.add_argument("--after", default=".")
    parser.add_argument("--backends", default="local")
    parser.add_argument("--rounds", type=int, default=4, help="children per revision")
    parser.add_argument("--blocks", type=int, default=4, help="alternating blocks per child")
    parser.add_argument("--calls", type=int, default=200, help="executions per block")
    parser.add_argument("--name", default="tool_cost", help="results go to ab_<name>.json")
    args = parser.parse_args()
    report = _compare(args)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"ab_{args.name}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
