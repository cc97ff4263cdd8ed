"""The paper's latency model, evaluated on measured figures.

Every run can be held against its own theoretical optimum: given when each
chunk was generated (t_g,i), its residual detection delay (δ_i), its execution
time (T_exe,i) and the backend's per-call overhead (T_setup), the model says
what a parallel run should cost (closed form), what it can never beat (lower
bound), what it can never exceed (upper bound: no regression against serial),
how much faster than serial it can be at best, and in which regime the run sits.

Notation (``../shared/PAPER.md``): T_FT time to first token, L/v_gen the
generation time after it, N chunks.

* serial      T_FT + L/v_gen + T_setup(full) + T_exe(full)
* parallel    max_i [ t_g,i + δ_i + Σ_{j≥i} (T_setup + T_exe,j) ]
              (the closed form of t_e,i = max(t_d,i, t_e,i−1) + T_setup + T_exe,i)
* upper       T_FT + L/v_gen + δ + N·T_setup + Σ T_exe,j
* lower       max( t_g,N + δ_N + T_setup + T_exe,N ,
                   t_g,1 + δ_1 + N·T_setup + Σ T_exe,j )
              (the paper writes T_FT + L/v_gen for t_g,N: the last chunk ends the
              stream there; here tokens after it, such as a trailing comment, are
              allowed, and the end-to-end bound is the larger of this and the
              last token's arrival)
* speedup     S ≤ 1 + (T_setup(full) + T_exe(full)) / (T_FT + L/v_gen)
* regime      α = L/(N·v_gen) against β = T_setup + T_exe (mean per chunk);
              N* = (L/v_gen − T_exe(full)) / T_setup

All times are seconds from the start of the LLM call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from eager_rt.result import RunResult

__all__ = ["ChunkFigures", "LatencyModel", "Regime", "uniform"]

Regime = Literal["generation-dominated", "execution-dominated", "balanced"]


@dataclass(frozen=True, slots=True)
class ChunkFigures:
    t_generated: float  #: t_g,i: the chunk's last token arrived
    delta: float  #: δ_i: residual detection delay
    exec_s: float  #: T_exe,i: execution time without the per-call overhead


@dataclass(frozen=True, slots=True)
class LatencyModel:
    ttft: float  #: T_FT
    gen_end: float  #: T_FT + L/v_gen: when the last token arrived
    t_setup: float  #: per-call overhead of the backend
    chunks: tuple[ChunkFigures, ...]
    t_setup_full: float | None = None  #: overhead of the one serial call (default: t_setup)
    exec_full: float | None = None  #: T_exe(full) measured serially (default: Σ T_exe,i)

    def __post_init__(self) -> None:
        if not self.chunks:
            raise ValueError("the latency model needs at least one chunk")

    # ------------------------------------------------------------ derived
    @property
    def n(self) -> int:
        return len(self.chunks)

    @property
    def gen_after_ttft(self) -> float:
        """L/v_gen."""
        return self.gen_end - self.ttft

    @property
    def sum_exec(self) -> float:
        return sum(c.exec_s for c in self.chunks)

    @property
    def exec_total(self) -> float:
        """T_exe(full)."""
        return self.sum_exec if self.exec_full is None else self.exec_full

    @property
    def setup_full(self) -> float:
        return self.t_setup if self.t_setup_full is None else self.t_setup_full

    # -------------------------------------------------------------- model
    def serial(self) -> float:
        return self.gen_end + self.setup_full + self.exec_total

    def parallel(self) -> float:
        """Closed form: the latest 'chunk i ready, then all from i on runs back to back'."""
        best = 0.0
        tail = 0.0
        for chunk in reversed(self.chunks):
            tail += self.t_setup + chunk.exec_s
            best = max(best, chunk.t_generated + chunk.delta + tail)
        return best

    def simulate(self) -> float:
        """The recursion the closed form solves; the two always agree."""
        t_e = 0.0
        for chunk in self.chunks:
            t_e = max(chunk.t_generated + chunk.delta, t_e) + self.t_setup + chunk.exec_s
        return t_e

    def upper_bound(self) -> float:
        delta = max(c.delta for c in self.chunks)
        return self.gen_end + delta + self.n * self.t_setup + self.sum_exec

    def lower_bound(self) -> float:
        first, last = self.chunks[0], self.chunks[-1]
        return max(
            last.t_generated + last.delta + self.t_setup + last.exec_s,
            first.t_generated + first.delta + self.n * self.t_setup + self.sum_exec,
        )

    def e2el_lower_bound(self) -> float:
        """What the measured end-to-end latency can never beat: it also waits for the last token."""
        return max(self.gen_end, self.lower_bound())

    def speedup_bound(self) -> float:
        return 1.0 + (self.setup_full + self.exec_total) / self.gen_end if self.gen_end > 0 else 1.0

    def alpha(self) -> float:
        """Generation time per chunk."""
        return self.gen_after_ttft / self.n

    def beta(self) -> float:
        """Execution time per chunk, overhead included."""
        return self.t_setup + self.sum_exec / self.n

    def regime(self, tolerance: float = 0.05) -> Regime:
        a, b = self.alpha(), self.beta()
        if abs(a - b) <= tolerance * max(a, b):
            return "balanced"
        return "generation-dominated" if a > b else "execution-dominated"

    def n_star(self) -> float | None:
        """Chunk count where generation and execution balance; more chunks only add overhead."""
        if self.t_setup <= 0:
            return None
        return (self.gen_after_ttft - self.exec_total) / self.t_setup

    def report(self, measured_e2el: float | None = None) -> dict[str, float | str | int | None]:
        out: dict[str, float | str | int | None] = {
            "n": self.n,
            "serial_s": self.serial(),
            "parallel_s": self.parallel(),
            "lower_bound_s": self.lower_bound(),
            "upper_bound_s": self.upper_bound(),
            "speedup_bound": self.speedup_bound(),
            "alpha_s": self.alpha(),
            "beta_s": self.beta(),
            "regime": self.regime(),
            "n_star": self.n_star(),
        }
        if measured_e2el is not None:
            out["measured_e2el_s"] = measured_e2el
            out["e2el_over_lower_bound"] = measured_e2el / self.e2el_lower_bound()
        return out

    # ------------------------------------------------------- from a run
    @classmethod
    def from_run(
        cls,
        run: RunResult,
        t_setup: float,
        *,
        serial: RunResult | None = None,
    ) -> LatencyModel:
        """Model figures of an eager run.

        A batch's time, less one ``t_setup``, is shared evenly among the chunks
        it merged (the backend cannot time statements inside one call). With a
        serial run of the same program, its single execution gives T_exe(full)
        and T_setup(full) = ``t_setup``.
        """
        figures: list[ChunkFigures] = []
        by_batch = {b.index: b for b in run.batches}
        for record in run.chunks:
            if record.batch is None or not record.chunk.runnable:
                continue
            batch = by_batch[record.batch]
            share = max(0.0, batch.t_end - batch.t_start - t_setup) / len(batch.chunk_indices)
            figures.append(ChunkFigures(record.t_generated, record.delta_s, share))
        exec_full = None
        if serial is not None and serial.batches:
            exec_full = max(0.0, sum(b.t_end - b.t_start for b in serial.batches) - t_setup)
        return cls(
            ttft=run.ttft_s,
            gen_end=run.gen_s,
            t_setup=t_setup,
            chunks=tuple(figures),
            exec_full=exec_full,
        )


def uniform(
    n: int,
    total_tokens: int,
    tps: float,
    t_setup: float,
    exec_per_chunk: float,
    ttft: float = 0.0,
    delta: float = 0.0,
) -> LatencyModel:
    """The paper's uniform-chunk case: N equal chunks, evenly spaced."""
    per_chunk = total_tokens / n / tps
    chunks: Sequence[ChunkFigures] = [
        ChunkFigures(ttft + (i + 1) * per_chunk, delta, exec_per_chunk) for i in range(n)
    ]
    return LatencyModel(
        ttft=ttft, gen_end=ttft + total_tokens / tps, t_setup=t_setup, chunks=tuple(chunks)
    )
