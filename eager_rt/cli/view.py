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

from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.syntax import Syntax
from rich.text import Text

from eager_rt.cli.figures import FigureSaver, describe_bundle
from eager_rt.events import Event
from eager_rt.live_model import FINAL, MARKS, LiveModel, ModelWatcher, PieceKind, State, Tone
from eager_rt.result import RunResult

__all__ = ["STYLES", "LiveView", "legend"]

#: each state's style (its mark and word: :data:`eager_rt.live_model.MARKS`)
STYLES: dict[State, str] = {
    "detected": "bright_black",
    "queued": "yellow",
    "running": "bold cyan",
    "done": "green",
    "failed": "bold red",
    "not_run": "bright_black",
}
_PIECE_STYLES: dict[PieceKind, str] = {
    "stdout": "",
    "stderr": "red",
    "display": "cyan",
    "tool": "magenta",
}
_TONE_STYLES: dict[Tone, str] = {
    "info": "dim",
    "tool": "magenta",
    "warning": "yellow",
    "error": "bold red",
}
#: characters of a statement's output the live region redraws (the newest)
_LIVE_TAIL = 16_384


def _unicode(console: Console) -> bool:
    return console.encoding.lower().replace("-", "").startswith("utf")


def legend(console: Console) -> Text:
    """One line naming every mark, shown before the code."""
    text = Text("marks: ", style="dim")
    index = 0 if _unicode(console) else 1
    for state, mark in MARKS.items():
        text.append(mark[index], style=STYLES[state])
        text.append(f" {mark[2]}   ", style="dim")
    return text


class LiveView(ModelWatcher):
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
        super().__init__(LiveModel(show_display=self._show_display, describe_error=describe_error))
        self._unicode = _unicode(console)
        self._committed = 0  #: lines of the stream printed for good
        self._prose_shown = False  #: the prose before the code was printed
        self._notes_shown = 0  #: notes printed for good
        #: lines committed under the lock, printed after it is released: rich's own lock is
        #: held while it asks for the live region, so printing under ours could deadlock
        self._pending: list[RenderableType] = []
        self._syntax = Syntax("", "python", theme="ansi_dark", background_color="default")
        self._live = Live(
            console=console,
            get_renderable=self._render,
            refresh_per_second=refresh_per_second,
            transient=True,
        )

    def _show_display(self, data: dict[str, Any]) -> str:
        return self.figures.describe(data) if self.figures is not None else describe_bundle(data)

    # -------------------------------------------------------------- lifecycle
    def __enter__(self) -> LiveView:
        with self.lock:
            self.model.start_clock()
        self.console.print(legend(self.console))
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self._finish_lines()
        self._flush()
        self._live.stop()

    def _flush(self) -> None:
        with self.lock:
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
        with self.lock:
            first = self.model.first_piece is None
            self.model.code(piece)
            if first and self.model.prose_before:
                self._print(Text(self.model.prose_before.rstrip("\n"), style="italic"))
                self._prose_shown = True
        self._flush()

    def __call__(self, event: Event) -> None:
        with self.lock:
            super().__call__(event)
            self._commit()
        self._flush()

    # -------------------------------------------------------------- drawing
    def _mark(self, state: State) -> Text:
        symbol, ascii_symbol, _ = MARKS[state]
        return Text(symbol if self._unicode else ascii_symbol, style=STYLES[state])

    def _lines(self, start: int, stop: int | None, *, live: bool) -> Iterator[Text]:
        """The stream's lines from ``start`` (to ``stop``), each with its gutter and output."""
        model = self.model
        source = model.text.split("\n")
        complete = len(source) - 1  # the last element is the line still being written
        stop = len(source) if stop is None else min(stop, len(source))
        if start >= stop:
            return
        highlighted = self._syntax.highlight("\n".join(source[start:stop])).split("\n")
        for offset, line_no in enumerate(range(start, stop)):
            code = highlighted[offset] if offset < len(highlighted) else Text(source[line_no])
            code.rstrip()
            partial = line_no >= complete
            if partial and not source[line_no] and not (live and model.generating):
                continue
            statement = model.at_line(line_no)
            line = Text()
            line.append_text(self._mark(statement.state) if statement else Text(" "))
            line.append(f" {line_no + 1:>3} ", style="dim")
            line.append_text(code)
            if partial and live and model.generating:
                line.append("▌" if self._unicode else "_", style="blink")
            elif statement is None and line_no >= model.detected_end_line and model.finished:
                line.stylize("dim")
            yield line
            yield from self._under(line_no, live)

    def _under(self, line_no: int, live: bool) -> Iterator[Text]:
        """The output and error shown under the statement that ends on ``line_no``."""
        for statement in self.model.ending_at(line_no):
            for block in self.model.blocks_under(statement.chunk.index):
                if block.pieces:
                    yield from _output_lines(block.pieces, _LIVE_TAIL if live else None)
            if statement.state == "failed" and statement.note:
                bar = "│" if self._unicode else "|"
                yield Text(f"      {bar} {statement.note}", style="bold red")

    def _commit(self) -> None:
        """Print for good every line whose statements are all final."""
        model = self.model
        ordered = sorted(model.statements.values(), key=lambda s: s.first)
        upto = self._committed
        for statement in ordered:
            if statement.last < self._committed:
                continue
            if statement.state not in FINAL or (statement.state == "failed" and not model.finished):
                break  # a failure's message is final only once the run is
            upto = statement.last + 1
        if upto > self._committed:
            for line in self._lines(self._committed, upto, live=False):
                self._print(line)
            self._committed = upto

    def _finish_lines(self) -> None:
        """Print for good whatever is left: the live region vanishes when the view stops."""
        model = self.model
        self._commit()
        for line in self._lines(self._committed, None, live=False):
            self._print(line)
        self._committed = len(model.text.split("\n"))
        if not self._prose_shown:
            for text in (model.prose_before, model.prose_after):
                if text.strip():
                    self._print(Text(text.strip("\n"), style="italic"))
            self._prose_shown = True
        elif model.prose_after.strip():
            self._print(Text(model.prose_after.strip("\n"), style="italic"))
        for note in model.notes[self._notes_shown :]:
            self._print(Text(note.text, style=_TONE_STYLES[note.tone]))
        self._notes_shown = len(model.notes)
        self._print(self._status())

    def _print(self, renderable: RenderableType) -> None:
        self._pending.append(renderable)

    def _status(self) -> Text:
        model = self.model
        rate = model.rate()
        text = Text()
        text.append(f"{self.label}", style="bold")
        text.append(
            f" | {model.elapsed():5.1f}s | {model.pieces} tokens"
            + (f", {rate:.0f} tok/s" if rate is not None else "")
            + " | ",
            style="dim",
        )
        text.append(model.doing(), style="cyan" if model.running is not None else "")
        return text

    def _render(self) -> RenderableType:
        with self.lock:
            model = self.model
            room = max(self.console.height - 2, 3)
            total = model.text.count("\n") + 1
            start = max(self._committed, total - room)
            lines = list(self._lines(start, None, live=True))
            hidden = start - self._committed
            if model.prose_before and model.first_piece is None:
                before = [Text(t, style="italic") for t in model.prose_before.split("\n")]
                lines = before + lines
            notes = model.notes[self._notes_shown :]
            lines.extend(Text(n.text, style=_TONE_STYLES[n.tone]) for n in notes)
            if hidden or len(lines) > room:
                hidden += len(lines) - room + 1 if len(lines) > room - 1 else 0
                lines = [Text(f"      ... {hidden} lines above", style="dim"), *lines[-room + 1 :]]
            for line in lines:
                line.no_wrap, line.overflow = True, "ellipsis"
            return Group(*lines, self._status())


def _output_lines(pieces: list[tuple[PieceKind, str]], tail: int | None = None) -> Iterator[Text]:
    """Output pieces as indented lines, each keeping its kind's style; a display on its own line.

    ``tail``: only about the last ``tail`` characters (the live region shows the
    newest lines; a flood must not be re-split at every redraw).
    """
    styled: list[tuple[str, str]] = []
    for kind, text in pieces:
        if kind == "display":
            if styled and not styled[-1][1].endswith("\n"):
                styled.append(("", "\n"))
            text += "\n"
        styled.append((_PIECE_STYLES[kind], text))
    if tail is not None:
        kept: list[tuple[str, str]] = []
        size = 0
        for style, text in reversed(styled):
            kept.append((style, text[-(tail - size) :]))
            size += len(kept[-1][1])
            if size >= tail:
                break
        if size >= tail:
            yield Text("        ... earlier output above", style="dim")
        styled = kept[::-1]
    current = Text("        ")
    for style, text in styled:
        parts = text.split("\n")
        for i, part in enumerate(parts):
            if i > 0:
                yield current
                current = Text("        ")
            if part:
                current.append(part, style=style or "default")
    if current.plain.strip():
        yield current
