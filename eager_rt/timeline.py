"""Draw runs as the paper's Figure 3: the generation window and each execution bar.

One pair of lanes per run (serial and eager one above the other when both are
given): the generation lane, a light bar from the request to the last token
with a tick where each statement was detected, and the execution lane, a bar
per execution coloured by how it ended. What sticks out past the generation
window is the non-overlapped execution latency (NEL); the end-to-end latency
(E2EL) of each run is marked, and with two runs the saving is drawn between
them. A legend names every mark.

The file's suffix picks the format: ``.png``, ``.svg`` (text kept as text), or
``.html`` (the SVG in a page of its own, with the figures written out).
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eager_rt.cli.report import summary_cells
from eager_rt.result import RunResult

__all__ = ["FORMATS", "draw_timeline"]

FORMATS = (".png", ".svg", ".html")

_COLOURS = {"ok": "#2b8a3e", "error": "#c92a2a", "timeout": "#e67700", "died": "#862e9c"}
_STATUS_WORDS = {
    "ok": "execution, ended ok",
    "error": "execution, raised",
    "timeout": "execution, timed out",
    "died": "execution, backend died",
}
_GENERATION = "#a5d8ff"
_WAITING = "#d0ebff"
_TICK = "#1864ab"


def saving_text(serial: RunResult, eager: RunResult) -> str | None:
    """The end-to-end saving of ``eager`` over ``serial``, in words (None if serial took 0)."""
    if serial.e2el_s <= 0:
        return None
    saved = serial.e2el_s - eager.e2el_s
    return (
        f"eager saved {saved:.2f} s of end-to-end latency ({saved / serial.e2el_s:.0%}): "
        f"{serial.e2el_s:.2f} s -> {eager.e2el_s:.2f} s"
    )


def _visible_wait(run: RunResult, end: float) -> bool:
    """A wait for the first token long enough to see on the picture."""
    return run.ttft_s > end / 200


def _label(ax: Any, text: str, x: float, y: float) -> None:
    """A small label just right of ``(x, y)``, centred on it."""
    ax.annotate(text, xy=(x, y), xytext=(4, 0), textcoords="offset points", va="center",
                fontsize=8)  # fmt: skip


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _legend_handles(runs: Sequence[RunResult]) -> list[Any]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [
        Patch(color=_GENERATION, label="model generating (tokens arriving)"),
    ]
    end = max(r.e2el_s for r in runs)
    if any(_visible_wait(run, end) for run in runs):
        handles.append(Patch(color=_WAITING, label="waiting for the first token"))
    handles.append(Line2D([], [], color=_TICK, linewidth=1.2, label="statement detected"))
    seen = {b.result.status.value for run in runs for b in run.batches}
    for status, words in _STATUS_WORDS.items():
        if status in seen or status == "ok":
            handles.append(Patch(color=_COLOURS[status], label=words))
    handles.append(Line2D([], [], color="black", linestyle=":", label="E2EL: end-to-end latency"))
    return handles


def _figure(runs: Sequence[RunResult], title: str) -> Any:
    import matplotlib.pyplot as plt

    height = 2.2 + 1.1 * len(runs)
    fig, ax = plt.subplots(figsize=(10, height))
    labels: list[str] = []
    end = max(r.e2el_s for r in runs) or 1.0
    for row, run in enumerate(reversed(runs)):
        y = row * 2
        labels.append(f"{run.mode}\nexecution")
        labels.append(f"{run.mode}\ngeneration")
        ax.broken_barh([(0.0, run.gen_s)], (y + 1.05, 0.8), color=_GENERATION)
        if _visible_wait(run, end):
            ax.broken_barh([(0.0, run.ttft_s)], (y + 1.05, 0.8), color=_WAITING)
        for batch in run.batches:
            colour = _COLOURS.get(batch.result.status.value, "#495057")
            width = max(batch.t_end - batch.t_start, end / 2000)
            ax.broken_barh([(batch.t_start, width)], (y + 0.1, 0.8), color=colour)
        ticks = [r.t_detected for r in run.chunks if r.chunk.runnable]
        ax.vlines(ticks, y + 1.05, y + 1.85, colors=_TICK, linewidth=0.6)
        ax.vlines([run.e2el_s], y + 0.02, y + 1.95, colors="black", linestyles=":", linewidth=1)
        _label(ax, f"E2EL {run.e2el_s:.2f} s", run.e2el_s, y + 1.45)
        if run.e2el_s > run.gen_s:
            _label(ax, f"NEL {_duration(run.nel_s)} (execution after the last token)",
                   run.e2el_s, y + 0.5)  # fmt: skip
    if len(runs) == 2:
        serial, eager = runs
        words = saving_text(serial, eager)
        if words is not None and serial.e2el_s > eager.e2el_s:
            saved = serial.e2el_s - eager.e2el_s
            lane = 3.0  # between the serial run's lanes (top) and the eager run's
            ax.annotate(
                "",
                xy=(eager.e2el_s, lane),
                xytext=(serial.e2el_s, lane),
                arrowprops={"arrowstyle": "<->", "color": "#2b8a3e"},
            )
            ax.annotate(
                f"saved {saved:.2f} s ({saved / serial.e2el_s:.0%})",
                xy=((eager.e2el_s + serial.e2el_s) / 2, lane),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
                color="#2b8a3e",
            )
        if words is not None:
            title = f"{title}\n{words}" if title else words
    ax.set_yticks([i + 0.5 - 0.05 * (i % 2) for i in range(2 * len(runs))])
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("seconds from the request to the model")
    ax.set_xlim(0, end * 1.3)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or "eager_rt timeline: generation window and execution bars", fontsize=10)
    ax.legend(
        handles=_legend_handles(runs),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout()
    return fig


def draw_timeline(runs: Sequence[RunResult], path: str | Path, title: str = "") -> Path:
    """Write ``runs`` to ``path`` (.png, .svg or .html) and return the path. Needs matplotlib."""
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"a timeline is written as {', '.join(FORMATS)}, not {out.name!r}")
    if not runs:
        raise ValueError("no runs to draw")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("--timeline needs matplotlib: pip install 'eager_rt[plot]'") from exc

    with matplotlib.rc_context({"svg.fonttype": "none"}):  # SVG text stays searchable text
        fig = _figure(runs, title)
        try:
            if suffix == ".png":
                fig.savefig(out, dpi=120)
                return out
            buffer = io.StringIO()
            fig.savefig(buffer, format="svg")
        finally:
            plt.close(fig)
    svg = buffer.getvalue()
    out.write_text(svg if suffix == ".svg" else _page(runs, title, svg), encoding="utf-8")
    return out


def _page(runs: Sequence[RunResult], title: str, svg: str) -> str:
    """A page with the picture and its figures as a table, for a browser."""
    start = svg.find("<svg")
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in summary_cells(run)[:6]
        )
        + "</tr>"
        for run in runs
    )
    saving = saving_text(runs[0], runs[1]) if len(runs) == 2 else None
    heading = html.escape(title or "eager_rt timeline")
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{heading}</title></head><body>\n<h1>{heading}</h1>\n{svg[start:]}\n"
        + (f"<p>{html.escape(saving)}</p>\n" if saving else "")
        + "<table><tr><th>mode</th><th>status</th><th>generation s</th><th>execution s</th>"
        "<th>NEL s (execution after the last token)</th><th>E2EL s (end to end)</th></tr>"
        f"{rows}</table>\n</body></html>\n"
    )
