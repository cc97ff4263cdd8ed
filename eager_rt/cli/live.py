"""Print a run's output as plain lines as it happens: the view when stdout is not a terminal.

The script's own stdout goes to ``out`` and its stderr to ``err``; with
``--json`` the caller passes stderr for both so that stdout carries only the
JSON object. Rich outputs are announced by a one-line placeholder, or by the
path they were saved to (``--save-figures``). Text a stream cannot encode (a
lone surrogate the code printed) is escaped, never allowed to end the run.
"""

from __future__ import annotations

from typing import TextIO

from eager_rt.cli.figures import FigureSaver, describe_bundle
from eager_rt.events import Event, Interrupted, OutputEvent, ToolCallFinished
from eager_rt.live_model import describe_tool_call

__all__ = ["LivePrinter", "safe_write"]


def safe_write(stream: TextIO, text: str) -> None:
    """Write ``text``, escaping what the stream's encoding cannot hold."""
    try:
        stream.write(text)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "utf-8"
        stream.write(text.encode(encoding, "backslashreplace").decode(encoding, "replace"))
    stream.flush()


class LivePrinter:
    def __init__(
        self,
        out: TextIO,
        err: TextIO,
        verbose: bool = False,
        figures: FigureSaver | None = None,
    ) -> None:
        self.out = out
        self.err = err
        self.verbose = verbose
        self.figures = figures

    def code(self, piece: str) -> None:
        """Code pieces are not shown in plain output (``eager chat --show-code`` echoes them)."""

    def generation_ended(self) -> None:
        """Nothing to show: the summary says how long generation took."""

    def prose(self, text: str) -> None:
        safe_write(self.out, text)

    def __call__(self, event: Event) -> None:
        if isinstance(event, OutputEvent):
            output = event.output
            if output.kind == "stdout":
                safe_write(self.out, output.text)
            elif output.kind == "stderr":
                safe_write(self.err, output.text)
            elif output.kind == "display" and output.data is not None:
                shown = (
                    self.figures.describe(output.data)
                    if self.figures is not None
                    else describe_bundle(output.data)
                )
                safe_write(self.out, shown + "\n")
        elif isinstance(event, ToolCallFinished):
            line = describe_tool_call(event.call, speculation=True)
            safe_write(self.err, f"eager: {line}\n")
        elif isinstance(event, Interrupted):
            safe_write(self.err, f"eager: generation stopped early: {event.reason}\n")
        elif self.verbose:
            safe_write(self.err, f"eager: {event.type} at {event.t:.3f}s\n")
