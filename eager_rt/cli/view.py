"""The live terminal view: the code as it streams, each statement's state, its output.

What a person watching ``eager run`` or ``eager chat`` in a terminal sees. The
code appears piece by piece; each statement gets a mark in the gutter as the
runtime detects, queues, runs and finishes it (a symbol and a colour, so it
reads without colour too), its output appears under it, and a status line
says how fast tokens arrive, how long the run has taken and what is running.

Finished statements are printed for good (they scroll up like any terminal
output); only the statements still in flight, the line being written and the
status line are redrawn, cropped to the terminal's height (the newest lines
kept). Events arrive on the event loop while rich redraws on its own thread,
so both take one lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.syntax import Syntax
from rich.text import Text

from eager_rt.chunk import Chunk
from eager_rt.cli.figures import FigureSaver, describe_bundle
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

__all__ = ["MARKS", "LiveView", "State", "Watched", "legend"]

State = Literal["detected", "queued", "running", "done", "failed", "not_run"]

#: each state's symbol, its ASCII stand-in, its word and its style
MARKS: dict[State, tuple[str, str, str, str]] = {
    "detected": ("○", "o", "detected", "bright_black"),
    "queued": ("…", "~", "queued", "yellow"),
    "running": ("▶", ">", "running", "bold cyan"),
    "done": ("✓", "+", "done", "green"),
    "failed": ("✗", "x", "failed", "bold red"),
    "not_run": ("-", "-", "not run", "bright_black"),
}
#: characters of a statement's output the live region redraws (the newest)
_LIVE_TAIL = 16_384
_FINAL: frozenset[State] = frozenset({"done", "failed", "not_run"})


def _unicode(console: Console) -> bool:
    return console.encoding.lower().replace("-", "").startswith("utf")


def legend(console: Console) -> Text:
    """One line naming every mark, shown before the code."""
    text = Text("marks: ", style="dim")
    index = 0 if _unicode(console) else 1
    for symbol_word in MARKS.values():
        text.append(symbol_word[index], style=symbol_word[3])
        text.append(f" {symbol_word[2]}   ", style="dim")
    return text


@dataclass(slots=True)
class _Statement:
    chunk: Chunk
    state: State
    first: int  #: 0-based line of the stream where it starts
    last: int  #: 0-based line where it ends
    batch: int | None = None
    note: str = ""  #: why it failed


@dataclass(slots=True)
class _Block:
    """One execution's output and notes, shown under its anchor statement."""

    chunks: tuple[int, ...]
    anchor: int  #: the statement it is shown under (the failing one, once known)
    lines: list[tuple[str, str]] = field(default_factory=list)  #: (style, text) pieces


class LiveView:
    """Feed it code pieces (:meth:`code`), prose (:meth:`prose`) and runtime events."""

    def __init__(
        self,
        console: Console,
        *,
        label: str,
        figures: FigureSaver | None = None,
        describe_error: Callable[[RunResult], str] | None = None,
        refresh_per_second: float = 8.0,
    ) -> None:
        self.console = console
        self.label = label
        self.figures = figures
        self.describe_error = describe_error
        self._unicode = _unicode(console)
        self._lock = threading.RLock()
        self._text = ""
        self._prose_before = ""
        self._prose_after = ""
        self._statements: dict[int, _Statement] = {}
        self._by_first: dict[int, int] = {}
        self._by_last: dict[int, list[int]] = {}
        self._detected_end = 0  #: the line after the last detected statement
        self._blocks: dict[int, _Block] = {}
        self._running: int | None = None
        self._committed = 0  #: lines of the stream printed for good
        self._notes: list[tuple[str, str]] = []
        #: lines committed under the lock, printed after it is released: rich's own lock is
        #: held while it asks for the live region, so printing under ours could deadlock
        self._pending: list[RenderableType] = []
        self._pieces = 0
        self._t0 = time.monotonic()
        self._first_piece: float | None = None
        self._last_piece: float | None = None
        self._generating = True
        self._finished = False
        self._syntax = Syntax("", "python", theme="ansi_dark", background_color="default")
        self._live = Live(
            console=console,
            get_renderable=self._render,
            refresh_per_second=refresh_per_second,
            transient=True,
        )

    # -------------------------------------------------------------- lifecycle
    def __enter__(self) -> LiveView:
        self._t0 = time.monotonic()
        self.console.print(legend(self.console))
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._finish_lines()
        self._flush()
        self._live.stop()

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return
        if self._live.is_started:
            # the live region is redrawn under what is printed: draw it without these lines
            self._live.refresh()
        # soft wrap: the terminal wraps long lines itself (rich folding 10 MB of output
        # would hold the event loop for a minute)
        self._live.console.print(Group(*pending), soft_wrap=True)

    # -------------------------------------------------------------- input
    def code(self, piece: str) -> None:
        """A piece of code arrived from the model."""
        now = time.monotonic()
        with self._lock:
            if self._first_piece is None:
                self._first_piece = now
                if self._prose_before:
                    self._print(Text(self._prose_before.rstrip("\n"), style="italic"))
                    self._prose_before = ""
            self._last_piece = now
            self._pieces += 1
            self._text += piece
        self._flush()

    def prose(self, text: str) -> None:
        """Model text outside the code (chat): shown before or after the code."""
        with self._lock:
            if self._first_piece is None:
                self._prose_before += text
            else:
                self._prose_after += text

    def note(self, text: str, style: str = "dim") -> None:
        with self._lock:
            self._notes.append((style, text))

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._on_event(event)
            self._commit()
        self._flush()

    # -------------------------------------------------------------- events
    def _on_event(self, event: Event) -> None:
        if isinstance(event, ChunkDetected):
            self._detected(event.chunk)
        elif isinstance(event, ExecutionStarted):
            self._running = event.batch
            anchor = event.chunk_indices[-1] if event.chunk_indices else -1
            self._blocks[event.batch] = _Block(event.chunk_indices, anchor)
            for index in event.chunk_indices:
                statement = self._statements.get(index)
                if statement is not None:
                    statement.state, statement.batch = "running", event.batch
        elif isinstance(event, OutputEvent):
            self._output(event)
        elif isinstance(event, ExecutionFinished):
            self._executed(event)
        elif isinstance(event, ToolCallFinished):
            call = event.call
            how = "returned" if call.ok else f"failed: {call.error}"
            took = f" in {call.duration:.3f}s" if call.duration is not None else ""
            line = f"tool {call.tool}() #{call.id} {how}{took}\n"
            block = self._blocks.get(self._running) if self._running is not None else None
            if block is not None:
                block.lines.append(("magenta", line))
            else:
                self._notes.append(("magenta", line.rstrip("\n")))
        elif isinstance(event, Interrupted):
            self._generating = False
            self._notes.append(("yellow", f"generation stopped early: {event.reason}"))
        elif isinstance(event, Finished):
            self._settle(event.result)

    def _detected(self, chunk: Chunk) -> None:
        if chunk.kind == "trivia":
            return
        code = chunk.code
        body = code.strip()
        # a chunk may carry the blank lines before it and the comment after it: the mark
        # goes on its first line of code, its output after its last
        first = chunk.lineno - 1 + code[: len(code) - len(code.lstrip())].count("\n")
        last = first + body.count("\n")
        if chunk.kind == "syntax_error":
            statement = _Statement(chunk, "failed", first, last)
            info = chunk.error
            statement.note = f"SyntaxError: {info.msg}" if info is not None else "SyntaxError"
        else:
            statement = _Statement(chunk, "queued" if self._running is not None else "detected",
                                   first, last)  # fmt: skip
        self._statements[chunk.index] = statement
        self._by_first[first] = chunk.index
        self._by_last.setdefault(last, []).append(chunk.index)
        self._detected_end = max(self._detected_end, last + 1)

    def _output(self, event: OutputEvent) -> None:
        block = self._blocks.get(event.batch)
        if block is None:
            return
        output = event.output
        if output.kind == "stdout":
            block.lines.append(("", output.text))
        elif output.kind == "stderr":
            block.lines.append(("red", output.text))
        elif output.kind == "display" and output.data is not None:
            shown = (
                self.figures.describe(output.data)
                if self.figures is not None
                else describe_bundle(output.data)
            )
            if block.lines and not block.lines[-1][1].endswith("\n"):
                block.lines.append(("", "\n"))
            block.lines.append(("cyan", shown + "\n"))

    def _executed(self, event: ExecutionFinished) -> None:
        self._running = None
        block = self._blocks.get(event.batch)
        if block is None:
            return
        result = event.result
        failing: int | None = None
        if not result.ok:
            lineno = result.error.lineno if result.error is not None else None
            candidates = [
                i
                for i in block.chunks
                if i in self._statements
                and (lineno is None or self._statements[i].chunk.lineno <= lineno)
            ]
            failing = candidates[-1] if candidates else block.chunks[-1]
            block.anchor = failing
        seen_failure = False
        for index in block.chunks:
            statement = self._statements.get(index)
            if statement is None:
                continue
            if index == failing:
                statement.state, seen_failure = "failed", True
            else:
                statement.state = "not_run" if seen_failure else "done"
        for statement in self._statements.values():
            if statement.state == "queued":
                statement.state = "detected"

    def _settle(self, result: RunResult) -> None:
        """The run is over: every statement gets its final mark from the result."""
        self._finished, self._generating, self._running = True, False, None
        error = result.error
        for record in result.chunks:
            statement = self._statements.get(record.chunk.index)
            if statement is None:
                continue
            if error is not None and error.chunk_index == record.chunk.index:
                statement.state = "failed"
                statement.note = (
                    self.describe_error(result) if self.describe_error else error.describe()
                )
                for block in self._blocks.values():
                    if record.chunk.index in block.chunks:
                        block.anchor = record.chunk.index
            elif record.ran:
                statement.state = "done"
            elif statement.state != "failed":
                statement.state = "not_run"
        if error is not None and error.chunk_index is None:
            message = self.describe_error(result) if self.describe_error else error.describe()
            self._notes.append(("bold red", f"failed: {message}"))

    # -------------------------------------------------------------- drawing
    def _mark(self, state: State) -> Text:
        symbol, ascii_symbol, _word, style = MARKS[state]
        return Text(symbol if self._unicode else ascii_symbol, style=style)

    def _lines(self, start: int, stop: int | None, *, live: bool) -> Iterator[Text]:
        """The stream's lines from ``start`` (to ``stop``), each with its gutter and output."""
        source = self._text.split("\n")
        complete = len(source) - 1  # the last element is the line still being written
        stop = len(source) if stop is None else min(stop, len(source))
        if start >= stop:
            return
        highlighted = self._syntax.highlight("\n".join(source[start:stop])).split("\n")
        for offset, line_no in enumerate(range(start, stop)):
            code = highlighted[offset] if offset < len(highlighted) else Text(source[line_no])
            code.rstrip()
            partial = line_no >= complete
            if partial and not source[line_no] and not (live and self._generating):
                continue
            index = self._by_first.get(line_no)
            statement = self._statements.get(index) if index is not None else None
            line = Text()
            line.append_text(self._mark(statement.state) if statement else Text(" "))
            line.append(f" {line_no + 1:>3} ", style="dim")
            line.append_text(code)
            if partial and live and self._generating:
                line.append("▌" if self._unicode else "_", style="blink")
            elif statement is None and line_no >= self._detected_end and self._finished:
                line.stylize("dim")
            yield line
            yield from self._under(line_no, live)

    def _under(self, line_no: int, live: bool) -> Iterator[Text]:
        """The output and error shown under the statement that ends on ``line_no``."""
        for index in self._by_last.get(line_no, ()):
            statement = self._statements[index]
            for block in self._blocks.values():
                if block.anchor == index and block.lines:
                    yield from _output_lines(block.lines, _LIVE_TAIL if live else None)
            if statement.state == "failed" and statement.note:
                bar = "│" if self._unicode else "|"
                yield Text(f"      {bar} {statement.note}", style="bold red")

    def _commit(self) -> None:
        """Print for good every line whose statements are all final."""
        ordered = sorted(self._statements.values(), key=lambda s: s.first)
        upto = self._committed
        for statement in ordered:
            if statement.last < self._committed:
                continue
            if statement.state not in _FINAL or (
                statement.state == "failed" and not self._finished
            ):
                break  # a failure's message is final only once the run is
            upto = statement.last + 1
        if upto > self._committed:
            for line in self._lines(self._committed, upto, live=False):
                self._print(line)
            self._committed = upto

    def _finish_lines(self) -> None:
        """Print for good whatever is left: the live region vanishes when the view stops."""
        self._commit()
        for line in self._lines(self._committed, None, live=False):
            self._print(line)
        self._committed = len(self._text.split("\n"))
        for prose in (self._prose_before, self._prose_after):
            if prose.strip():
                self._print(Text(prose.strip("\n"), style="italic"))
        self._prose_before = self._prose_after = ""
        for style, note in self._notes:
            self._print(Text(note, style=style))
        self._notes.clear()
        self._print(self._status())

    def _print(self, renderable: RenderableType) -> None:
        self._pending.append(renderable)

    def _status(self) -> Text:
        now = time.monotonic()
        elapsed = now - self._t0
        rate = ""
        if self._first_piece is not None and self._last_piece is not None:
            window = self._last_piece - self._first_piece
            if window > 0 and self._pieces > 1:
                rate = f", {(self._pieces - 1) / window:.0f} tok/s"
        if self._finished:
            doing = "finished"
        elif self._running is not None:
            block = self._blocks[self._running]
            lines = sorted(
                self._statements[i].chunk.lineno for i in block.chunks if i in self._statements
            )
            where = (
                f"line {lines[0]}" if len(lines) == 1 else f"lines {lines[0]}-{lines[-1]}"
                if lines else "code"
            )  # fmt: skip
            doing = f"running {where}" + ("" if not self._generating else ", model writing")
        elif self._first_piece is None:
            doing = "waiting for the first token"
        elif self._generating:
            doing = "model writing"
        else:
            doing = "idle"
        text = Text()
        text.append(f"{self.label}", style="bold")
        text.append(f" | {elapsed:5.1f}s | {self._pieces} tokens{rate} | ", style="dim")
        text.append(doing, style="cyan" if self._running is not None else "")
        return text

    def generation_ended(self) -> None:
        with self._lock:
            self._generating = False

    def _render(self) -> RenderableType:
        with self._lock:
            room = max(self.console.height - 2, 3)
            total = self._text.count("\n") + 1
            start = max(self._committed, total - room)
            lines = list(self._lines(start, None, live=True))
            hidden = start - self._committed
            if self._prose_before and self._first_piece is None:
                lines = [Text(t, style="italic") for t in self._prose_before.split("\n")] + lines
            lines.extend(Text(t, style=s) for s, t in self._notes)
            if hidden or len(lines) > room:
                hidden += len(lines) - room + 1 if len(lines) > room - 1 else 0
                lines = [Text(f"      ... {hidden} lines above", style="dim"), *lines[-room + 1 :]]
            for line in lines:
                line.no_wrap, line.overflow = True, "ellipsis"
            return Group(*lines, self._status())


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


def _output_lines(pieces: list[tuple[str, str]], tail: int | None = None) -> Iterator[Text]:
    """Output pieces as indented lines, each keeping its stream's style.

    ``tail``: only about the last ``tail`` characters (the live region shows the
    newest lines; a flood must not be re-split at every redraw).
    """
    if tail is not None:
        kept: list[tuple[str, str]] = []
        size = 0
        for style, text in reversed(pieces):
            kept.append((style, text[-(tail - size) :]))
            size += len(kept[-1][1])
            if size >= tail:
                break
        if size >= tail:
            yield Text("        ... earlier output above", style="dim")
        pieces = kept[::-1]
    current = Text("        ")
    for style, text in pieces:
        parts = text.split("\n")
        for i, part in enumerate(parts):
            if i > 0:
                yield current
                current = Text("        ")
            if part:
                current.append(part, style=style or "default")
    if current.plain.strip():
        yield current
