"""What a live view of a run shows, folded from the runtime's events: one set of rules.

The terminal view (:mod:`eager_rt.cli.view`, rich) and the notebook view
(:mod:`eager_rt.ipython_view`, HTML) both draw a :class:`LiveModel`: which
statements exist and where they sit in the stream, the state of each
(detected, queued, running, done, failed, not run), which output belongs
under which statement, the notes said after the code, and the status line's
facts (tokens, tok/s, what is running). The renderers only draw it; the rules
live here, so both views say the same thing. This module imports no rendering
library, and it takes no lock: a renderer that is drawn from another thread
holds its own lock around every call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from eager_rt.chunk import Chunk
from eager_rt.events import (
    ChunkDetected,
    Event,
    ExecutionFinished,
    ExecutionStarted,
    Finished,
    Interrupted,
    OutputEvent,
    ToolCallFinished,
)
from eager_rt.result import RunResult

if TYPE_CHECKING:
    from eager_rt.tools import ToolCall

__all__ = [
    "FINAL",
    "MARKS",
    "Block",
    "LiveModel",
    "ModelWatcher",
    "Note",
    "PieceKind",
    "State",
    "Statement",
    "Tone",
    "Watched",
    "Watcher",
    "describe_tool_call",
]

State = Literal["detected", "queued", "running", "done", "failed", "not_run"]
#: each state's mark, the mark's ASCII stand-in and its word, in the order a statement
#: goes through them (a symbol as well as a colour, so a view reads without colour)
MARKS: dict[State, tuple[str, str, str]] = {
    "detected": ("○", "o", "detected"),
    "queued": ("…", "~", "queued"),
    "running": ("▶", ">", "running"),
    "done": ("✓", "+", "done"),
    "failed": ("✗", "x", "failed"),
    "not_run": ("-", "-", "not run"),
}
#: states a statement does not leave (but a failure's message may still change)
FINAL: frozenset[State] = frozenset({"done", "failed", "not_run"})

#: ``stdout``/``stderr``: text; ``display``: the renderer's form of a display bundle;
#: ``tool``: a line about a host tool call
PieceKind = Literal["stdout", "stderr", "display", "tool"]
#: what a note is about, which a renderer turns into a colour
Tone = Literal["info", "tool", "warning", "error"]


@dataclass(slots=True)
class Statement:
    """One detected statement (or invalid one) and what the view knows of it."""

    chunk: Chunk
    state: State
    first: int  #: 0-based line of the stream where its code starts
    last: int  #: 0-based line where its code ends
    batch: int | None = None  #: the execution it ran in
    note: str = ""  #: why it failed


@dataclass(slots=True)
class Block:
    """Output of one execution, shown under its anchor statement.

    An execution has one block for the output the backend placed under each
    of its statements (``Output.line``), and one for the rest, under the
    anchor chosen for the whole execution (see :meth:`LiveModel.anchor_of_failed`).
    """

    batch: int
    chunks: tuple[int, ...]
    anchor: int  #: the statement it is shown under (see :meth:`LiveModel.anchor_of_failed`)
    pieces: list[tuple[PieceKind, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Note:
    """A line said after the code (a tool call outside any execution, an early stop)."""

    tone: Tone
    text: str


def describe_tool_call(call: ToolCall, *, speculation: bool = False) -> str:
    """A host tool call in one line: which, how it ended, how long it took."""
    how = "returned" if call.ok else f"failed: {call.error}"
    took = f" in {call.duration:.3f}s" if call.duration is not None else ""
    said = ""
    if speculation and call.speculative:
        said = " (speculative, unclaimed)" if call.wasted else " (speculative)"
    return f"tool {call.tool}() #{call.id} {how}{took}{said}"


class LiveModel:
    """Code pieces, prose and runtime events in; statements, outputs and status facts out.

    ``show_display`` turns a display bundle into the piece the renderer will
    draw; it is called once, as the output arrives (saving a figure there
    saves it once). ``describe_error`` words the run's error for the failing
    statement (default: :meth:`~eager_rt.result.RunError.describe`).
    """

    def __init__(
        self,
        *,
        show_display: Callable[[dict[str, Any]], str],
        describe_error: Callable[[RunResult], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.show_display = show_display
        self.describe_error = describe_error
        self.clock = clock
        self.text = ""  #: the code streamed so far
        self.prose_before = ""  #: model text before the first code piece
        self.prose_after = ""  #: model text after it
        self.statements: dict[int, Statement] = {}
        self.order: list[int] = []  #: chunk indices in stream order
        self.blocks: dict[int, Block] = {}  #: by batch: its output that says no statement
        self.placed: dict[tuple[int, int], Block] = {}  #: by (batch, statement): the rest
        self.running: int | None = None  #: the batch running now
        self.notes: list[Note] = []
        self.pieces = 0  #: code pieces (tokens) received
        self.t0 = clock()
        self.first_piece: float | None = None
        self.last_piece: float | None = None
        self.t_end: float | None = None
        self.generating = True
        self.finished = False
        self.detected_end_line = 0  #: the line after the last detected statement
        self.detected_end = 0  #: the offset just past the last detected chunk (trivia too)
        self.version = 0  #: moves on every change; a renderer redraws when it does
        self._by_first: dict[int, int] = {}
        self._by_last: dict[int, list[int]] = {}

    # ------------------------------------------------------------------ input
    def start_clock(self) -> None:
        """The run starts now: the status line's time counts from here."""
        self.t0 = self.clock()
        self.version += 1

    def code(self, piece: str) -> None:
        """A piece of code arrived from the model."""
        now = self.clock()
        if self.first_piece is None:
            self.first_piece = now
        self.last_piece = now
        self.pieces += 1
        self.text += piece
        self.version += 1

    def prose(self, text: str) -> None:
        """Model text outside the code (a chat answer's sentences)."""
        if self.first_piece is None:
            self.prose_before += text
        else:
            self.prose_after += text
        self.version += 1

    def note(self, text: str, tone: Tone = "info") -> None:
        self.notes.append(Note(tone, text))
        self.version += 1

    def generation_ended(self) -> None:
        self.generating = False
        self.version += 1

    def stop(self, reason: str) -> None:
        """The run was cancelled (timeout, interrupt): what ran stays, the rest is settled."""
        if self.finished:
            return
        self.finished, self.generating, self.running = True, False, None
        self.t_end = self.clock()
        for statement in self.statements.values():
            if statement.state == "running":
                statement.state, statement.note = "failed", reason
            elif statement.state in ("detected", "queued"):
                statement.state = "not_run"
        self.version += 1

    def apply(self, event: Event) -> None:
        """Fold one runtime event in."""
        if isinstance(event, ChunkDetected):
            self._detected(event.chunk)
        elif isinstance(event, ExecutionStarted):
            self._started(event)
        elif isinstance(event, OutputEvent):
            self._output(event)
        elif isinstance(event, ExecutionFinished):
            self._executed(event)
        elif isinstance(event, ToolCallFinished):
            said = describe_tool_call(event.call)
            block = self.blocks.get(self.running) if self.running is not None else None
            if block is not None:
                if event.call.line is not None:  # under the statement that made the call
                    block = self._placed_block(block, event.call.line)
                block.pieces.append(("tool", said + "\n"))
            else:
                self.notes.append(Note("tool", said))
        elif isinstance(event, Interrupted):
            self.generating = False
            self.notes.append(Note("warning", f"generation stopped early: {event.reason}"))
        elif isinstance(event, Finished):
            self._settle(event.result)
        self.version += 1

    # ------------------------------------------------------------------ queries
    def at_line(self, line: int) -> Statement | None:
        """The statement whose code starts on ``line`` (0-based), if any."""
        index = self._by_first.get(line)
        return self.statements[index] if index is not None else None

    def ending_at(self, line: int) -> list[Statement]:
        """The statements whose code ends on ``line`` (0-based): their output goes after it."""
        return [self.statements[i] for i in self._by_last.get(line, ())]

    def blocks_under(self, index: int) -> list[Block]:
        """The output shown under statement ``index``, execution by execution."""
        placed = [b for (_, anchor), b in self.placed.items() if anchor == index]
        blocks = [b for b in self.blocks.values() if b.anchor == index]
        return sorted(placed + blocks, key=lambda b: b.batch)  # stable: placed first

    def states(self) -> list[tuple[int, State]]:
        """Each statement's chunk index and state, in stream order."""
        return [(i, self.statements[i].state) for i in self.order]

    def counts(self) -> dict[str, int]:
        """How many statements are in each state, by its word, in stream order of first use."""
        counts: dict[str, int] = {}
        for index in self.order:
            word = MARKS[self.statements[index].state][2]
            counts[word] = counts.get(word, 0) + 1
        return counts

    def elapsed(self) -> float:
        """Seconds since the start, frozen when the run ends."""
        return (self.t_end if self.t_end is not None else self.clock()) - self.t0

    def rate(self) -> float | None:
        """Code pieces a second between the first and the last one, once there are two."""
        if self.first_piece is None or self.last_piece is None:
            return None
        window = self.last_piece - self.first_piece
        return (self.pieces - 1) / window if window > 0 and self.pieces > 1 else None

    def doing(self) -> str:
        """What is happening now, in words: the end of the status line."""
        if self.finished:
            return "finished"
        if self.running is not None:
            lines = sorted(
                self.statements[i].chunk.lineno
                for i in self.blocks[self.running].chunks
                if i in self.statements
            )
            if not lines:
                where = "code"
            elif len(lines) == 1:
                where = f"line {lines[0]}"
            else:
                where = f"lines {lines[0]}-{lines[-1]}"
            return f"running {where}" + (", model writing" if self.generating else "")
        if self.first_piece is None:
            return "waiting for the first token"
        return "model writing" if self.generating else "idle"

    # ------------------------------------------------------------------ the rules
    def _detected(self, chunk: Chunk) -> None:
        self.detected_end = max(self.detected_end, chunk.end)
        if chunk.kind == "trivia":
            return
        code = chunk.code
        # a chunk may carry the blank lines before it and the comment after it: the mark
        # goes on its first line of code, its output after its last
        first = chunk.lineno - 1 + code[: len(code) - len(code.lstrip())].count("\n")
        last = first + code.strip().count("\n")
        statement = Statement(chunk, "queued" if self.running is not None else "detected",
                              first, last)  # fmt: skip
        if chunk.kind == "syntax_error":
            statement.state = "failed"
            statement.note = f"SyntaxError: {chunk.error.msg}" if chunk.error else "SyntaxError"
        self.statements[chunk.index] = statement
        self.order.append(chunk.index)
        self._by_first[first] = chunk.index
        self._by_last.setdefault(last, []).append(chunk.index)
        self.detected_end_line = max(self.detected_end_line, last + 1)

    def _started(self, event: ExecutionStarted) -> None:
        self.running = event.batch
        anchor = event.chunk_indices[-1] if event.chunk_indices else -1
        self.blocks[event.batch] = Block(event.batch, event.chunk_indices, anchor)
        for index in event.chunk_indices:
            statement = self.statements.get(index)
            if statement is not None:
                statement.state, statement.batch = "running", event.batch

    def _output(self, event: OutputEvent) -> None:
        block = self.blocks.get(event.batch)
        if block is None:
            return
        output = event.output
        if output.line is not None:
            block = self._placed_block(block, output.line)
        if output.kind in ("stdout", "stderr"):
            block.pieces.append((output.kind, output.text))
        elif output.kind == "display" and output.data is not None:
            block.pieces.append(("display", self.show_display(output.data)))
        elif output.kind == "clear":  # clear_output(): a progress display redraws itself
            for other in (self.blocks[event.batch], *self._placed_of(event.batch)):
                other.pieces.clear()

    def _placed_block(self, block: Block, line: int) -> Block:
        """The block under the statement of ``block``'s execution that holds ``line``."""
        starts = [(s.chunk.lineno, i) for i in block.chunks if (s := self.statements.get(i))]
        owner = max((start for start in starts if start[0] <= line), default=None)
        if owner is None:
            return block
        key = (block.batch, owner[1])
        placed = self.placed.get(key)
        if placed is None:
            placed = self.placed[key] = Block(block.batch, block.chunks, key[1])
        return placed

    def _placed_of(self, batch: int) -> list[Block]:
        return [b for (of, _), b in self.placed.items() if of == batch]

    def _executed(self, event: ExecutionFinished) -> None:
        """A batch ended: its statements are done, or failed and not run after the failure."""
        self.running = None
        block = self.blocks.get(event.batch)
        if block is None:
            return
        result = event.result
        failing: int | None = None
        if not result.ok:
            lineno = result.error.lineno if result.error is not None else None
            candidates = [
                i
                for i in block.chunks
                if i in self.statements
                and (lineno is None or self.statements[i].chunk.lineno <= lineno)
            ]
            failing = candidates[-1] if candidates else block.chunks[-1]
            block.anchor = self.anchor_of_failed(block, failing)
        seen_failure = False
        for index in block.chunks:
            statement = self.statements.get(index)
            if statement is None:
                continue
            if index == failing:
                statement.state, seen_failure = "failed", True
            else:
                statement.state = "not_run" if seen_failure else "done"
        for statement in self.statements.values():
            if statement.state == "queued":  # nothing runs now: waiting for nothing
                statement.state = "detected"

    def anchor_of_failed(self, block: Block, failing: int) -> int:
        """Where a failed execution's unplaced output goes: under its last statement that ran.

        Output the backend did not place under its statement (``Output.line``
        is None: a backend that cannot tell, a thread's output) cannot be
        split between the statements of one execution; most statements that
        fail raise before they print, so it goes under the statement before
        the failing one (the failing one when it came first), and the failing
        statement shows its error alone, whether or not it was batched with
        the statements before it.
        """
        ran = [i for i in block.chunks[: block.chunks.index(failing)] if i in self.statements]
        return ran[-1] if ran else failing

    def _settle(self, result: RunResult) -> None:
        """The run is over: every statement takes its final state from the result."""
        self.finished, self.generating, self.running = True, False, None
        self.t_end = self.clock()
        error = result.error
        message = ""
        if error is not None:
            message = self.describe_error(result) if self.describe_error else error.describe()
        for record in result.chunks:
            statement = self.statements.get(record.chunk.index)
            if statement is None:
                continue
            if error is not None and error.chunk_index == record.chunk.index:
                statement.state, statement.note = "failed", message
                for block in self.blocks.values():
                    if record.chunk.index in block.chunks:
                        block.anchor = self.anchor_of_failed(block, record.chunk.index)
            elif record.ran:
                statement.state = "done"
            elif statement.state != "failed":
                statement.state = "not_run"
        if error is not None and error.chunk_index is None:
            self.notes.append(Note("error", f"failed: {message}"))


class Watcher(Protocol):
    """What watches a run: the plain printer, the terminal view, the notebook view."""

    def code(self, piece: str) -> None: ...

    def prose(self, text: str) -> None: ...

    def generation_ended(self) -> None: ...

    def __call__(self, event: Event) -> None: ...


class ModelWatcher:
    """A :class:`Watcher` that folds what it is fed into :attr:`model`, under one lock.

    A renderer subclasses it and draws the model, holding :attr:`lock` while it
    reads (it may draw from another thread than the one feeding it).
    """

    def __init__(self, model: LiveModel) -> None:
        self.model = model
        self.lock = threading.RLock()

    def code(self, piece: str) -> None:
        """A piece of code arrived from the model."""
        with self.lock:
            self.model.code(piece)

    def prose(self, text: str) -> None:
        """Model text outside the code (a chat answer's sentences)."""
        with self.lock:
            self.model.prose(text)

    def note(self, text: str, tone: Tone = "info") -> None:
        with self.lock:
            self.model.note(text, tone)

    def generation_ended(self) -> None:
        with self.lock:
            self.model.generation_ended()

    def stop(self, reason: str) -> None:
        """The run was cancelled (timeout, interrupt): what ran stays, the rest is settled."""
        with self.lock:
            self.model.stop(reason)

    def __call__(self, event: Event) -> None:
        with self.lock:
            self.model.apply(event)


class Watched:
    """A token stream that also hands each piece to a view as it is released.

    The source's ``info()`` (what the runtime records about it) passes through.
    """

    def __init__(
        self,
        source: AsyncIterable[str],
        on_piece: Callable[[str], None],
        on_end: Callable[[], None],
    ) -> None:
        self.source = source
        self.on_piece = on_piece
        self.on_end = on_end

    def info(self) -> dict[str, Any]:
        getter = getattr(self.source, "info", None)
        reported = getter() if callable(getter) else None
        return reported if isinstance(reported, dict) else {}

    async def __aiter__(self) -> AsyncIterator[str]:
        async for piece in self.source:
            self.on_piece(piece)
            yield piece
        self.on_end()
