"""How the framed worker turns matplotlib figures into ``image/png`` for ``plt.show()``.

Shipped inside the worker's payload (see ``_worker.worker_payload``), so it
depends on the standard library only; matplotlib, numpy and Pillow are
imported when a figure exists, which means they are installed.

Two things make a figure cheap at ``plt.show()``, which matters because the
show is usually a script's last statement: nothing can hide the work done
after the model's last token.

* **One draw.** ``savefig(bbox_inches="tight")`` draws a figure twice (once
  to measure, once at the cropped size) and encodes; here the figure is drawn
  once on its own Agg canvas, the tight box (the same one savefig computes,
  with the same padding) is measured on that drawing and cut out of the
  pixel buffer. When the box reaches outside the canvas (a legend placed
  beyond the axes) or savefig settings ask for something the canvas does not
  draw, savefig renders it, as before.
* **Warm.** The first figure a process draws costs up to twice what later
  ones do: the font files, glyph and text-layout code, the Agg canvas and the
  PNG encoder are loaded and set up on first use. Once pyplot is imported,
  the worker draws a private figure (never registered with pyplot, so no
  figure number or ``gcf()`` changes) in short steps while it idles, so that
  cost is paid behind generation instead of at the first ``plt.show()``.
* **Ahead of time.** While the worker waits for the host, it renders open
  figures that changed since their last rendering. matplotlib marks a figure
  stale on every change to it or to any artist in it; a figure that is still
  clean at ``plt.show()``, under the same rcParams, is what was rendered, and
  its PNG is sent as is. Waiting input cuts this short: the worker only
  starts a rendering when no request is queued and the recent gaps between
  requests were long enough for it, so a fast stream is never delayed by
  renderings it overtakes.

Known limit of the second point: a change matplotlib cannot see (writing into
the array returned by ``Line2D.get_ydata()`` in place) after the idle
rendering is not in the shown image; the option ``prerender_figures=False``
turns ahead-of-time rendering off.
"""

from __future__ import annotations

import io
import math
import sys
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

#: savefig settings under which one draw of the canvas is what savefig would show
_PLAIN_SAVEFIG = {
    "savefig.facecolor": "auto",
    "savefig.edgecolor": "auto",
    "savefig.transparent": False,
    "savefig.dpi": "figure",
}
#: gaps between requests remembered to judge whether a rendering fits in one
#: (their median, computed here: importing ``statistics`` would add ~3 ms to
#: every worker's start)
_GAPS = 8
#: an idle rendering starts only if the typical gap is this many times its cost
_MARGIN = 1.5
#: the cost assumed for a figure never rendered, before any figure was
_FIRST_COST_S = 0.1
#: what the warm-up figure is drawn under (see ``_warm_up_figure``)
_WARM_UP_RC: dict[Any, Any] = {"font.family": ["DejaVu Sans"], "text.usetex": False}


class _Rendered:
    """A figure's PNG, and what it was rendered under."""

    __slots__ = ("cost", "output", "png", "rc", "size")

    def __init__(
        self, png: bytes, rc: dict[str, Any], size: tuple[float, float, float], cost: float
    ) -> None:
        self.png = png
        self.rc = rc
        self.size = size
        self.output: list[tuple[str, str]] = []  # text the rendering wrote, replayed at show
        self.cost = cost


class FigureRenderer:
    """Figures to PNG for ``plt.show()``, rendered ahead of time when the worker idles.

    ``capture`` is the worker's hook that diverts what user-visible streams
    receive while a figure renders out of turn (a warning about a missing
    glyph): a context manager yielding the list that collects ``(stream,
    text)`` pairs, replayed when that figure is shown.
    """

    def __init__(
        self,
        capture: Callable[[], Any],
        write: Callable[[str, str], None],
        ahead: bool = True,
    ) -> None:
        self._capture = capture
        self._write = write
        self.ahead = ahead
        self._done: weakref.WeakKeyDictionary[Any, _Rendered] = weakref.WeakKeyDictionary()
        self._gaps: deque[float] = deque(maxlen=_GAPS)
        self._idle_since: float | None = None
        self._last_cost = _FIRST_COST_S  # a new figure is assumed to cost what the last one did
        #: the warm-up's remaining steps (nothing runs before the first); None once over
        self._warm_up: Iterator[None] | None = _warm_up_figure()
        self._held: list[tuple[str, str]] = []  # what the warm-up wrote, for the next show

    # -- plt.show()

    def png(self, fig: Any) -> bytes:
        """The figure's PNG: the one rendered ahead if nothing changed since, else a new one."""
        held, self._held = self._held, []
        self._replay(held)
        done = self._done.pop(fig, None)
        if done is not None:
            self._replay(done.output)
            if self._still_valid(fig, done):
                return done.png
        return self._render(fig).png

    # -- the idle time between requests

    def idle_started(self) -> None:
        self._idle_since = time.monotonic()

    def request_arrived(self, overtaken: bool = False) -> None:
        """A request came; ``overtaken``: it was already waiting when an idle rendering ended."""
        if self._idle_since is not None:
            gap = 0.0 if overtaken else time.monotonic() - self._idle_since
            self._gaps.append(gap)
        self._idle_since = None

    def render_ahead(self, input_waiting: Callable[[], bool]) -> bool:
        """Render changed open figures while no request waits; True if any rendering ran."""
        if not self.ahead:
            return False
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return False
        ran = self._warm_up_steps(input_waiting)
        if not self.ahead or len(self._gaps) < 2:
            return ran
        typical_gap = _median(self._gaps)
        for fig in _changed_figures(pyplot):
            done = self._done.get(fig)  # an earlier rendering, outdated by the change
            cost = done.cost if done is not None else self._last_cost
            if typical_gap < _MARGIN * cost or input_waiting():
                break
            ran = True
            with self._capture() as output:
                try:
                    rendered = self._render(fig)
                except Exception:  # noqa: BLE001 - plt.show() renders it again and reports
                    # a figure that cannot render would fail again at every idle
                    # moment; from now on figures are rendered at plt.show() only
                    self._done.pop(fig, None)
                    self.ahead = False
                    break
            rendered.output = list(output)
            self._done[fig] = rendered
            if rendered.output:
                # a message matplotlib gives once (a missing font) is spent now;
                # it is replayed at this figure's show, and no other figure is
                # rendered out of turn, so no other message can go astray
                self.ahead = False
                break
        return ran

    def _warm_up_steps(self, input_waiting: Callable[[], bool]) -> bool:
        """Run warm-up steps until it ends or a request waits; True if a step ran.

        Each step is short (the longest, the first draw, ~50-80 ms), so a
        request that arrives during one waits at most that long, once per
        process, early in the stream. The warm-up draws with matplotlib's own
        font, so it writes nothing unless user code changed matplotlib itself
        (a wrapped ``Figure.draw`` that prints); what it writes then is held
        for the next ``plt.show()``, where a figure is drawn, and no figure is
        rendered out of turn after that, as after a figure rendering that wrote.
        """
        if self._warm_up is None:
            return False
        ran = False
        while not input_waiting():
            ran = True
            with self._capture() as output:
                try:
                    finished = next(self._warm_up, True) is True
                except Exception:  # noqa: BLE001 - the user's figures will report it
                    finished = True
                    self.ahead = False
            self._held.extend(output)
            if output:
                self.ahead = False
            if finished or not self.ahead:
                self._warm_up = None
                break
        return ran

    # -- rendering

    def _replay(self, output: list[tuple[str, str]]) -> None:
        for name, text in output:
            self._write(name, text)

    @staticmethod
    def _still_valid(fig: Any, done: _Rendered) -> bool:
        return (not fig.stale) and done.rc == _rc_snapshot() and done.size == _size(fig)

    def _render(self, fig: Any) -> _Rendered:
        start = time.perf_counter()
        png = _one_draw_png(fig)
        if png is None:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", bbox_inches="tight")
            png = buf.getvalue()
        # measuring the tight box marks the figure stale though nothing the
        # drawing depends on changed; from here on, stale means a real change
        fig.stale = False
        self._last_cost = time.perf_counter() - start
        return _Rendered(png, _rc_snapshot(), _size(fig), self._last_cost)


def _median(values: deque[float]) -> float:
    ordered = sorted(values)
    half = len(ordered) // 2
    return ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2


def _changed_figures(pyplot: Any) -> Iterator[Any]:
    """Open pyplot figures marked stale: changed since their last drawing."""
    for manager in list(pyplot._pylab_helpers.Gcf.get_all_fig_managers()):
        fig = manager.canvas.figure
        if fig.stale:
            yield fig


def _rc_snapshot() -> dict[str, Any]:
    import matplotlib

    rc: Any = matplotlib.rcParams
    return dict(rc)


def _size(fig: Any) -> tuple[float, float, float]:
    width, height = fig.get_size_inches()
    return (float(width), float(height), float(fig.dpi))


def _warm_up_figure() -> Iterator[None]:
    """Draw a private figure with the common artists, one short step between yields.

    Each step runs under matplotlib's bundled font and without TeX, whatever
    the user's style says: matplotlib reports a missing font only once, so
    looking up the user's font here could spend that report before the user's
    own figure; and TeX would turn a step into seconds. The rcParams are the
    user's again at every yield, when user code may run.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def private_rc() -> Any:
        return matplotlib.rc_context(_WARM_UP_RC)

    with private_rc():
        fig = Figure()
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.plot([0, 1, 2], [1.0, 0.5, 2.0], marker="o", label="line")
        ax.bar([0, 1, 2], [0.5, 1.5, 1.0], label="bar")
        ax.set_title("Title")
        ax.set_xlabel("x label")
        ax.set_ylabel("y label")
        ax.legend()
    yield
    with private_rc():
        fig.canvas.draw()
    yield
    with private_rc():
        _one_draw_png(fig, drawn=True)


def _one_draw_png(fig: Any, drawn: bool = False) -> bytes | None:
    """The tight PNG from a single draw of the figure's canvas, or None where that is not exact.

    ``drawn``: the canvas already holds a drawing of the figure as it is now.
    """
    import matplotlib
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    rc: Any = matplotlib.rcParams
    canvas: Any = fig.canvas
    if (
        not isinstance(fig.canvas, FigureCanvasAgg)
        or getattr(canvas, "device_pixel_ratio", 1) != 1
        or any(rc[key] != value for key, value in _PLAIN_SAVEFIG.items())
    ):
        return None
    pad = rc["savefig.pad_inches"]
    if not isinstance(pad, (int, float)):
        return None
    if not drawn:
        canvas.draw()
    box = fig.get_tightbbox(canvas.get_renderer()).padded(pad)
    dpi = fig.dpi
    pixels = np.asarray(canvas.buffer_rgba())
    height, width = pixels.shape[:2]
    x0, x1 = math.floor(box.x0 * dpi), math.ceil(box.x1 * dpi)
    y0, y1 = math.floor(box.y0 * dpi), math.ceil(box.y1 * dpi)
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height or x0 >= x1 or y0 >= y1:
        return None  # the content reaches beyond the canvas: savefig grows it
    out = io.BytesIO()
    Image.fromarray(pixels[height - y1 : height - y0, x0:x1]).save(
        out, format="png", dpi=(dpi, dpi)
    )
    return out.getvalue()
