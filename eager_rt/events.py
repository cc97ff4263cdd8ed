"""What a caller can watch while a stream runs.

The runtime reports each step live, through a callback (``on_event=``) or as
an async iterator (:func:`eager_rt.runtime.astream_events`). Times (``t``)
are seconds from the stream's start, read from :func:`eager_rt.clock.now` like
every timestamp of a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from eager_rt.chunk import Chunk
from eager_rt.executor import ExecResult, Output

if TYPE_CHECKING:
    from eager_rt.result import RunResult
    from eager_rt.tools import ToolCall

__all__ = [
    "ChunkDetected",
    "Event",
    "EventCallback",
    "ExecutionFinished",
    "ExecutionStarted",
    "Finished",
    "Interrupted",
    "OutputEvent",
    "ToolCallFinished",
    "ToolCallStarted",
]


@dataclass(frozen=True, slots=True)
class ChunkDetected:
    """The chunker emitted a complete statement (or an invalid one)."""

    type: ClassVar[str] = "chunk_detected"
    chunk: Chunk
    t: float


@dataclass(frozen=True, slots=True)
class ExecutionStarted:
    """A batch of chunks was sent to the session."""

    type: ClassVar[str] = "execution_started"
    batch: int
    chunk_indices: tuple[int, ...]
    code: str
    t: float


@dataclass(frozen=True, slots=True)
class OutputEvent:
    """The running batch produced output."""

    type: ClassVar[str] = "output"
    batch: int
    output: Output
    t: float


@dataclass(frozen=True, slots=True)
class ExecutionFinished:
    """A batch ended; ``result`` says how (``ok``, ``error``, ``timeout`` ...)."""

    type: ClassVar[str] = "execution_finished"
    batch: int
    result: ExecResult
    t: float


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """The code (or the runtime, speculating) called a host tool."""

    type: ClassVar[str] = "tool_call_started"
    call: ToolCall
    t: float


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """A host tool returned or raised; ``call`` holds its outcome."""

    type: ClassVar[str] = "tool_call_finished"
    call: ToolCall
    t: float


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The run stopped early: a statement failed and generation was cut off."""

    type: ClassVar[str] = "interrupted"
    reason: str
    t: float


@dataclass(frozen=True, slots=True)
class Finished:
    """Always the last event; carries the complete result."""

    type: ClassVar[str] = "finished"
    result: RunResult
    t: float


Event = (
    ChunkDetected
    | ExecutionStarted
    | OutputEvent
    | ExecutionFinished
    | ToolCallStarted
    | ToolCallFinished
    | Interrupted
    | Finished
)
EventCallback = Callable[[Event], None]
