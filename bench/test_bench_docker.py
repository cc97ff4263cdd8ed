"""The Docker backend: what one execution costs, and what a container start costs.

Part 1, per-execution overhead, every case on a warm session in the same run:

* ``local_execute_pass``: the local subprocess backend, the reference;
* ``docker_execute_pass`` / ``docker_execute_print``: ``execute("pass")`` and
  ``execute("print(1)")`` on a Docker session (one frame each way over the
  attached socket, through the engine and containerd's shim);
* ``docker_exec_run``: what the naive design would pay per chunk, one
  ``exec`` of ``python3 -c pass`` through the engine API (create, start,
  wait), timed on fewer calls because each costs tens of milliseconds.

The issue's target is a median of at most 1 ms for a trivial execution on
Docker; ``EAGER_RT_BENCH_STRICT=1`` asserts it.

Part 2, start-up, each case a fresh session until ``ready``:

* ``local_start``: a local worker subprocess, the reference;
* ``docker_cold_start``: create, attach and start a container, boot the worker;
* ``docker_pool_start``: take a pre-started container from the warm pool;
* ``docker_prestart_after_ttft``: no pool, ``prestart()`` when the request is
  sent, then a simulated 1 s time-to-first-token before the runtime calls
  ``start()``: what the start still costs once it overlaps generation.

Skips when no engine or image is there (fails with ``EAGER_RT_REQUIRE_DOCKER=1``).
Tables print with ``-s`` and go to ``bench/results/docker.md`` / ``docker.json``.

    .venv/bin/pytest bench/test_bench_docker.py --benchmark-only -s
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from eager_rt.backends.docker import DockerBackend, DockerSession
from eager_rt.backends.local import LocalSession

from bench.harness import (
    RESULTS_DIR,
    env_flag,
    machine_line,
    ms_summary,
    time_round_trips,
    write_results,
)
from eager_rt.executor import Status
from tests.provision.docker import TEST_IMAGE, require_docker

pytestmark = pytest.mark.timeout(900)

BATCH = 100
ROUNDS = 20
WARMUP = 200
EXEC_RUN_CALLS = 20
START_ROUNDS = 8
TTFT_S = 1.0
TARGET_MEDIAN_S = 1e-3

#: case -> every single timing, in seconds
SAMPLES: dict[str, list[float]] = {}
ROUND_TRIPS = (
    "local_execute_pass",
    "docker_execute_pass",
    "docker_execute_print",
    "docker_exec_run",
)
STARTS = ("local_start", "docker_cold_start", "docker_pool_start", "docker_prestart_after_ttft")


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    require_docker()
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


@pytest.fixture(scope="module")
def backend(loop: asyncio.AbstractEventLoop) -> Iterator[DockerBackend]:
    b = DockerBackend(image=TEST_IMAGE, pool_size=0)
    try:
        yield b
    finally:
        loop.run_until_complete(b.aclose())


@pytest.fixture(scope="module")
def docker_session(
    loop: asyncio.AbstractEventLoop, backend: DockerBackend
) -> Iterator[DockerSession]:
    s = backend.session()
    loop.run_until_complete(s.start(timeout=120))
    try:
        yield s
    finally:
        loop.run_until_complete(s.close())


def _measure_round_trips(
    benchmark: Any,
    loop: asyncio.AbstractEventLoop,
    case: str,
    round_trip: Callable[[], Awaitable[None]],
    batch_size: int = BATCH,
    rounds: int = ROUNDS,
    warmup: int = WARMUP,
) -> None:
    samples = time_round_trips(
        benchmark, loop, round_trip, batch=batch_size, rounds=rounds, warmup=warmup
    )
    SAMPLES[case] = samples
    benchmark.extra_info.update(ms_summary(samples))


def test_local_round_trip(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    session = LocalSession()
    loop.run_until_complete(session.start(timeout=60))

    async def round_trip() -> None:
        assert (await session.execute("pass", timeout=30)).status is Status.OK

    try:
        _measure_round_trips(benchmark, loop, "local_execute_pass", round_trip)
    finally:
        loop.run_until_complete(session.close())


@pytest.mark.parametrize(
    ("case", "code"), [("docker_execute_pass", "pass"), ("docker_execute_print", "print(1)")]
)
def test_docker_round_trip(
    benchmark: Any,
    loop: asyncio.AbstractEventLoop,
    docker_session: DockerSession,
    case: str,
    code: str,
) -> None:
    async def round_trip() -> None:
        assert (await docker_session.execute(code, timeout=30)).status is Status.OK

    _measure_round_trips(benchmark, loop, case, round_trip)
    median = statistics.median(SAMPLES[case])
    if case == "docker_execute_pass" and env_flag("EAGER_RT_BENCH_STRICT"):
        assert median <= TARGET_MEDIAN_S, f"median round trip {median * 1e3:.3f} ms > 1 ms"


def test_exec_run_per_chunk(
    benchmark: Any, loop: asyncio.AbstractEventLoop, docker_session: DockerSession
) -> None:
    """The design the backend avoids: one engine exec per chunk."""
    from eager_rt.backends._docker_engine import Engine

    engine = Engine()
    container = docker_session.container_id
    assert container is not None

    def exec_pass() -> None:
        code, _, _ = engine.exec_with_stdin(
            container, ["python3", "-c", "pass"], b"", user=None, workdir=None
        )
        assert code == 0

    async def round_trip() -> None:
        await asyncio.to_thread(exec_pass)

    try:
        _measure_round_trips(
            benchmark,
            loop,
            "docker_exec_run",
            round_trip,
            batch_size=EXEC_RUN_CALLS // 4,
            rounds=4,
            warmup=2,
        )
    finally:
        engine.close()


def _measure_starts(
    benchmark: Any,
    loop: asyncio.AbstractEventLoop,
    case: str,
    one_start: Callable[[], Awaitable[float]],
) -> None:
    samples: list[float] = []

    def run() -> None:
        samples.append(loop.run_until_complete(one_start()))

    benchmark.pedantic(run, rounds=START_ROUNDS, iterations=1, warmup_rounds=1)
    SAMPLES[case] = samples[-START_ROUNDS:]
    benchmark.extra_info.update(ms_summary(SAMPLES[case]))


def test_local_start(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    async def one() -> float:
        session = LocalSession()
        t0 = time.perf_counter()
        await session.start(timeout=60)
        elapsed = time.perf_counter() - t0
        await session.close()
        return elapsed

    _measure_starts(benchmark, loop, "local_start", one)


def test_docker_cold_start(
    benchmark: Any, loop: asyncio.AbstractEventLoop, backend: DockerBackend
) -> None:
    async def one() -> float:
        session = backend.session()
        t0 = time.perf_counter()
        await session.start(timeout=120)
        elapsed = time.perf_counter() - t0
        assert not session.last_start_pooled
        await session.close()
        return elapsed

    _measure_starts(benchmark, loop, "docker_cold_start", one)


def test_docker_pool_start(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    pooled = DockerBackend(image=TEST_IMAGE, pool_size=1)

    async def one() -> float:
        await pooled.warm_up()  # outside the timing: the pool refills between requests
        session = pooled.session()
        t0 = time.perf_counter()
        await session.start(timeout=120)
        elapsed = time.perf_counter() - t0
        assert session.last_start_pooled
        await session.close()
        return elapsed

    try:
        _measure_starts(benchmark, loop, "docker_pool_start", one)
    finally:
        loop.run_until_complete(pooled.aclose())


def test_docker_prestart_after_ttft(
    benchmark: Any, loop: asyncio.AbstractEventLoop, backend: DockerBackend
) -> None:
    async def one() -> float:
        session = backend.prestart()  # when the LLM request goes out
        await asyncio.sleep(TTFT_S)  # the model thinks; the container starts meanwhile
        t0 = time.perf_counter()
        await session.start(timeout=120)  # the runtime's start: what is left to wait
        elapsed = time.perf_counter() - t0
        await session.close()
        return elapsed

    _measure_starts(benchmark, loop, "docker_prestart_after_ttft", one)


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    """Print the tables once every case ran (pytest -s shows them) and save them."""
    yield
    if not SAMPLES:
        return
    machine = machine_line()
    figures = {case: ms_summary(SAMPLES[case]) for case in SAMPLES}
    lines = [f"machine: {machine}", ""]
    reference = figures.get("local_execute_pass")
    lines += [
        "Docker backend, per-execution round trip (warm session)",
        "| case | calls | median (ms) | p90 (ms) | median / local |",
        "|---|---:|---:|---:|---:|",
    ]
    for case in ROUND_TRIPS:
        if case in figures:
            f = figures[case]
            ratio = f"{f['median_ms'] / reference['median_ms']:.1f}" if reference else "-"
            lines.append(
                f"| {case} | {f['n']} | {f['median_ms']:.3f} | {f['p90_ms']:.3f} | {ratio} |"
            )
    lines += [
        "",
        "start-up until the worker is ready",
        "| case | starts | median (ms) | p90 (ms) |",
        "|---|---:|---:|---:|",
    ]
    for case in STARTS:
        if case in figures:
            f = figures[case]
            lines.append(f"| {case} | {f['n']} | {f['median_ms']:.1f} | {f['p90_ms']:.1f} |")
    text = "\n".join(lines)
    print("\n" + text)
    data = {"machine": machine, "figures": figures}
    write_results(RESULTS_DIR / "docker.md", text + "\n", data, indent=2)
