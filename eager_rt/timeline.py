"""Draw a run as the paper's Figure 3: the generation window and each execution bar.

One row per run (serial and eager side by side when both are given). The
generation window is a light bar from the first request to the last token;
each batch is a bar on the execution lane, coloured by how it ended; small ticks
mark when each chunk was detected. What sticks out past the generation window
is the non-overlapped execution latency (NEL).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from eager_rt.result import RunResult

__all__ = ["draw_timeline"]

_COLOURS = {"ok": "#2b8a3e", "error": "#c92a2a", "timeout": "#e67700", "died": "#862e9c"}


def draw_timeline(runs: Sequence[RunResult], path: str | Path, title: str = "") -> Path:
    """Write a PNG of ``runs`` to ``path`` and return the path. Needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("--timeline needs matplotlib: pip install 'eager_rt[plot]'") from exc

    height = 1.2 + 1.1 * len(runs)
    fig, ax = plt.subplots(figsize=(10, height))
    labels: list[str] = []
    for row, run in enumerate(reversed(runs)):
        y = row * 2
        labels.append(f"{run.mode}\nexecution")
        labels.append(f"{run.mode}\ngeneration")
        ax.broken_barh([(0.0, run.gen_s)], (y + 1.05, 0.8), color="#a5d8ff")
        if run.ttft_s > 0:
            ax.broken_barh([(0.0, run.ttft_s)], (y + 1.05, 0.8), color="#d0ebff")
        for batch in run.batches:
            colour = _COLOURS.get(batch.result.status.value, "#495057")
            width = max(batch.t_end - batch.t_start, run.e2el_s / 2000)
            ax.broken_barh([(batch.t_start, width)], (y + 0.1, 0.8), color=colour)
        ticks = [r.t_detected for r in run.chunks if r.chunk.runnable]
        ax.vlines(ticks, y + 1.05, y + 1.85, colors="#1864ab", linewidth=0.6)
        if run.e2el_s > run.gen_s:
            ax.annotate(
                f"NEL {run.nel_s * 1000:.0f} ms",
                xy=(run.e2el_s, y + 0.5),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
    ax.set_yticks([i + 0.5 - 0.05 * (i % 2) for i in range(2 * len(runs))])
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("seconds from the LLM request")
    ax.set_xlim(0, max(r.e2el_s for r in runs) * 1.12 or 1.0)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or "eager_rt timeline: generation window and execution bars", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
