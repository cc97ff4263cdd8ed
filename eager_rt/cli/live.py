"""Print a run's output as it happens, for a person watching a terminal.

The script's own stdout goes to ``out`` and its stderr to ``err``; with
``--json`` the caller passes stderr for both so that stdout carries only the
JSON object. Rich outputs are announced by a one-line placeholder.
"""

from __future__ import annotations

from typing import TextIO

from eager_rt.events import Event, Interrupted, OutputEvent, ToolCallFinished

__all__ = ["LivePrinter", "describe_bundle"]


def describe_bundle(data: dict[str, object]) -> str:
    mime = next((m for m in ("image/png", "image/svg+xml", "text/html") if m in data), None)
    if mime is None:
        return str(data.get("text/plain", "<display>"))
    size = len(str(data[mime]))
    return f"[{mime} output, {size:,} bytes]"


class LivePrinter:
    def __init__(self, out: TextIO, err: TextIO, verbose: bool = False) -> None:
        self.out = out
        self.err = err
        self.verbose = verbose

    def __call__(self, event: Event) -> None:
        if isinstance(event, OutputEvent):
            output = event.output
            if output.kind == "stdout":
                self.out.write(output.text)
                self.out.flush()
            elif output.kind == "stderr":
                self.err.write(output.text)
                self.err.flush()
            elif output.kind == "display" and output.data is not None:
                self.out.write(describe_bundle(output.data) + "\n")
                self.out.flush()
        elif isinstance(event, ToolCallFinished):
            call = event.call
            how = "returned" if call.ok else f"failed: {call.error}"
            took = f" in {call.duration:.3f}s" if call.duration is not None else ""
            note = (
                " (speculative, unclaimed)"
                if call.wasted
                else (" (speculative)" if call.speculative else "")
            )
            self.err.write(f"eager: tool {call.tool}() #{call.id} {how}{took}{note}\n")
            self.err.flush()
        elif isinstance(event, Interrupted):
            self.err.write(f"eager: generation stopped early: {event.reason}\n")
            self.err.flush()
        elif self.verbose:
            self.err.write(f"eager: {event.type} at {event.t:.3f}s\n")
