"""Where a run was cut: the :class:`~eager_rt.result.RunError` of each way a run can fail.

The runtime (:mod:`eager_rt.runtime`) knows *that* something failed; these pure
functions say *where*, from the chunk records and the execution result alone:
which statement raised (a batch runs several, and it is padded to its stream
line, so the error's line names the statement), what ran before it, and the
stream offset from which the code never ran. Each returns a :class:`Failure`;
the runtime fills ``RunError.not_run`` from that offset once generation is over
(with ``on_error="continue"`` the stream keeps growing after the failure).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

from eager_rt.executor import ExecResult, Status
from eager_rt.result import ChunkRecord, RunError

__all__ = ["Failure", "fail_execution", "fail_source", "fail_syntax", "locate_failure"]

_STATUS_TO_KIND: dict[Status, Literal["runtime", "timeout", "died", "interrupted"]] = {
    Status.ERROR: "runtime",
    Status.TIMEOUT: "timeout",
    Status.DIED: "died",
    Status.INTERRUPTED: "interrupted",
}


class Failure(NamedTuple):
    """A run's error and the stream offset where the never-run code starts."""

    error: RunError
    not_run_from: int


def locate_failure(batch: Sequence[ChunkRecord], result: ExecResult) -> ChunkRecord | None:
    """The statement of ``batch`` that raised, from the stream line of the error."""
    if len(batch) == 1:
        return batch[0]
    lineno = result.error.lineno if result.error is not None else None
    if lineno is None:
        return None
    candidates = [r for r in batch if r.chunk.lineno <= lineno]
    return candidates[-1] if candidates else None


def fail_execution(
    batch: Sequence[ChunkRecord],
    result: ExecResult,
    *,
    records: Sequence[ChunkRecord],
    code: str,
    whole_program: bool,
) -> Failure:
    """A batch (or, in serial mode, the whole program) did not end ``ok``.

    ``records`` are all the run's chunks so far and ``code`` the stream so far.
    """
    failing = locate_failure(batch, result)
    if failing is not None:
        statement = failing.chunk.code
        before_end, after_start = failing.chunk.start, failing.chunk.end
        chunk_index: int | None = failing.chunk.index
        lineno: int | None = failing.chunk.lineno
    else:
        statement = code if whole_program else "".join(r.chunk.code for r in batch)
        before_end = 0 if whole_program else batch[0].chunk.start
        after_start = len(code) if whole_program else batch[-1].chunk.end
        chunk_index, lineno = None, None
    err = result.error
    if err is not None and err.lineno is not None:
        lineno = err.lineno
    if whole_program:
        # a serial run executes everything at once: what "ran" is all the code up to the failure
        code_before = code[:before_end]
    else:
        code_before = "".join(
            r.chunk.code
            for r in records
            if r.ran and r is not failing and r.chunk.end <= before_end
        )
    error = RunError(
        kind=_STATUS_TO_KIND.get(result.status, "runtime"),
        chunk_index=chunk_index,
        statement=statement,
        ename=err.ename if err else result.status.value,
        evalue=err.evalue if err else result.detail,
        traceback=list(err.traceback) if err else [],
        lineno=lineno,
        code_before=code_before,
        state_lost=result.state_lost,
    )
    return Failure(error, after_start)


def fail_syntax(record: ChunkRecord, records: Sequence[ChunkRecord]) -> Failure:
    """The chunker found a statement that can never compile; the run stops before it."""
    chunk = record.chunk
    info = chunk.error
    error = RunError(
        kind="syntax",
        chunk_index=chunk.index,
        statement=chunk.code,
        ename="SyntaxError",
        evalue=info.msg if info else "invalid syntax",
        lineno=info.lineno if info and info.lineno else chunk.lineno,
        code_before="".join(r.chunk.code for r in records if r.ran),
    )
    return Failure(error, chunk.start)


def fail_source(exc: Exception, records: Sequence[ChunkRecord]) -> Failure:
    """The stream broke: every complete statement ran; the cut-off tail did not."""
    error = RunError(
        kind="source",
        chunk_index=None,
        statement="",
        ename=type(exc).__name__,
        evalue=str(exc),
        code_before="".join(r.chunk.code for r in records if r.ran),
        cause=exc,
    )
    return Failure(error, records[-1].chunk.end if records else 0)
