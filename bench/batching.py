"""What batching saves on a remote kernel: one script run serial, eager batched, eager unbatched.

The Jupyter and E2B benchmarks (``bench/test_bench_jupyter.py``,
``bench/test_bench_e2b.py``) replay corpus scripts three ways, where a round
trip costs milliseconds: serial (generate everything, then one execution),
eager with dynamic batching, eager with one execution per statement. Each
module's row adds what it varies (a kernel's chunk count and images, an
added network delay); the figures, their table cells and sums are these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

from eager_rt.result import RunResult

__all__ = ["CELLS_HEADER", "CELLS_RULE", "BatchingRow", "totals"]

#: the header of :meth:`BatchingRow.cells`, and its alignment row
CELLS_HEADER = (
    "| executions batched / unbatched | serial NEL (s) | eager NEL batched / unbatched (s) "
    "| E2EL serial / batched / unbatched (s) | output = serial |"
)
CELLS_RULE = "---:|---:|---:|---:|:-:|"


@dataclass(slots=True)
class BatchingRow:
    script: str
    gen_nominal_s: float
    serial_nel_s: float
    serial_e2el_s: float
    batched_executions: int
    batched_nel_s: float
    batched_e2el_s: float
    unbatched_executions: int
    unbatched_nel_s: float
    unbatched_e2el_s: float
    status: str
    stdout_equal: bool

    @classmethod
    def of(
        cls,
        script: str,
        gen_nominal_s: float,
        serial_nel_s: float,
        runs: tuple[RunResult, RunResult, RunResult],
        *,
        status: str,
        **extra: Any,
    ) -> Self:
        """A row from the (serial, batched, unbatched) runs; ``extra`` fills a subclass's fields.

        ``serial_nel_s`` is given apart from the serial run: a benchmark may
        take the better of two serial runs as its baseline.
        """
        serial, batched, unbatched = runs
        return cls(
            script=script,
            gen_nominal_s=gen_nominal_s,
            serial_nel_s=serial_nel_s,
            serial_e2el_s=gen_nominal_s + serial_nel_s,
            batched_executions=len(batched.batches),
            batched_nel_s=batched.nel_s,
            batched_e2el_s=batched.e2el_s,
            unbatched_executions=len(unbatched.batches),
            unbatched_nel_s=unbatched.nel_s,
            unbatched_e2el_s=unbatched.e2el_s,
            status=status,
            stdout_equal=serial.stdout == batched.stdout == unbatched.stdout,
            **extra,
        )

    @property
    def output_equal(self) -> bool:
        """Whether both eager runs showed what serial showed."""
        return self.stdout_equal

    def cells(self) -> str:
        """The table cells under :data:`CELLS_HEADER`, closing the row."""
        return (
            f"| {self.batched_executions} / {self.unbatched_executions} "
            f"| {self.serial_nel_s:.2f} "
            f"| {self.batched_nel_s:.2f} / {self.unbatched_nel_s:.2f} "
            f"| {self.serial_e2el_s:.2f} / {self.batched_e2el_s:.2f} / {self.unbatched_e2el_s:.2f} "
            f"| {'yes' if self.output_equal else 'NO'} |"
        )


def totals(rows: Sequence[BatchingRow]) -> dict[str, float]:
    """Sums over ``rows``, and the shares of serial NEL and E2EL each eager way saved (%)."""
    sums = {
        key: float(sum(getattr(r, key) for r in rows))
        for key in (
            "serial_nel_s",
            "serial_e2el_s",
            "batched_nel_s",
            "unbatched_nel_s",
            "batched_e2el_s",
            "unbatched_e2el_s",
            "batched_executions",
            "unbatched_executions",
        )
    }
    for way in ("batched", "unbatched"):
        sums[f"{way}_hidden_pct"] = 100 * (1 - sums[f"{way}_nel_s"] / sums["serial_nel_s"])
        sums[f"{way}_e2el_saving_pct"] = 100 * (1 - sums[f"{way}_e2el_s"] / sums["serial_e2el_s"])
    return sums
