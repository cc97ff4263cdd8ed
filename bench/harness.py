"""What the backend benchmarks share: timed round trips and the corpus environment for kernels.

Each benchmark compares its backend against a baseline in the same run; they
all time round trips the same way (a warm-up, then ``rounds`` batches of
``batch`` calls under pytest-benchmark), so their figures compare.
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.corpus_index import session_env
from eager_rt.executor import Session, Status

__all__ = ["backend_env", "execute_pass", "loadavg", "machine", "time_round_trips"]


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


def loadavg() -> str:
    """The machine's load averages, for a report (what else ran beside a benchmark)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


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
