"""What naming the statement behind each output costs a print flood (``Output.line``).

An execution of several top-level statements (a batch, a whole program) has
its worker find, once per line of text, which statement is writing; one of a
single statement pays nothing. The same print loop runs both ways on one
warm local session, alternating, and the report gives the cost of a print
each way and their ratio. ``EAGER_RT_BENCH_STRICT=1`` asserts the target
ratio (a shared machine's timings are reported, not asserted, by default).

    .venv/bin/pytest bench/test_bench_output_lines.py -s
"""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest
from eager_rt.backends.local import LocalSession

from bench.harness import RESULTS_DIR, env_flag, machine_line, write_results
from eager_rt.executor import Status

pytestmark = pytest.mark.timeout(900)

PRINTS = 100_000
ROUNDS = 10
#: a print in a batch may cost at most this much more than in a single statement
TARGET_RATIO = 1.25

SINGLE = f"for i in range({PRINTS}):\n    print(i)\n"
BATCH = "x = 0\n" + SINGLE  # two statements: output carries the loop's line


async def _timed(session: LocalSession, code: str) -> float:
    start = time.perf_counter()
    result = await session.execute(code, timeout=300)
    took = time.perf_counter() - start
    assert result.status is Status.OK, result
    assert result.stdout.count("\n") == PRINTS
    lines = {o.line for o in result.outputs}
    assert lines == ({2} if code is BATCH else {None}), lines
    return took / PRINTS


async def _measure() -> dict[str, list[float]]:
    session = LocalSession(max_output=None)
    await session.start(timeout=60)
    samples: dict[str, list[float]] = {"single": [], "batch": []}
    try:
        await _timed(session, SINGLE)  # warm-up
        for turn in range(ROUNDS):  # alternating order: load shifts weigh on both
            order = ("single", "batch") if turn % 2 else ("batch", "single")
            for name in order:
                samples[name].append(await _timed(session, SINGLE if name == "single" else BATCH))
    finally:
        await session.close()
    return samples


def test_naming_the_statement_costs_a_print_little() -> None:
    samples = asyncio.run(_measure())
    single = statistics.median(samples["single"])
    batch = statistics.median(samples["batch"])
    ratio = batch / single
    text = (
        "# Output.line: the cost of a print in a batch\n\n"
        f"{machine_line()}\n\n"
        f"{PRINTS:,} prints per execution, {ROUNDS} rounds each way, alternating, medians\n\n"
        "| execution | µs a print |\n| --- | --- |\n"
        f"| one statement (no line) | {single * 1e6:.2f} |\n"
        f"| two statements (each line named) | {batch * 1e6:.2f} |\n\n"
        f"ratio {ratio:.3f} (target at most {TARGET_RATIO})\n"
    )
    print("\n" + text)
    data = {
        "machine": machine_line(),
        "prints": PRINTS,
        "rounds": ROUNDS,
        "single_us": [round(s * 1e6, 3) for s in samples["single"]],
        "batch_us": [round(s * 1e6, 3) for s in samples["batch"]],
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
    }
    write_results(RESULTS_DIR / "output_lines.md", text, data)
    if env_flag("EAGER_RT_BENCH_STRICT"):
        assert ratio <= TARGET_RATIO, text
