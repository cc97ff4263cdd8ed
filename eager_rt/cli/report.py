"""What the CLI says about finished runs: the error line, the summary table, the savings.

Shared by the plain printer and the live view so both say the same words;
``--json`` records use :func:`error_message` and :func:`cap_output` too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from eager_rt.latency import LatencyModel
from eager_rt.result import RunResult

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "JSON_OUTPUT_LIMIT",
    "SUMMARY_COLUMNS",
    "cap_output",
    "clean_evalue",
    "error_line",
    "error_message",
    "image_bundles",
    "print_plain_summary",
    "print_rich_summary",
    "savings",
    "savings_line",
    "summary_cells",
]

#: characters of a run's stdout a ``--json`` record keeps by default (head and tail)
JSON_OUTPUT_LIMIT = 1_000_000

#: the file name a backend compiles a batch under, which means nothing to a reader
_CELL_NAME = re.compile(r" \(<cell-\d+>, line \d+\)")


def clean_evalue(evalue: str) -> str:
    """An exception's message without the file name the backend compiled it under."""
    return _CELL_NAME.sub("", evalue)


def error_message(run: RunResult, exec_timeout: float | None = None) -> str:
    """The run's error in one line, in the words of the options the person gave."""
    error = run.error
    if error is None:
        return ""
    where = f" at line {error.lineno}" if error.lineno else ""
    if error.kind == "timeout" and exec_timeout is not None:
        return f"exceeded --exec-timeout {exec_timeout:g}s{where}"
    evalue = clean_evalue(error.evalue)
    return f"{error.ename}: {evalue}{where}" if evalue else f"{error.ename}{where}"


def image_bundles(run: RunResult) -> list[dict[str, Any]]:
    """The displayed MIME bundles that hold an image (base64, the Jupyter convention)."""
    return [bundle for bundle in run.displays if any(m.startswith("image/") for m in bundle)]


def cap_output(text: str, limit: int) -> tuple[str, int]:
    """``text`` cut to ``limit`` characters (head and tail kept) and how many were dropped."""
    if limit <= 0 or len(text) <= limit:
        return text, 0
    dropped = len(text) - limit
    head = limit // 2
    notice = f"\n[... {dropped:,} characters of output dropped]\n"
    return text[:head] + notice + text[len(text) - (limit - head) :], dropped


def savings(serial: RunResult, eager: RunResult) -> dict[str, float | None]:
    """Fractions of serial NEL and E2EL that the eager run saved."""
    nel = 1.0 - eager.nel_s / serial.nel_s if serial.nel_s > 0 else None
    e2el = 1.0 - eager.e2el_s / serial.e2el_s if serial.e2el_s > 0 else None
    return {"nel_saving": nel, "e2el_saving": e2el}


def _model_lines(runs: Sequence[tuple[RunResult, float]]) -> list[str]:
    lines: list[str] = []
    for run, t_setup in runs:
        if run.mode != "eager" or not any(r.ran for r in run.chunks):
            continue
        model = LatencyModel.from_run(run, t_setup)
        lower = model.e2el_lower_bound()
        lines.append(
            f"model:  lower bound {lower:.3f}s, measured E2EL {run.e2el_s / lower:.3f}x "
            f"of it; regime {model.regime()}; T_setup {t_setup * 1000:.2f} ms"
        )
        if model.tools:
            hidden = model.tool_hidden_s() / model.tool_s() if model.tool_s() > 0 else 0.0
            lines.append(
                f"tools:  {len(model.tools)} calls, {model.tool_s():.3f}s, {hidden:.0%} "
                f"hidden behind generation; optimum {model.e2el_optimum():.3f}s "
                f"(measured E2EL {run.e2el_s / model.e2el_optimum():.3f}x of it), "
                f"{model.hideable_s():.3f}s more could be hidden"
            )
    for run, _ in runs:
        if run.ledger:
            calls = ", ".join(f"{c.tool}#{c.id}" for c in run.ledger)
            lines.append(f"ledger ({run.mode}): side effects that ran: {calls}")
    return lines


#: the summary table's columns, each abbreviation with the words behind it
SUMMARY_COLUMNS = (
    "mode",
    "status",
    "generation s",
    "execution s",
    "after last token s (NEL)",
    "end to end s (E2EL)",
    "statements",
    "executions",
)


def summary_cells(run: RunResult) -> list[str]:
    """One run's row of the summary table, under :data:`SUMMARY_COLUMNS`."""
    s = run.summary()
    return [
        run.mode,
        run.status,
        f"{run.gen_s:.3f}",
        f"{run.exec_s:.3f}",
        f"{run.nel_s:.3f}",
        f"{run.e2el_s:.3f}",
        str(s["chunks"]),
        str(s["batches"]),
    ]


def error_line(run: RunResult, exec_timeout: float | None = None) -> str | None:
    """``<mode> error: <message>``, and whether generation was stopped there; None if ok."""
    if run.error is None:
        return None
    cut = " (generation stopped there)" if run.stream_closed_early else ""
    return f"{run.mode} error: {error_message(run, exec_timeout)}{cut}"


def savings_line(serial: RunResult, eager: RunResult, arrow: str = "->") -> str:
    """What the eager run saved against the serial one, in one line."""
    saved = savings(serial, eager)
    parts = []
    if saved["e2el_saving"] is not None:
        parts.append(
            f"end to end {serial.e2el_s:.2f}s {arrow} {eager.e2el_s:.2f}s "
            f"(E2EL saved {saved['e2el_saving']:.1%})"
        )
    if saved["nel_saving"] is not None:
        parts.append(
            f"after the last token {serial.nel_s:.2f}s {arrow} {eager.nel_s:.2f}s "
            f"(NEL saved {saved['nel_saving']:.1%})"
        )
    return "eager vs serial: " + ", ".join(parts)


def print_plain_summary(
    runs: Sequence[tuple[RunResult, float]], out: TextIO, exec_timeout: float | None = None
) -> None:
    out.write("\n")
    out.write(
        f"{'mode':<7} {'status':<12} {'gen_s':>7} {'exec_s':>7} {'nel_s':>7} "
        f"{'e2el_s':>7} {'chunks':>6} {'batches':>7}\n"
    )
    for run, _ in runs:
        s = run.summary()
        out.write(
            f"{run.mode:<7} {run.status:<12} {run.gen_s:7.3f} {run.exec_s:7.3f} "
            f"{run.nel_s:7.3f} {run.e2el_s:7.3f} {s['chunks']:>6} {s['batches']:>7}\n"
        )
        if run.error is not None:
            out.write(f"        error: {error_message(run, exec_timeout)}")
            if run.stream_closed_early:
                out.write(" (generation stopped there)")
            out.write("\n")
    for line in _model_lines(runs):
        out.write(line + "\n")
    if len(runs) == 2:
        out.write(savings_line(runs[0][0], runs[1][0]) + "\n")
    out.flush()


def print_rich_summary(
    runs: Sequence[tuple[RunResult, float]], console: Console, exec_timeout: float | None = None
) -> None:
    """The same figures as a table, with the words behind each abbreviation."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="runs", title_justify="left", show_edge=False)
    for i, name in enumerate(SUMMARY_COLUMNS):
        table.add_column(name, justify="left" if i < 2 else "right")
    for run, _ in runs:
        cells: list[str | Text] = list(summary_cells(run))
        cells[1] = Text(run.status, style="green" if run.ok else "red")
        table.add_row(*cells)
    console.print()
    console.print(table)
    for run, _ in runs:
        line = error_line(run, exec_timeout)
        if line is not None:
            console.print(line, style="red", markup=False)
    for line in _model_lines(runs):
        console.print(line, markup=False, style="dim")
    if len(runs) == 2:
        console.print(savings_line(runs[0][0], runs[1][0]), markup=False, style="bold green")
