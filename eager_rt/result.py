"""The outcome of one streamed run: what ran, what did not, and how long each part took.

Everything a caller (or a model being asked to repair its code) needs is here
as plain values: the generated code, each chunk with its timeline, each batch
with its :class:`~eager_rt.executor.ExecResult`, and on failure a
:class:`RunError` that separates the code that ran, the statement that failed
and the code that never ran.

Metric definitions follow the paper (all seconds, from the stream's start):

* ``gen_s``  generation time: first request to last piece received;
* ``exec_s`` time spent executing (sum of batch durations);
* ``nel_s``  non-overlapped execution latency: execution that falls after
  generation ended;
* ``e2el_s`` end-to-end latency: stream start to last execution end
  (= ``gen_s + nel_s`` when anything ran after generation);
* ``response_s`` the model's whole response, prose after the last code
  included (reported by a model source; None for plain code pieces).

A run whose stream held no statement to run is not ``ok`` but ``no_code``: a
model that answered in prose only (or put its code where no extractor finds
it) must not pass for a program that ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from eager_rt.chunk import Chunk
from eager_rt.executor import ExecResult, Output, display_bundles, stream_text

if TYPE_CHECKING:
    from eager_rt.speculation import SpeculationSummary
    from eager_rt.tools import ToolCall

__all__ = ["BatchRecord", "ChunkRecord", "RunError", "RunResult", "RunStatus"]

RunStatus = Literal[
    "ok", "no_code", "error", "syntax_error", "timeout", "died", "interrupted", "source_error"
]


@dataclass(slots=True)
class ChunkRecord:
    """One chunk and its timeline (seconds from the stream's start; None = never happened)."""

    chunk: Chunk
    t_generated: float  #: the piece that completed the statement arrived
    t_detected: float  #: the chunker returned it
    t_exec_start: float | None = None
    t_exec_end: float | None = None
    batch: int | None = None
    #: its code unit ended normally after it (a boundary, or the end of the stream):
    #: nothing the model writes later can belong to the same unit
    unit_complete: bool = False

    @property
    def ran(self) -> bool:
        """Whether the chunk's execution ended (in its batch)."""
        return self.t_exec_end is not None

    @property
    def delta_s(self) -> float:
        """Residual detection delay δ: statement complete -> chunk returned."""
        return self.t_detected - self.t_generated


@dataclass(slots=True)
class BatchRecord:
    """One call to ``Session.execute``: the chunks it merged and how it ended."""

    index: int
    chunk_indices: list[int]
    code: str
    result: ExecResult
    t_start: float  #: seconds from the stream's start
    t_end: float


@dataclass(slots=True)
class RunError:
    """Why a run stopped, and exactly where the program was cut."""

    #: ``source``: the token stream itself failed (connection dropped, API error event);
    #: every complete statement before the cut ran, the cut-off tail did not
    kind: Literal["runtime", "syntax", "timeout", "died", "interrupted", "source"]
    chunk_index: int | None  #: the failing statement's chunk, when it can be told
    statement: str  #: its code ('' when unknown)
    ename: str
    evalue: str
    traceback: list[str] = field(default_factory=list)
    lineno: int | None = None  #: stream line of the failing statement
    code_before: str = ""  #: code that ran before the failing statement
    not_run: str = ""  #: code generated but never executed
    state_lost: bool = False  #: the session was restarted: earlier variables are gone
    #: the exception behind a ``source`` error (not serialised)
    cause: BaseException | None = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        """``"ZeroDivisionError: division by zero at line 6"``: one line for a person."""
        where = f" at line {self.lineno}" if self.lineno else ""
        return f"{self.ename}: {self.evalue}{where}"


@dataclass(slots=True)
class RunResult:
    """One streamed run: its code, chunks, batches, outputs, error and metrics.

    ``status`` is ``ok``, ``no_code`` or the way the run failed; ``gen_s``,
    ``exec_s``, ``nel_s`` and ``e2el_s`` are the paper's metrics (see the
    module's docstring).
    """

    code: str
    status: RunStatus
    mode: Literal["eager", "serial"]
    backend: str
    chunks: list[ChunkRecord]
    batches: list[BatchRecord]
    outputs: list[Output]
    error: RunError | None
    stream_closed_early: bool
    pieces: int
    ttft_s: float
    gen_s: float
    exec_s: float
    nel_s: float
    e2el_s: float
    #: whatever the token source reported about itself (provider, unconsumed events ...)
    source_info: dict[str, Any] = field(default_factory=dict)
    #: every host tool call, in the order they started (see :mod:`eager_rt.tools`)
    tool_calls: list[ToolCall] = field(default_factory=list)
    #: the stream's timeline: the offset just past each piece, and when it arrived
    #: (s from the start); what the latency model reads tool calls' text times from
    piece_ends: list[int] = field(default_factory=list)
    piece_times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status == "ok" and not any(r.chunk.runnable for r in self.chunks):
            self.status = "no_code"  # decided here, so every producer of a result agrees

    @property
    def ok(self) -> bool:
        """Every statement ran without error."""
        return self.status == "ok"

    @property
    def response_s(self) -> float | None:
        """The model's whole response time, as its source reported it (None: not a model)."""
        value = self.source_info.get("response_s")
        return float(value) if isinstance(value, int | float) else None

    @property
    def stdout(self) -> str:
        """Everything the code printed to stdout, in order."""
        return stream_text(self.outputs, "stdout")

    @property
    def stderr(self) -> str:
        """Everything the code wrote to stderr, in order."""
        return stream_text(self.outputs, "stderr")

    @property
    def displays(self) -> list[dict[str, Any]]:
        """The MIME bundles the code displayed (figures), in order."""
        return display_bundles(self.outputs)

    @property
    def speculation(self) -> SpeculationSummary:
        """Calls speculated from literals and from session values, claimed and wasted."""
        from eager_rt.speculation import summarize

        return summarize(self.tool_calls)

    @property
    def ledger(self) -> list[ToolCall]:
        """The side-effecting tool calls that ran, in order: what a retried turn must know."""
        return [c for c in self.tool_calls if c.ran and not c.read_only]

    @property
    def executed_code(self) -> str:
        """The code of every chunk that was executed, in order."""
        return "".join(r.chunk.code for r in self.chunks if r.ran)

    def summary(self) -> dict[str, Any]:
        """The flat, JSON-ready figures the CLI prints."""
        return {
            "mode": self.mode,
            "backend": self.backend,
            "status": self.status,
            "gen_s": self.gen_s,
            "exec_s": self.exec_s,
            "nel_s": self.nel_s,
            "e2el_s": self.e2el_s,
            "response_s": self.response_s,
            "ttft_s": self.ttft_s,
            "chunks": sum(1 for r in self.chunks if r.chunk.runnable),
            "batches": len(self.batches),
            "tool_calls": len(self.tool_calls),
            "stdout": self.stdout,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, as JSON-ready values (MIME bundles included)."""
        return {
            **self.summary(),
            "code": self.code,
            "stderr": self.stderr,
            "stream_closed_early": self.stream_closed_early,
            "pieces": self.pieces,
            "outputs": [
                {"kind": o.kind, "text": o.text, "data": o.data, "line": o.line}
                for o in self.outputs
            ],
            "error": None
            if self.error is None
            else {
                "kind": self.error.kind,
                "chunk_index": self.error.chunk_index,
                "statement": self.error.statement,
                "ename": self.error.ename,
                "evalue": self.error.evalue,
                "traceback": self.error.traceback,
                "lineno": self.error.lineno,
                "code_before": self.error.code_before,
                "not_run": self.error.not_run,
                "state_lost": self.error.state_lost,
            },
            "chunk_timeline": [
                {
                    "index": r.chunk.index,
                    "kind": r.chunk.kind,
                    "lineno": r.chunk.lineno,
                    "t_generated": r.t_generated,
                    "t_detected": r.t_detected,
                    "t_exec_start": r.t_exec_start,
                    "t_exec_end": r.t_exec_end,
                    "batch": r.batch,
                }
                for r in self.chunks
            ],
            "batch_timeline": [
                {
                    "index": b.index,
                    "chunks": b.chunk_indices,
                    "status": b.result.status.value,
                    "t_start": b.t_start,
                    "t_end": b.t_end,
                }
                for b in self.batches
            ],
            "tool_calls": [_call_dict(c) for c in self.tool_calls],
            "ledger": [c.id for c in self.ledger],
            "source": self.source_info,
        }


def _call_dict(call: ToolCall) -> dict[str, Any]:
    """A tool call record as JSON-ready values (bytes arguments in the wire's form)."""
    from eager_rt.backends import _tool_wire as wire

    return {
        "id": call.id,
        "tool": call.tool,
        "arguments": wire.encode(call.arguments),
        "started": call.started,
        "ended": call.ended,
        "ok": call.ok,
        "error": call.error,
        "read_only": call.read_only,
        "speculative": call.speculative,
        "claimed": call.claimed,
        "wasted": call.wasted,
        "approved": call.approved,
        "origin": call.origin,
        "claimed_at": call.claimed_at,
        "line": call.line,
    }
