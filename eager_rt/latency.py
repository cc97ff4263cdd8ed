"""The paper's latency model, evaluated on a run's own measured figures.

Given when each chunk was generated (t_g,i), its residual detection delay
(δ_i), its execution time (T_exe,i) and the backend's per-call overhead
(T_setup), :class:`LatencyModel` says what a parallel run should cost (closed
form), what it can never beat (lower bound) or exceed (upper bound), the best
speedup over serial, the regime, and, with host tools, the run's optimum had
every read-only call started as soon as it was written. The formulas and
what each figure means are in ``docs/latency.md``.

All times are seconds from the start of the LLM call.
"""

from __future__ import annotations

import bisect
import io
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from eager_rt.result import BatchRecord, RunResult

if TYPE_CHECKING:
    from eager_rt.tools import ToolCall

__all__ = ["ChunkFigures", "LatencyModel", "Regime", "ToolFigures", "call_text_times", "uniform"]

Regime = Literal["generation-dominated", "execution-dominated", "balanced"]


@dataclass(frozen=True, slots=True)
class ChunkFigures:
    """One chunk as the model counts it (seconds from the start of the LLM call)."""

    t_generated: float  #: t_g,i: the chunk's last token arrived
    delta: float  #: δ_i: residual detection delay
    exec_s: float  #: T_exe,i: execution time without the per-call overhead
    #: W_i: seconds of ``exec_s`` spent waiting for read-only tool calls
    tool_wait: float = 0.0
    #: R_i: the earliest those calls could all have returned (each started when written)
    tools_ready: float = 0.0


@dataclass(frozen=True, slots=True)
class ToolFigures:
    """One tool call as the model counts it (seconds from the start of the LLM call)."""

    started: float
    ended: float
    read_only: bool
    #: when the call's text was complete in the stream (None: not known, taken as ``started``)
    t_text: float | None = None

    @property
    def duration(self) -> float:
        """d_k: how long the call took."""
        return self.ended - self.started


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """A run's figures and what the model says about them (``report()`` has it all)."""

    ttft: float  #: T_FT
    gen_end: float  #: T_FT + L/v_gen: when the last token arrived
    t_setup: float  #: per-call overhead of the backend
    chunks: tuple[ChunkFigures, ...]
    t_setup_full: float | None = None  #: overhead of the one serial call (default: t_setup)
    exec_full: float | None = None  #: T_exe(full) measured serially (default: Σ T_exe,i)
    tools: tuple[ToolFigures, ...] = ()  #: the run's tool calls (wasted speculation left out)

    def __post_init__(self) -> None:
        if not self.chunks:
            raise ValueError("the latency model needs at least one chunk")

    # ------------------------------------------------------------ derived
    @property
    def n(self) -> int:
        """N: the number of chunks."""
        return len(self.chunks)

    @property
    def gen_after_ttft(self) -> float:
        """L/v_gen."""
        return self.gen_end - self.ttft

    @property
    def sum_exec(self) -> float:
        """Σ T_exe,i."""
        return sum(c.exec_s for c in self.chunks)

    @property
    def exec_total(self) -> float:
        """T_exe(full)."""
        return self.sum_exec if self.exec_full is None else self.exec_full

    @property
    def setup_full(self) -> float:
        """T_setup(full): the overhead of the one serial call."""
        return self.t_setup if self.t_setup_full is None else self.t_setup_full

    # -------------------------------------------------------------- model
    def serial(self) -> float:
        """Generate everything, then run it in one call."""
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

    def optimum(self) -> float:
        """The recursion with read-only tool time moved to when each call was written."""
        t_o = 0.0
        for c in self.chunks:
            own = max(0.0, c.exec_s - c.tool_wait)
            t_o = max(max(c.t_generated + c.delta, t_o) + self.t_setup + own, c.tools_ready)
        return t_o

    def e2el_optimum(self) -> float:
        """The run's own bound with tool time counted: it waits for the last token too."""
        return max(self.gen_end, self.optimum())

    def hideable_s(self) -> float:
        """Tool time speculation could still take off the end-to-end latency, at best."""
        return max(0.0, max(self.gen_end, self.parallel()) - self.e2el_optimum())

    def tool_s(self) -> float:
        """Σ d_k: the tool calls' time (overlapping calls each count)."""
        return sum(t.duration for t in self.tools)

    def tool_hidden_s(self) -> float:
        """The part of the tool calls' time that fell before the last token arrived."""
        return sum(max(0.0, min(t.ended, self.gen_end) - t.started) for t in self.tools)

    def upper_bound(self) -> float:
        """What a parallel run can never exceed: no regression against serial."""
        delta = max(c.delta for c in self.chunks)
        return self.gen_end + delta + self.n * self.t_setup + self.sum_exec

    def lower_bound(self) -> float:
        """What a parallel run can never beat."""
        first, last = self.chunks[0], self.chunks[-1]
        return max(
            last.t_generated + last.delta + self.t_setup + last.exec_s,
            first.t_generated + first.delta + self.n * self.t_setup + self.sum_exec,
        )

    def e2el_lower_bound(self) -> float:
        """What the measured end-to-end latency can never beat: it also waits for the last token."""
        return max(self.gen_end, self.lower_bound())

    def speedup_bound(self) -> float:
        """The best speedup over serial: 1 + (T_setup(full) + T_exe(full)) / (T_FT + L/v_gen)."""
        return 1.0 + (self.setup_full + self.exec_total) / self.gen_end if self.gen_end > 0 else 1.0

    def alpha(self) -> float:
        """Generation time per chunk."""
        return self.gen_after_ttft / self.n

    def beta(self) -> float:
        """Execution time per chunk, overhead included."""
        return self.t_setup + self.sum_exec / self.n

    def regime(self, tolerance: float = 0.05) -> Regime:
        """Which of α (generation per chunk) and β (execution per chunk) dominates."""
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
        """Every figure, JSON-ready; with the measured E2EL, how close it came to the bounds."""
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
        if self.tools:
            tool_s = self.tool_s()
            out["tool_calls"] = len(self.tools)
            out["tool_s"] = tool_s
            out["tool_hidden_s"] = self.tool_hidden_s()
            out["tool_hidden_share"] = self.tool_hidden_s() / tool_s if tool_s > 0 else None
            out["optimum_s"] = self.e2el_optimum()
            out["hideable_s"] = self.hideable_s()
        if measured_e2el is not None:
            out["measured_e2el_s"] = measured_e2el
            out["e2el_over_lower_bound"] = measured_e2el / self.e2el_lower_bound()
            if self.tools:
                out["e2el_over_optimum"] = measured_e2el / self.e2el_optimum()
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

        Tool calls: a call belongs to the batch that was running when the code
        made it (for a speculative call, when the code claimed it). W of a
        batch is the time its read-only calls were in flight while it ran,
        shared like its time; R is set on its last chunk, from the calls that
        returned before it ended. A call's text time is read from the stream's
        timeline (:func:`call_text_times`).
        """
        calls = [c for c in run.tool_calls if not c.wasted and c.ended is not None]
        texts = {
            name: call_text_times(run.code, run.piece_ends, run.piece_times, name)
            for name in {c.tool for c in calls}
        }
        tools = tuple(
            ToolFigures(c.started, c.ended, c.read_only, _text_time(c, texts[c.tool]))
            for c in calls
            if c.ended is not None
        )
        waits = _batch_waits(run.batches, calls, tools)
        figures: list[ChunkFigures] = []
        by_batch = {b.index: b for b in run.batches}
        for record in run.chunks:
            if record.batch is None or not record.chunk.runnable:
                continue
            batch = by_batch[record.batch]
            n = len(batch.chunk_indices)
            share = max(0.0, batch.t_end - batch.t_start - t_setup) / n
            wait, ready = waits.get(batch.index, (0.0, 0.0))
            last = record.chunk.index == batch.chunk_indices[-1]
            figures.append(
                ChunkFigures(
                    record.t_generated,
                    record.delta_s,
                    share,
                    tool_wait=wait / n,
                    tools_ready=ready if last else 0.0,
                )
            )
        exec_full = None
        if serial is not None and serial.batches:
            exec_full = max(0.0, sum(b.t_end - b.t_start for b in serial.batches) - t_setup)
        return cls(
            ttft=run.ttft_s,
            gen_end=run.gen_s,
            t_setup=t_setup,
            chunks=tuple(figures),
            exec_full=exec_full,
            tools=tools,
        )


def call_text_times(
    code: str, piece_ends: Sequence[int], piece_times: Sequence[float], name: str
) -> list[float]:
    """When each call of ``name`` written in ``code`` was complete: its ``)`` arrived.

    Calls are found by their name (``name(...)``, not ``obj.name(...)`` nor a
    ``def``); the times are those of the pieces that brought their closing
    parenthesis. Code that stops mid-way is read up to where it stops.
    """
    if not piece_ends:
        return []
    starts = [0]
    for line in io.StringIO(code).readlines():  # the lines tokenize reads (\n only)
        starts.append(starts[-1] + len(line))
    times: list[float] = []
    previous: tokenize.TokenInfo | None = None
    opened: list[int] = []  # depth of each open call of `name`
    depth = 0
    pending_name = False
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.OP and token.string in "([{":
                depth += 1
                if pending_name and token.string == "(":
                    opened.append(depth)
            elif token.type == tokenize.OP and token.string in ")]}":
                if opened and opened[-1] == depth and token.string == ")":
                    opened.pop()
                    row, col = token.start
                    offset = starts[row - 1] + col
                    piece = min(bisect.bisect_right(piece_ends, offset), len(piece_times) - 1)
                    times.append(piece_times[piece])
                depth -= 1
            pending_name = (
                token.type == tokenize.NAME
                and token.string == name
                and not (previous is not None and previous.string in (".", "def", "class"))
            )
            if token.type not in (tokenize.NL, tokenize.COMMENT):
                previous = token
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # the stream stopped mid-way: what came before counts
    return sorted(times)


def _text_time(call: ToolCall, texts: Sequence[float]) -> float | None:
    """The earliest text of this call's tool that was complete before the call started."""
    written = [t for t in texts if t <= call.started]
    return min(written) if written else None


def _batch_waits(
    batches: Sequence[BatchRecord], calls: Sequence[ToolCall], tools: Sequence[ToolFigures]
) -> dict[int, tuple[float, float]]:
    """Per batch: (W, R) from the read-only calls that belong to it."""
    mine: dict[int, list[ToolFigures]] = {}
    for call, figures in zip(calls, tools, strict=True):
        if not figures.read_only:
            continue
        moment = (
            call.claimed_at if call.speculative and call.claimed_at is not None else call.started
        )
        owner = next((b for b in batches if b.t_start <= moment <= b.t_end), None)
        if owner is None:
            owner = next((b for b in batches if b.t_start >= moment), None)
        if owner is not None:
            mine.setdefault(owner.index, []).append(figures)
    out: dict[int, tuple[float, float]] = {}
    for batch in batches:
        own = mine.get(batch.index, [])
        spans = sorted(
            (max(t.started, batch.t_start), min(t.ended, batch.t_end))
            for t in own
            if min(t.ended, batch.t_end) > max(t.started, batch.t_start)
        )
        wait, reach = 0.0, batch.t_start
        for start, end in spans:  # the union of the spans: gathered calls overlap
            wait += max(0.0, end - max(start, reach))
            reach = max(reach, end)
        ready = max(
            (
                (t.started if t.t_text is None else min(t.t_text, t.started)) + t.duration
                for t in own
                if t.ended <= batch.t_end
            ),
            default=0.0,
        )
        out[batch.index] = (wait, ready)
    return out


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
