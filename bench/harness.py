"""What every benchmark shares: timed round trips, fresh replay runs, the machine, the reports.

Each benchmark compares against a baseline in the same run; they all time
round trips the same way (a warm-up, then ``rounds`` batches of ``batch``
calls under pytest-benchmark) and summarize timings alike, so their figures
compare. A replay runs on a fresh session in a fresh directory with the
corpus environment; a report is a Markdown table and a JSON file of the same
name in ``bench/results/``, with the machine it ran on; plans are narrowed by
``EAGER_RT_BENCH_*`` variables read the same way everywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bench.corpus_index import session_env
from eager_rt.executor import Backend, Session, Status
from eager_rt.result import RunResult
from eager_rt.runtime import arun_stream
from eager_rt.sources.replay import Replay

__all__ = [
    "RESULTS_DIR",
    "backend_env",
    "env_flag",
    "env_list",
    "execute_pass",
    "image_hashes",
    "loadavg",
    "machine",
    "machine_line",
    "measure_pass",
    "ms_summary",
    "p90",
    "replay_fresh",
    "replay_on",
    "time_round_trips",
    "write_results",
]


def time_round_trips(
    benchmark: Any,
    loop: asyncio.AbstractEventLoop,
    round_trip: Callable[[], Awaitable[object]],
    *,
    batch: int,
    rounds: int,
    warmup: int,
) -> list[float]:
    """Seconds per ``round_trip()`` call, every call of every measured round."""
    samples: list[float] = []

    async def run(n: int, keep: bool) -> None:
        for _ in range(n):
            t0 = time.perf_counter()
            await round_trip()
            if keep:
                samples.append(time.perf_counter() - t0)

    loop.run_until_complete(run(warmup, False))
    benchmark.pedantic(
        lambda: loop.run_until_complete(run(batch, True)), rounds=rounds, iterations=1
    )
    return samples


def measure_pass(
    benchmark: Any,
    loop: asyncio.AbstractEventLoop,
    session: Session,
    *,
    batch: int,
    rounds: int,
    warmup: int,
) -> list[float]:
    """Every ``execute("pass")`` round trip on ``session``, sorted; summarized in the benchmark."""
    samples = sorted(
        time_round_trips(
            benchmark,
            loop,
            lambda: execute_pass(session),
            batch=batch,
            rounds=rounds,
            warmup=warmup,
        )
    )
    benchmark.extra_info.update(
        {
            "per_call_median_ms": round(statistics.median(samples) * 1e3, 2),
            "per_call_p90_ms": round(p90(samples) * 1e3, 2),
            "calls": len(samples),
        }
    )
    return samples


def p90(ordered: Sequence[float]) -> float:
    """The 90th percentile of sorted samples, as every backend table reports it."""
    return ordered[int(len(ordered) * 0.9)]


def ms_summary(samples: Sequence[float]) -> dict[str, float]:
    """Median, p90 and least of timings in seconds, as milliseconds, and how many there were."""
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1e3, 3),
        "p90_ms": round(p90(ordered) * 1e3, 3),
        "min_ms": round(ordered[0] * 1e3, 3),
        "n": len(ordered),
    }


async def replay_on(
    session: Session, source: Replay, *, slack_s: float = 300, **options: Any
) -> RunResult:
    """``source`` streamed into ``session``, started here and closed after (a fresh run).

    ``slack_s`` bounds the run beyond the stream's own duration; ``options``
    go to :func:`eager_rt.runtime.arun_stream`.
    """
    await session.start(timeout=120)
    try:
        return await asyncio.wait_for(
            arun_stream(source, session, **options), source.duration + slack_s
        )
    finally:
        await session.close()


async def replay_fresh(
    backend: Backend, source: Replay, *, slack_s: float = 300, **options: Any
) -> RunResult:
    """``source`` on a fresh session of ``backend`` in a fresh working directory.

    The session gets the corpus environment (:func:`backend_env`), so a corpus
    script finds its data; see :func:`replay_on` for ``slack_s`` and ``options``.
    """
    with tempfile.TemporaryDirectory(prefix="eager-bench-") as cwd:
        session = backend.session(cwd=cwd, env=backend_env())
        return await replay_on(session, source, slack_s=slack_s, **options)


def image_hashes(result: RunResult) -> list[str]:
    """A digest of each PNG the run displayed, in order: images compare without their bytes."""
    return [
        hashlib.sha256(str(d["image/png"]).encode()).hexdigest()
        for d in result.displays
        if "image/png" in d
    ]


async def execute_pass(session: Session) -> None:
    """The trivial execution whose round trip is a backend's per-call overhead."""
    result = await session.execute("pass", timeout=30)
    assert result.status is Status.OK, result


def backend_env() -> dict[str, str]:
    """The corpus environment for a session, minus ``MPLBACKEND``.

    Standalone runs of a corpus script need Agg; a session picks its own
    matplotlib backend (the worker's Agg with ``plt.show()`` capture, a
    kernel's inline backend), so the variable must not override it.
    """
    return {k: v for k, v in session_env().items() if k != "MPLBACKEND"}


RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write_results(md: Path, text: str, data: Any, *, indent: int = 1) -> None:
    """A benchmark's report: ``text`` to ``md``, ``data`` as JSON to the ``.json`` beside it."""
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(text, encoding="utf-8")
    md.with_suffix(".json").write_text(json.dumps(data, indent=indent) + "\n", encoding="utf-8")


def env_flag(name: str, default: bool = False) -> bool:
    """An on/off environment variable (``1``, ``true``, ``yes``, ``on``); unset: ``default``."""
    raw = os.environ.get(name, "").strip().lower()
    return default if not raw else raw in {"1", "true", "yes", "on"}


def env_list(name: str) -> list[str]:
    """A comma-separated environment variable as its non-empty items (unset: none)."""
    return [x.strip() for x in os.environ.get(name, "").split(",") if x.strip()]


def loadavg() -> str:
    """The machine's load averages, for a report (what else ran beside a benchmark)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_line() -> str:
    """The machine in one line, for the backend benchmarks' plain-text reports."""
    return (
        f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {loadavg()}"
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(**extra: str) -> dict[str, str]:
    """What a report says of the machine: CPU, cores, OS, Python, ``extra``, the load."""
    affinity = getattr(os, "sched_getaffinity", None)
    usable = len(affinity(0)) if affinity is not None else os.cpu_count()
    return {
        "CPU": _cpu_model(),
        "cores": f"{os.cpu_count()} logical, {usable} usable",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": sys.version.split()[0],
        **extra,
        "load average before": loadavg(),
    }
