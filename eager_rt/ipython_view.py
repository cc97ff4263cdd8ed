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
import time
from collections.abc import Callable, Sequence
from typing import Any

from eager_rt.cli.report import SUMMARY_COLUMNS, cap_output, error_line, savings_line, summary_cells
from eager_rt.live_model import MARKS, Block, LiveModel, ModelWatcher, State, Statement, Tone
from eager_rt.result import RunResult

__all__ = ["COLOURS", "MAX_IMAGES", "MAX_TEXT", "STATE_COLOURS", "HtmlView", "summary_html"]

#: each state's colour (its mark and word: :data:`eager_rt.live_model.MARKS`)
STATE_COLOURS: dict[State, str] = {
    "detected": "#888",
    "queued": "#b8860b",
    "running": "#0a7ea4",
    "done": "#2e7d32",
    "failed": "#c62828",
    "not_run": "#888",
}
#: each note tone's colour
COLOURS: dict[Tone, str] = {
    "info": "#888",
    "tool": "#8e24aa",
    "warning": "#b8860b",
    "error": "#c62828",
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


class HtmlView(ModelWatcher):
    """Feed it code (:meth:`code`), prose (:meth:`prose`) and runtime events; render HTML."""

    def __init__(
        self,
        label: str,
        *,
        describe_error: Callable[[RunResult], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self._images = 0
        super().__init__(
            LiveModel(show_display=self._display, describe_error=describe_error, clock=clock)
        )

    @property
    def version(self) -> int:
        """Moves on every change; the magic redraws when it does."""
        return self.model.version

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

    # ---------------------------------------------------------------- drawing
    def states(self) -> list[tuple[int, State]]:
        """Each statement's chunk index and state, in stream order (for callers and tests)."""
        with self.lock:
            return self.model.states()

    def text(self) -> str:
        """One line for front ends that show no HTML: the label and how many of each state."""
        with self.lock:
            model = self.model
            counts = model.counts()
            tally = ", ".join(f"{n} {word}" for word, n in counts.items()) or "no statement yet"
            lines = [f"{self.label}: {tally}"]
            lines += [note.text for note in model.notes]
            lines += [model.statements[i].note for i in model.order if model.statements[i].note]
            return "\n".join(lines)

    def render(self) -> str:
        """The whole view as one HTML fragment."""
        with self.lock:
            model = self.model
            parts = [
                "<div class='eager-rt-view' style='font-family:monospace;font-size:13px;"
                "line-height:1.35'>",
                self._status(),
            ]
            prose = (model.prose_before + model.prose_after).strip()
            if prose:
                parts.append(
                    f"<div style='font-style:italic;white-space:pre-wrap'>"
                    f"{html.escape(prose)}</div>"
                )
            for index in model.order:
                statement = model.statements[index]
                parts.append(_statement_html(statement, model.blocks_under(index)))
            tail = model.text[model.detected_end :]
            writing = model.generating and not model.finished
            if tail.strip() or writing:
                parts.append(
                    f"<pre class='eager-rt-tail' style='{_PRE}color:#555'>"
                    f"{html.escape(tail)}{'▌' if writing else ''}</pre>"
                )
            for note in model.notes:
                parts.append(
                    f"<div style='color:{COLOURS[note.tone]}'>{html.escape(note.text)}</div>"
                )
            parts.append("</div>")
            return "".join(parts)

    def _status(self) -> str:
        model = self.model
        rate = model.rate()
        return (
            f"<div class='eager-rt-status' style='color:#555;border-bottom:1px solid #ddd;"
            f"margin-bottom:4px'><b>{html.escape(self.label)}</b> | {model.elapsed():.1f}s | "
            f"{model.pieces} tokens{f', {rate:.0f} tok/s' if rate is not None else ''} | "
            f"{html.escape(model.doing())}</div>"
        )


def _statement_html(statement: Statement, blocks: Sequence[Block]) -> str:
    symbol, _, word = MARKS[statement.state]
    colour = STATE_COLOURS[statement.state]
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


def _block_html(block: Block) -> str:
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
    rows = []
    for run in runs:
        cells = [html.escape(c) for c in summary_cells(run)]
        cells[1] = f"<span style='color:{'#2e7d32' if run.ok else '#c62828'}'>{cells[1]}</span>"
        rows.append("<tr>" + "".join(f"<td{_CELL}>{c}</td>" for c in cells) + "</tr>")
    parts = [
        "<div class='eager-rt-summary' style='font-family:monospace;font-size:13px'>"
        "<table style='border-collapse:collapse;margin-top:4px'><tr>"
        + "".join(f"<th{_CELL}>{html.escape(h)}</th>" for h in SUMMARY_COLUMNS)
        + "</tr>",
        *rows,
        "</table>",
    ]
    for run in runs:
        line = error_line(run, exec_timeout)
        if line is not None:
            parts.append(f"<div style='color:#c62828'>{html.escape(line)}</div>")
    if len(runs) == 2:
        parts.append(
            f"<div class='eager-rt-savings' style='color:#2e7d32;font-weight:bold'>"
            f"{html.escape(savings_line(runs[0], runs[1], arrow='→'))}</div>"
        )
    parts.append("</div>")
    return "".join(parts)
