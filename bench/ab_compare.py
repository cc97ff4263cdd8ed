"""Two revisions of eager_rt measured side by side, in one run, in alternating order.

A refactoring must leave speed where it was. Timings from two separate runs
on a shared machine differ by more than most refactorings could change, so
this driver measures both revisions within one run: each measurement is a
child process importing one revision's code, and the two revisions take turns
(the order alternates every round), so slow spells of the machine hit both.

* ``overhead``: per-execution overhead, the median round trip of
  ``execute("pass")`` on a warm session (lowest median of several rounds),
  per backend.
* ``replay``: corpus scripts replayed at given token rates, eager and serial,
  on the local backend: eager NEL, serial NEL and the share of execution
  hidden, summed per rate.

    .venv/bin/python -m bench.ab_compare --before 3cee4dc --after HEAD \\
        --backends local,docker --scripts 8 --rates 50,200

A revision is a commit (checked out into a temporary worktree) or ``.`` for
the working tree. Results go to stdout and ``bench/results/ab_<name>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCKER_IMAGE = "eager-rt-python:local"
SIDES = ("before", "after")


# --------------------------------------------------------------------------- trees


def _source_tree(rev: str, scratch: Path) -> Path:
    """The repository at ``rev`` as a directory (the working tree itself for ``.``)."""
    if rev == ".":
        return ROOT
    target = scratch / f"src-{rev.replace('/', '_')}"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(target), rev],
        check=True,
        capture_output=True,
    )
    return target


def _import_tree(source: Path, scratch: Path, name: str) -> Path:
    """A directory where ``import eager_rt`` finds ``source``'s code laid out as installed.

    The package maps ``backends/`` to ``eager_rt.backends``; links reproduce
    that. The compiled scanner of the working tree is shared by both sides.
    """
    tree = scratch / f"import-{name}"
    package = tree / "eager_rt"
    package.mkdir(parents=True)
    for entry in (source / "eager_rt").iterdir():
        if entry.name == "__pycache__" or entry.suffix == ".so":
            continue
        (package / entry.name).symlink_to(entry)
    for native in (ROOT / "eager_rt").glob("_native*.so"):
        (package / native.name).symlink_to(native)
    (package / "backends").symlink_to(source / "backends")
    return tree


def run_child(
    tree: Path, job: dict[str, Any], *, module: str = "bench.ab_compare", timeout: float = 3600
) -> dict[str, Any]:
    """Run ``module._run_child(job)`` in a fresh interpreter importing the revision at ``tree``.

    The child prints its result as JSON on its last line of stdout.
    """
    # run from the import tree, not the repository: its own eager_rt/ must not shadow it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(ROOT)])}
    code = f"import sys; from {module} import _run_child; _run_child(sys.argv[1])"
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(job)],
        cwd=str(tree),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@contextlib.contextmanager
def revision_trees(before: str, after: str, prefix: str) -> Iterator[dict[str, Path]]:
    """Import trees of the two revisions, ``{"before": …, "after": …}``, removed on exit."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    sources: dict[str, Path] = {}
    try:
        for side, rev in (("before", before), ("after", after)):
            sources[side] = _source_tree(rev, scratch)
        yield {side: _import_tree(src, scratch, side) for side, src in sources.items()}
    finally:
        for src in sources.values():
            if src != ROOT:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(src)],
                    capture_output=True,
                )
        shutil.rmtree(scratch, ignore_errors=True)


def turns(round_index: int) -> list[str]:
    """The order of the two sides in a round: it alternates, so slow spells hit both."""
    return list(SIDES) if round_index % 2 == 0 else list(SIDES[::-1])


# --------------------------------------------------------------------------- child side


async def _overhead(backend_name: str, calls: int, rounds: int) -> dict[str, Any]:
    from eager_rt.registry import get_backend

    options: dict[str, Any] = (
        {"image": DOCKER_IMAGE} if backend_name in ("docker", "podman") else {}
    )
    backend = get_backend(backend_name)(**options)
    session = backend.session()
    await session.start(timeout=120)
    medians = []
    try:
        for _ in range(20):
            await session.execute("pass", timeout=30)
        for _ in range(rounds):
            trips = []
            for _ in range(calls):
                t0 = time.perf_counter()
                result = await session.execute("pass", timeout=30)
                trips.append(time.perf_counter() - t0)
                assert result.ok, result
            medians.append(statistics.median(trips))
    finally:
        await session.close()
        await backend.aclose()
    return {"median_s": min(medians), "medians_s": medians}


async def _replay(script: str, rates: list[float]) -> dict[str, Any]:
    from bench.corpus_index import script_text
    from bench.test_bench_replay import SERIAL_TPS, _run
    from eager_rt.registry import get_backend
    from eager_rt.sources.replay import replay

    backend = get_backend("local")()
    text = script_text(script)
    try:
        serial = await _run(backend, replay(text, SERIAL_TPS), "serial")
        eager = {}
        for tps in rates:
            run = await _run(backend, replay(text, tps), "eager")
            eager[str(tps)] = {"nel_s": run.nel_s, "e2el_s": run.e2el_s, "status": run.status}
        serial_again = await _run(backend, replay(text, SERIAL_TPS), "serial")
    finally:
        await backend.aclose()
    return {"serial_nel_s": min(serial.nel_s, serial_again.nel_s), "eager": eager}


def child_job(raw: str) -> dict[str, Any]:
    """The job a child was given, once it is sure it imports the revision's tree."""
    import eager_rt

    assert Path(eager_rt.__file__).parent.parent.name.startswith("import-"), eager_rt.__file__
    job: dict[str, Any] = json.loads(raw)
    return job


def _run_child(raw: str) -> None:
    job = child_job(raw)
    if job["kind"] == "overhead":
        out = asyncio.run(_overhead(job["backend"], job["calls"], job["rounds"]))
    else:
        out = asyncio.run(_replay(job["script"], job["rates"]))
    print(json.dumps(out))


# --------------------------------------------------------------------------- driver


def _compare(args: argparse.Namespace) -> dict[str, Any]:
    from bench.corpus_index import script_names

    report: dict[str, Any] = {
        "before": args.before,
        "after": args.after,
        "overhead": {},
        "replay": {},
    }
    with revision_trees(args.before, args.after, "eager-ab-") as trees:
        for backend in [b for b in args.backends.split(",") if b]:
            samples: dict[str, list[float]] = {side: [] for side in SIDES}
            for i in range(args.rounds):
                for side in turns(i):
                    job = {"kind": "overhead", "backend": backend, "calls": 200, "rounds": 3}
                    samples[side].append(run_child(trees[side], job)["median_s"])
            report["overhead"][backend] = {
                side: {"median_of_rounds_s": statistics.median(v), "rounds_s": v}
                for side, v in samples.items()
            }
            print(backend, json.dumps(report["overhead"][backend]), flush=True)
        rates = [float(r) for r in args.rates.split(",") if r]
        names = [n for n in script_names() if not n.startswith("dabench")][:: max(args.stride, 1)]
        names = names[: args.scripts]
        rows: list[dict[str, Any]] = []
        for i, name in enumerate(names):
            for side in turns(i):
                job = {"kind": "replay", "script": name, "rates": rates}
                rows.append({"script": name, "side": side, **run_child(trees[side], job)})
                print(name, side, json.dumps(rows[-1]["eager"]), flush=True)
    report["replay"]["rows"] = rows
    summary: dict[str, Any] = {}
    for side in SIDES if rows else ():
        mine = [r for r in rows if r["side"] == side]
        serial = sum(r["serial_nel_s"] for r in mine)
        summary[side] = {
            str(tps): {
                "serial_nel_s": serial,
                "eager_nel_s": sum(r["eager"][str(tps)]["nel_s"] for r in mine),
                "hidden": 1 - sum(r["eager"][str(tps)]["nel_s"] for r in mine) / serial,
            }
            for tps in rates
        }
    report["replay"]["summary"] = summary
    return report


def add_revision_args(parser: argparse.ArgumentParser, *, name: str) -> None:
    """The options every A/B driver takes: the two revisions and the report's name."""
    parser.add_argument("--before", default="HEAD~1")
    parser.add_argument("--after", default=".")
    parser.add_argument("--name", default=name, help="results go to ab_<name>.json")


def write_report(name: str, report: dict[str, Any]) -> None:
    """``report`` to ``bench/results/ab_<name>.json``."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"ab_{name}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    add_revision_args(parser, name="compare")
    parser.add_argument("--backends", default="local,docker")
    parser.add_argument("--rounds", type=int, default=6, help="overhead rounds per revision")
    parser.add_argument("--scripts", type=int, default=8, help="corpus scripts replayed")
    parser.add_argument("--stride", type=int, default=2, help="take every n-th corpus script")
    parser.add_argument("--rates", default="50,200", help="token rates, comma-separated")
    args = parser.parse_args()
    if args.child:
        _run_child(args.child)
        return
    report = _compare(args)
    print(
        json.dumps(
            {"overhead": report["overhead"], "replay": report["replay"]["summary"]}, indent=1
        )
    )
    write_report(args.name, report)


if __name__ == "__main__":
    main()
