"""The notebook's live view of a ``%%eager`` cell: the code as it streams, states, outputs.

The HTML twin of the terminal view (:mod:`eager_rt.cli.view`). The runtime
feeds it code pieces and events on the event loop's thread; the magic's
thread renders it (:meth:`HtmlView.render`) and updates one display in place
whenever :attr:`HtmlView.version` moved. Both take one lock.

Generated code is untrusted, and so is everything it prints: text is escaped,
only images are shown as such (PNG/JPEG/GIF as base64 data checked to be
base64, SVG inside an ``<img>``, where scripts do not run), any other display
bundle by its ``text/plain``. What is shown is bounded: each execution's
output keeps its head and tail, and at most :data:`MAX_IMAGES` images appear
(the run's result keeps everything).
"""

from __future__ import annotations

import base64
import html
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from eager_rt.chunk import Chunk
from eager_rt.cli.report import cap_output, error_message, savings
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

__all__ = ["MARKS", "MAX_IMAGES", "MAX_TEXT", "HtmlView", "State", "summary_html"]

State = Literal["detected", "queued", "running", "done", "failed", "not_run"]

#: each state's symbol, word and colour
MARKS: dict[State, tuple[str, str, str]] = {
    "detected": ("○", "detected", "#888"),
    "queued": ("…", "queued", "#b8860b"),
    "running": ("▶", "running", "#0a7ea4"),
    "done": ("✓", "done", "#2e7d32"),
    "failed": ("✗", "failed", "#c62828"),
    "not_run": ("-", "not run", "#888"),
}
#: characters of one execution's output shown (head and tail)
MAX_TEXT = 20_000
#: images shown in one view; later ones are named, not drawn
MAX_IMAGES = 20
_CELL = " style='padding:1px 0.8em;text-align:right'"
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")
#: output lines up with the code: the mark's and the line number's columns and their gaps
_INDENT = "9.2em"
_PRE = f"margin:0;padding:0 0 0 {_INDENT};white-space:pre-wrap;font-family:monospace;"


@dataclass(slots=True)
class _Statement:
    chunk: Chunk
    state: State
    note: str = ""


@dataclass(slots=True)
class _Block:
    """One execution's output, shown under its anchor statement."""

    chunks: tuple[int, ...]
    anchor: int
    pieces: list[tuple[str, str]] = field(default_factory=list)  #: (kind, text or image html)


class HtmlView:
    """Feed it code (:meth:`code`), prose (:meth:`prose`) and runtime events; render HTML."""

    def __init__(
        self,
        label: str,
        *,
        describe_error: Callable[[RunResult], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.describe_error = describe_error
        self._clock = clock
        self._lock = threading.Lock()
        self._text = ""
        self._prose = ""
        self._statements: dict[int, _Statement] = {}
        self._order: list[int] = []
        self._end = 0  #: offset just past the last detected chunk
        self._blocks: dict[int, _Block] = {}
        self._running: int | None = None
        self._notes: list[tuple[str, str]] = []  #: (colour, text)
        self._images = 0
        self._pieces = 0
        self._t0 = clock()
        self._first_piece: float | None = None
        self._last_piece: float | None = None
        self._generating = True
        self._finished = False
        self._t_end: float | None = None
        self.version = 0  #: moves on every change; the magic redraws when it does

    # ---------------------------------------------------------------- input
    def code(self, piece: str) -> None:
        """A piece of code arrived from the model."""
        now = self._clock()
        with self._lock:
            if self._first_piece is None:
                self._first_piece = now
            self._last_piece = now
            self._pieces += 1
            self._text += piece
            self.version += 1

    def prose(self, text: str) -> None:
        """Model text outside the code (a chat answer's sentences)."""
        with self._lock:
            self._prose += text
            self.version += 1

    def note(self, text: str, colour: str = "#888") -> None:
        with self._lock:
            self._notes.append((colour, text))
            self.version += 1

    def generation_ended(self) -> None:
        with self._lock:
            self._generating = False
            self.version += 1

    def stop(self, reason: str) -> None:
        """The run was cancelled (timeout, interrupt): what ran stays, the rest is settled."""
        with self._lock:
            if self._finished:
                return
            self._finished, self._generating, self._running = True, False, None
            self._t_end = self._clock()
            for statement in self._statements.values():
                if statement.state == "running":
                    statement.state, statement.note = "failed", reason
                elif statement.state in ("detected", "queued"):
                    statement.state = "not_run"
            self.version += 1

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._on_event(event)
            self.version += 1

    # ---------------------------------------------------------------- events
    def _on_event(self, event: Event) -> None:
        if isinstance(event, ChunkDetected):
            chunk = event.chunk
            self._end = max(self._end, chunk.end)
            if chunk.kind == "trivia":
                return
            state: State = "queued" if self._running is not None else "detected"
            statement = _Statement(chunk, state)
            if chunk.kind == "syntax_error":
                statement.state = "failed"
                statement.note = f"SyntaxError: {chunk.error.msg}" if chunk.error else "SyntaxError"
            self._statements[chunk.index] = statement
            self._order.append(chunk.index)
        elif isinstance(event, ExecutionStarted):
            self._running = event.batch
            anchor = event.chunk_indices[-1] if event.chunk_indices else -1
            self._blocks[event.batch] = _Block(event.chunk_indices, anchor)
            for index in event.chunk_indices:
                if index in self._statements:
                    self._statements[index].state = "running"
        elif isinstance(event, OutputEvent):
            self._output(event)
        elif isinstance(event, ExecutionFinished):
            self._executed(event)
        elif isinstance(event, ToolCallFinished):
            call = event.call
            how = "returned" if call.ok else f"failed: {call.error}"
            line = f"tool {call.tool}() #{call.id} {how}\n"
            block = self._blocks.get(self._running) if self._running is not None else None
            if block is not None:
                block.pieces.append(("tool", line))
            else:
                self._notes.append(("#8e24aa", line.rstrip("\n")))
        elif isinstance(event, Interrupted):
            self._generating = False
            self._notes.append(("#b8860b", f"generation stopped early: {event.reason}"))
        elif isinstance(event, Finished):
            self._settle(event.result)

    def _output(self, event: OutputEvent) -> None:
        block = self._blocks.get(event.batch)
        if block is None:
            return
        output = event.output
        if output.kind in ("stdout", "stderr"):
            block.pieces.append((output.kind, output.text))
        elif output.kind == "display" and output.data is not None:
            block.pieces.append(("display", self._display(output.data)))
        elif output.kind == "clear":  # clear_output(): a progress display redraws itself
            block.pieces.clear()

    def _display(self, data: dict[str, Any]) -> str:
        """A display bundle as HTML: an image when it is one (bounded), else its plain text."""
        mime = next((m for m in _IMAGE_TYPES if m in data), None)
        if mime is None:
            return f"<pre style='{_PRE}'>{html.escape(str(data.get('text/plain', '')))}</pre>"
        value = str(data[mime])
        if mime == "image/svg+xml":
            payload = base64.b64encode(value.encode("utf-8")).decode("ascii")
        elif _BASE64.fullmatch(value):
            payload = "".join(value.split())
        else:
            return f"<pre style='{_PRE}color:#c62828'>[{mime} output that is not base64]</pre>"
        if self._images >= MAX_IMAGES:
            return (
                f"<pre style='{_PRE}color:#888'>[{mime}, {len(value):,} bytes: over "
                f"{MAX_IMAGES} images, not shown here; the run's result has it]</pre>"
            )
        self._images += 1
        return (
            f"<div style='padding-left:{_INDENT}'><img alt='figure {self._images}' "
            f"style='max-width:100%' src='data:{mime};base64,{payload}'/></div>"
        )

    def _executed(self, event: ExecutionFinished) -> None:
        self._running = None
        block = self._blocks.get(event.batch)
        if block is None:
            return
        failing: int | None = None
        if not event.result.ok:
            lineno = event.result.error.lineno if event.result.error is not None else None
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
        """The run is over: every statement takes its final state from the result."""
        self._finished, self._generating, self._running = True, False, None
        self._t_end = self._clock()
        error = result.error
        message = ""
        if error is not None:
            message = self.describe_error(result) if self.describe_error else error.describe()
        for record in result.chunks:
            statement = self._statements.get(record.chunk.index)
            if statement is None:
                continue
            if error is not None and error.chunk_index == record.chunk.index:
                statement.state, statement.note = "failed", message
                for block in self._blocks.values():
                    if record.chunk.index in block.chunks:
                        block.anchor = record.chunk.index
            elif record.ran:
                statement.state = "done"
            elif statement.state != "failed":
                statement.state = "not_run"
        if error is not None and error.chunk_index is None:
            self._notes.append(("#c62828", f"failed: {message}"))

    # ---------------------------------------------------------------- drawing
    def states(self) -> list[tuple[int, State]]:
        """Each statement's chunk index and state, in stream order (for callers and tests)."""
        with self._lock:
            return [(i, self._statements[i].state) for i in self._order]

    def text(self) -> str:
        """One line for front ends that show no HTML: the label and how many of each state."""
        with self._lock:
            counts: dict[str, int] = {}
            for statement in self._statements.values():
                word = MARKS[statement.state][1]
                counts[word] = counts.get(word, 0) + 1
            tally = ", ".join(f"{n} {word}" for word, n in counts.items()) or "no statement yet"
            lines = [f"{self.label}: {tally}"]
            lines += [note for _, note in self._notes]
            lines += [s.note for s in self._statements.values() if s.note]
            return "\n".join(lines)

    def render(self) -> str:
        """The whole view as one HTML fragment."""
        with self._lock:
            parts = [
                "<div class='eager-rt-view' style='font-family:monospace;font-size:13px;"
                "line-height:1.35'>",
                self._status(),
            ]
            if self._prose.strip():
                parts.append(
                    f"<div style='font-style:italic;white-space:pre-wrap'>"
                    f"{html.escape(self._prose.strip())}</div>"
                )
            under: dict[int, list[_Block]] = {}
            for block in self._blocks.values():
                under.setdefault(block.anchor, []).append(block)
            for index in self._order:
                parts.append(self._statement_html(self._statements[index], under.get(index, [])))
            tail = self._text[self._end :]
            if tail.strip() or (self._generating and not self._finished):
                cursor = "▌" if self._generating and not self._finished else ""
                parts.append(
                    f"<pre class='eager-rt-tail' style='{_PRE}color:#555'>"
                    f"{html.escape(tail)}{cursor}</pre>"
                )
            for colour, text in self._notes:
                parts.append(f"<div style='color:{colour}'>{html.escape(text)}</div>")
            parts.append("</div>")
            return "".join(parts)

    def _status(self) -> str:
        elapsed = (self._t_end if self._t_end is not None else self._clock()) - self._t0
        rate = ""
        if self._first_piece is not None and self._last_piece is not None:
            window = self._last_piece - self._first_piece
            if window > 0 and self._pieces > 1:
                rate = f", {(self._pieces - 1) / window:.0f} tok/s"
        if self._finished:
            doing = "finished"
        elif self._running is not None:
            doing = "running" + (", model writing" if self._generating else "")
        elif self._first_piece is None:
            doing = "waiting for the first token"
        else:
            doing = "model writing" if self._generating else "idle"
        return (
            f"<div class='eager-rt-status' style='color:#555;border-bottom:1px solid #ddd;"
            f"margin-bottom:4px'><b>{html.escape(self.label)}</b> | {elapsed:.1f}s | "
            f"{self._pieces} tokens{rate} | {doing}</div>"
        )

    def _statement_html(self, statement: _Statement, blocks: Sequence[_Block]) -> str:
        symbol, word, colour = MARKS[statement.state]
        chunk = statement.chunk
        code = chunk.code.strip("\n")
        parts = [
            f"<div class='eager-rt-stmt' data-state='{statement.state}' "
            f"data-index='{chunk.index}'>"
            f"<div style='display:flex;gap:0.6em'>"
            f"<span title='{word}' style='color:{colour};min-width:5.5em'>{symbol} {word}</span>"
            f"<span style='color:#999;min-width:2.5em;text-align:right'>{chunk.lineno}</span>"
            f"<pre style='margin:0;white-space:pre-wrap'>{html.escape(code)}</pre></div>"
        ]
        for block in blocks:
            parts.append(_block_html(block))
        if statement.state == "failed" and statement.note:
            parts.append(
                f"<pre class='eager-rt-error' style='{_PRE}color:#c62828;font-weight:bold'>"
                f"{html.escape(statement.note)}</pre>"
            )
        parts.append("</div>")
        return "".join(parts)


def _block_html(block: _Block) -> str:
    """An execution's output: runs of text escaped and capped, images as they are."""
    parts: list[str] = []
    text: list[tuple[str, str]] = []

    def flush() -> None:
        if not text:
            return
        joined = "".join(t for _, t in text)
        shown, _ = cap_output(joined, MAX_TEXT)
        colour = "#c62828" if all(k == "stderr" for k, _ in text) else "inherit"
        parts.append(
            f"<pre class='eager-rt-out' style='{_PRE}color:{colour}'>{html.escape(shown)}</pre>"
        )
        text.clear()

    for kind, piece in block.pieces:
        if kind == "display":
            flush()
            parts.append(piece)
        else:
            text.append((kind, piece))
    flush()
    return "".join(parts)


def summary_html(runs: Sequence[RunResult], exec_timeout: float | None = None) -> str:
    """The runs' figures as a table, and what eager saved when both modes ran."""
    head = (
        "mode",
        "status",
        "generation s",
        "execution s",
        "after last token s (NEL)",
        "end to end s (E2EL)",
        "statements",
        "executions",
    )
    rows = []
    for run in runs:
        s = run.summary()
        colour = "#2e7d32" if run.ok else "#c62828"
        cells = [
            html.escape(run.mode),
            f"<span style='color:{colour}'>{html.escape(run.status)}</span>",
            f"{run.gen_s:.3f}",
            f"{run.exec_s:.3f}",
            f"{run.nel_s:.3f}",
            f"{run.e2el_s:.3f}",
            str(s["chunks"]),
            str(s["batches"]),
        ]
        rows.append("<tr>" + "".join(f"<td{_CELL}>{c}</td>" for c in cells) + "</tr>")
    parts = [
        "<div class='eager-rt-summary' style='font-family:monospace;font-size:13px'>"
        "<table style='border-collapse:collapse;margin-top:4px'><tr>"
        + "".join(f"<th{_CELL}>{h}</th>" for h in head)
        + "</tr>",
        *rows,
        "</table>",
    ]
    for run in runs:
        if run.error is not None:
            cut = " (generation stopped there)" if run.stream_closed_early else ""
            parts.append(
                f"<div style='color:#c62828'>{html.escape(run.mode)} error: "
                f"{html.escape(error_message(run, exec_timeout))}{cut}</div>"
            )
    if len(runs) == 2:
        serial, eager = runs
        saved = savings(serial, eager)
        line = []
        if saved["e2el_saving"] is not None:
            line.append(
                f"end to end {serial.e2el_s:.2f}s → {eager.e2el_s:.2f}s "
                f"(E2EL saved {saved['e2el_saving']:.1%})"
            )
        if saved["nel_saving"] is not None:
            line.append(
                f"after the last token {serial.nel_s:.2f}s → {eager.nel_s:.2f}s "
                f"(NEL saved {saved['nel_saving']:.1%})"
            )
        parts.append(
            f"<div class='eager-rt-savings' style='color:#2e7d32;font-weight:bold'>"
            f"eager vs serial: {', '.join(line)}</div>"
        )
    parts.append("</div>")
    return "".join(parts)
