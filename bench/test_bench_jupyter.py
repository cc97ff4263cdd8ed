"""The Jupyter backend: what one execution costs, and what eager execution and batching save.

Part 1, per-execution overhead. One warm session per case, ``execute("pass")``
timed call by call, all cases in the same run:

* ``local_backend``: eager_rt's own subprocess backend, the reference;
* ``jupyter_local``: a local IPython kernel through ``jupyter_client``;
* ``gateway_nagle``: a kernel on a Jupyter Kernel Gateway on loopback, our
  websocket left as tornado leaves it (Nagle on, delayed ACKs);
* ``gateway_nodelay``: the same with ``TCP_NODELAY`` on our socket;
* ``gateway_nodelay_quickack``: and ``TCP_QUICKACK`` re-armed on every send and
  receive (the backend's default; see ``backends/_jupyter_remote.py``).

Part 2, the replay table on local kernels. Corpus scripts (``bench/corpus``)
replayed at 200 tokens/s: serial (generate everything, then one execution),
eager with dynamic batching, eager with one execution per statement. It
reports how many executions batching saves and what that does to NEL and E2EL,
and checks that eager output equals serial output. Each run gets a fresh
kernel in a fresh directory; each script runs serially before and after its
eager runs, and the faster serial execution is the baseline. A Jupyter round
trip costs milliseconds, so batching matters more here than on the local
backend. Part 3, the error variants (``bench.corpus_index.ERROR_VARIANTS``) at
200 tokens/s: what early interruption saves against a serial run that
generates the whole program before it fails.

Default plan: every third non-DABench script plus every third DABench script
(when the tables are present), 12 scripts, about 3 minutes on a 2-core box.
``EAGER_RT_BENCH_FULL=1`` replays the whole corpus; ``EAGER_RT_BENCH_SCRIPTS=a.py,b.py``
picks scripts. Tables print with ``-s`` and are written to
``bench/results/jupyter.md`` / ``jupyter.json``.

    .venv/bin/pytest bench/test_bench_jupyter.py -s   # overhead only: -k overhead

Part 4, host tools: what one trivial tool call costs the code (a sync and an
async one, beside ``execute("pass")`` in alternating blocks, ``bench/tool_cost.py``)
on a local kernel and on a gateway's; the issue's target is 5 ms. Written to
``bench/results/jupyter_tools.md`` / ``.json`` (``-k tool``).
"""

from __future__ import annotations

import asyncio
import os
import statistics
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import pytest
from eager_rt.backends.jupyter import JupyterBackend
from eager_rt.backends.local import LocalSession

from bench import tool_cost
from bench.batching import CELLS_HEADER, CELLS_RULE, BatchingRow, totals
from bench.corpus_index import (
    ERROR_VARIANTS,
    dabench_missing_reason,
    is_dabench,
    script_names,
    script_text,
)
from bench.harness import (
    RESULTS_DIR,
    env_flag,
    env_list,
    image_hashes,
    machine_line,
    measure_pass,
    p90,
    replay_fresh,
    write_results,
)
from eager_rt.executor import Session
from eager_rt.sources.replay import replay
from tests.provision.jupyter import Gateway, running_gateway

pytestmark = pytest.mark.timeout(3600)

BATCH = 20
ROUNDS = 6
WARMUP = 20
TPS = 200.0
SERIAL_TPS = 5000.0

OVERHEAD_CASES: dict[str, dict[str, Any]] = {
    "jupyter_local": {},
    "gateway_nagle": {"remote": True, "tcp_nodelay": False, "tcp_quickack": False},
    "gateway_nodelay": {"remote": True, "tcp_nodelay": True, "tcp_quickack": False},
    "gateway_nodelay_quickack": {"remote": True, "tcp_nodelay": True, "tcp_quickack": True},
}
#: case -> every single round-trip time, in seconds (filled as the cases run)
SAMPLES: dict[str, list[float]] = {}
#: the replay table's rows (filled once by the ``replay_rows`` fixture)
ROWS: list[ReplayRow] = []
#: the error-variant rows (filled once by the ``error_rows`` fixture)
ERROR_ROWS: list[ErrorRow] = []


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with running_gateway() as g:
        yield g


# -- part 1: per-execution overhead ----------------------------------------------------


def _measure(benchmark: Any, loop: asyncio.AbstractEventLoop, case: str, session: Session) -> None:
    SAMPLES[case] = measure_pass(
        benchmark, loop, session, batch=BATCH, rounds=ROUNDS, warmup=WARMUP
    )


def test_overhead_local_backend(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    session = LocalSession()
    loop.run_until_complete(session.start(timeout=60))
    try:
        _measure(benchmark, loop, "local_backend", session)
    finally:
        loop.run_until_complete(session.close())


@pytest.mark.parametrize("case", list(OVERHEAD_CASES))
def test_overhead_jupyter(
    benchmark: Any, loop: asyncio.AbstractEventLoop, request: pytest.FixtureRequest, case: str
) -> None:
    options = dict(OVERHEAD_CASES[case])
    if options.pop("remote", False):
        gateway: Gateway = request.getfixturevalue("gateway")
        options.update(url=gateway.url, token=gateway.token)
    session = JupyterBackend(**options).session()
    loop.run_until_complete(session.start(timeout=120))
    try:
        _measure(benchmark, loop, case, session)
    finally:
        loop.run_until_complete(session.close())


def _overhead_table() -> str:
    if "local_backend" not in SAMPLES:
        return ""
    floor = statistics.median(SAMPLES["local_backend"])
    lines = [
        f"per-execution overhead, execute('pass'), {len(SAMPLES['local_backend'])} calls per case",
        "| case | median (ms) | p90 (ms) | median / local_backend |",
        "|---|---:|---:|---:|",
    ]
    for case in ["local_backend", *OVERHEAD_CASES]:
        if case not in SAMPLES:
            continue
        s = SAMPLES[case]
        median = statistics.median(s)
        lines.append(f"| {case} | {median * 1e3:.2f} | {p90(s) * 1e3:.2f} | {median / floor:.1f} |")
    return "\n".join(lines)


# -- part 2: replay, serial vs eager, batching on and off --------------------------------


@dataclass(slots=True)
class ReplayRow(BatchingRow):
    chunks: int
    images_equal: bool

    @property
    def output_equal(self) -> bool:
        return self.stdout_equal and self.images_equal


def _plan() -> list[str]:
    names = script_names()
    if dabench_missing_reason() is not None:
        names = [n for n in names if not is_dabench(n)]
    chosen = env_list("EAGER_RT_BENCH_SCRIPTS")
    if chosen:
        return [n for n in names if n in chosen]
    if env_flag("EAGER_RT_BENCH_FULL"):
        return names
    synthetic = [n for n in names if not is_dabench(n)]
    dabench = [n for n in names if is_dabench(n)]
    return synthetic[::3] + dabench[::3]


async def _replay_rows() -> list[ReplayRow]:
    backend = JupyterBackend()
    rows = []
    for name in _plan():
        text = script_text(name)
        serial = await replay_fresh(backend, replay(text, SERIAL_TPS), mode="serial")
        batched = await replay_fresh(backend, replay(text, TPS), mode="eager", batching=True)
        unbatched = await replay_fresh(backend, replay(text, TPS), mode="eager", batching=False)
        serial_again = await replay_fresh(backend, replay(text, SERIAL_TPS), mode="serial")
        # a shared machine slows some runs down: the faster serial execution is
        # the baseline, which understates eager's savings, never overstates them
        serial_nel = min(serial.nel_s, serial_again.nel_s)
        runs = (serial, batched, unbatched)
        statuses = (*runs, serial_again)
        rows.append(
            ReplayRow.of(
                name,
                replay(text, TPS).duration,
                serial_nel,
                runs,
                status="/".join(r.status for r in statuses),
                chunks=sum(1 for r in batched.chunks if r.chunk.runnable),
                images_equal=len({tuple(image_hashes(r)) for r in runs}) == 1,
            )
        )
    return rows


def _replay_table(rows: list[ReplayRow]) -> str:
    lines = [
        f"replay on local Jupyter kernels at {TPS:g} tokens/s "
        "(serial: generate, then one execution; eager: batched / one execution per statement)",
        f"| script | chunks | gen (s) {CELLS_HEADER}",
        f"|---|---:|---:|{CELLS_RULE}",
    ]
    for r in rows:
        lines.append(f"| {r.script} | {r.chunks} | {r.gen_nominal_s:.1f} {r.cells()}")
    if rows:
        n = len(rows)
        t = totals(rows)
        total_unbatched = int(t["unbatched_executions"])
        saved = total_unbatched - int(t["batched_executions"])
        lines += [
            "",
            f"over {n} scripts: batching ran {total_unbatched - saved} executions instead of "
            f"{total_unbatched} ({saved} fewer, {100 * saved / total_unbatched:.0f}%); "
            f"mean NEL serial {t['serial_nel_s'] / n:.2f} s, eager batched "
            f"{t['batched_nel_s'] / n:.2f} s, unbatched {t['unbatched_nel_s'] / n:.2f} s; "
            f"execution hidden: batched {t['batched_hidden_pct']:.1f}%, "
            f"unbatched {t['unbatched_hidden_pct']:.1f}%; "
            f"E2EL saving: batched {t['batched_e2el_saving_pct']:.1f}%, "
            f"unbatched {t['unbatched_e2el_saving_pct']:.1f}%",
        ]
    return "\n".join(lines)


@dataclass(slots=True)
class ErrorRow:
    variant: str
    ename: str
    gen_nominal_s: float
    serial_e2el_s: float
    eager_e2el_s: float
    pieces: int
    consumed: int
    ename_equal: bool
    closed_early: bool
    stdout_equal: bool


async def _error_rows() -> list[ErrorRow]:
    """Each error variant: serial (generate all, run, fail) against eager (fail, stop)."""
    backend = JupyterBackend()
    available = set(script_names())
    if dabench_missing_reason() is not None:
        available = {n for n in available if not is_dabench(n)}
    rows = []
    for variant in (v for v in ERROR_VARIANTS if v.script in available):
        text = variant.text()
        serial = await replay_fresh(backend, replay(text, SERIAL_TPS), mode="serial")
        source = replay(text, TPS)
        eager = await replay_fresh(backend, source, mode="eager")
        rows.append(
            ErrorRow(
                variant=variant.name,
                ename=variant.ename,
                gen_nominal_s=source.duration,
                serial_e2el_s=source.duration + serial.nel_s,
                eager_e2el_s=eager.e2el_s,
                pieces=len(source.pieces),
                consumed=source.consumed,
                ename_equal=(
                    serial.error is not None
                    and eager.error is not None
                    and serial.error.ename == eager.error.ename == variant.ename
                ),
                closed_early=eager.stream_closed_early,
                stdout_equal=serial.stdout == eager.stdout,
            )
        )
    return rows


def _error_table(rows: list[ErrorRow]) -> str:
    lines = [
        f"error variants at {TPS:g} tokens/s: early interruption stops generation at the error",
        "| variant | error | pieces generated (eager / all) | E2EL serial / eager (s) "
        "| E2EL saving |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.variant} | {r.ename}{'' if r.ename_equal else ' (MISMATCH)'} "
            f"| {r.consumed} / {r.pieces} | {r.serial_e2el_s:.2f} / {r.eager_e2el_s:.2f} "
            f"| {100 * (1 - r.eager_e2el_s / r.serial_e2el_s):.1f}% |"
        )
    if rows:
        serial = sum(r.serial_e2el_s for r in rows)
        eager = sum(r.eager_e2el_s for r in rows)
        lines += ["", f"over {len(rows)} variants: E2EL saving {100 * (1 - eager / serial):.1f}%"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def replay_rows(loop: asyncio.AbstractEventLoop) -> list[ReplayRow]:
    ROWS[:] = loop.run_until_complete(_replay_rows())
    return ROWS


def test_replay_eager_output_equals_serial(replay_rows: list[ReplayRow]) -> None:
    assert replay_rows, "no corpus script to replay"
    bad = [r for r in replay_rows if r.status != "ok/ok/ok/ok" or not r.stdout_equal]
    assert not bad, bad
    assert all(r.images_equal for r in replay_rows), [
        r.script for r in replay_rows if not r.images_equal
    ]


def test_replay_batching_saves_executions(replay_rows: list[ReplayRow]) -> None:
    for r in replay_rows:
        assert r.batched_executions <= r.unbatched_executions <= r.chunks, r
    assert sum(r.batched_executions for r in replay_rows) < sum(
        r.unbatched_executions for r in replay_rows
    )


@pytest.fixture(scope="module")
def error_rows(loop: asyncio.AbstractEventLoop) -> list[ErrorRow]:
    ERROR_ROWS[:] = loop.run_until_complete(_error_rows())
    return ERROR_ROWS


def test_error_variants_fail_like_serial_and_stop_early(error_rows: list[ErrorRow]) -> None:
    assert error_rows, "no error variant to replay"
    for r in error_rows:
        assert r.ename_equal, r
        assert r.stdout_equal, r
        assert r.closed_early and r.consumed < r.pieces, r


# -- part 4: host tools ------------------------------------------------------------------

TOOL_BLOCKS = int(os.environ.get("EAGER_RT_BENCH_BLOCKS", "4"))
TOOL_CALLS = int(os.environ.get("EAGER_RT_BENCH_CALLS", "100"))
TOOL_TARGET_S = 5e-3


def test_tool_call_cost(loop: asyncio.AbstractEventLoop, gateway: Gateway) -> None:
    """A trivial tool call, local kernel and gateway, side by side with ``execute("pass")``."""
    rows: dict[str, dict[str, Any]] = {}
    cases = {"jupyter_local": {}, "gateway": {"url": gateway.url, "token": gateway.token}}
    for case, options in cases.items():
        session = JupyterBackend(**options).session()
        rows[case] = loop.run_until_complete(
            tool_cost.measure_fresh(session, blocks=TOOL_BLOCKS, calls=TOOL_CALLS, warmup=20)
        )
    tool_cost.publish(
        "jupyter_tools",
        "Host tool call cost, Jupyter (bench/test_bench_jupyter.py -k tool)",
        rows,
        blocks=TOOL_BLOCKS,
        calls=TOOL_CALLS,
        target="5 ms",
    )
    for case, row in rows.items():
        assert row["sync call"] > 0 and row["pass"] > 0, case
        if env_flag("EAGER_RT_BENCH_STRICT"):
            assert row["sync cost"] <= TOOL_TARGET_S, (case, row)


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    """Print and write the tables once every case ran (pytest -s shows them)."""
    yield
    if not (SAMPLES or ROWS or ERROR_ROWS):
        return  # only the tool cost ran (it writes its own file): keep the last tables
    parts = [f"machine: {machine_line()}", _overhead_table()]
    rows = ROWS
    if rows:
        parts.append(_replay_table(rows))
    if ERROR_ROWS:
        parts.append(_error_table(ERROR_ROWS))
    text = "\n\n".join(p for p in parts if p)
    print("\n" + text)
    figures = {
        "machine": machine_line(),
        "overhead_ms": {
            case: {
                "median": round(statistics.median(s) * 1e3, 3),
                "p90": round(p90(s) * 1e3, 3),
            }
            for case, s in SAMPLES.items()
        },
        "replay": [asdict(r) for r in rows],
        "error_variants": [asdict(r) for r in ERROR_ROWS],
    }
    write_results(RESULTS_DIR / "jupyter.md", text + "\n", figures)
