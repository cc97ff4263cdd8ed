"""How the framed worker turns matplotlib figures into ``image/png`` for ``plt.show()``.

Shipped inside the worker's payload (see ``_protocol.worker_payload``), so it
depends on the standard library only; matplotlib, numpy and Pillow are
imported when a figure exists, which means they are installed.

Three things make a figure cheap at ``plt.show()``, which matters because the
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
* **Ahead of time, in a child.** While the worker waits for the host, it
  forks a child that renders an open figure changed since its last
  rendering; the worker itself goes on serving at once. Drawing a figure
  changes it (layout engines move axes, titles and labels are placed, the
  figure is marked clean), so the drawing the user's code can see must
  happen where serial execution does it, at ``plt.show()``, and a drawing in
  the worker's own memory ahead of time would be visible to the code that
  runs before the show. The child's drawing is not: it happens in a copy of
  the process. At ``plt.show()``, if matplotlib reported no change to the
  figure since the fork (every change to it or to an artist in it marks it
  stale, which a counter installed as the figure's ``stale_callback``
  counts) and rcParams and size are the same, the worker draws the figure
  with pixel output switched off (what the drawing does to the figure,
  without the rasterising), copies the child's pixels into its canvas and
  sends the child's PNG: the state after the show, canvas included, and the
  image are those a drawing at the show gives. The child runs on another
  core meanwhile, so its head start is all the time since the last change.
  When the show is the last statement of the code running (as a script's
  final ``plt.show()`` usually is), nothing of the user's can look at the
  figure before the execution ends, so the PNG goes out at once and the
  drawing here, then the closing, wait until the execution is over (still
  before the next one starts), unless the child's drawing wrote something:
  that text belongs to the show, and the drawing here writes it there.

A child is forked only when requests have lately come far enough apart for
it to finish between two (in a fast stream the figure almost always changes
again first), and used only if it should finish before a rendering started
at the show would. None is forked when user code runs threads of its own (one
could hold a lock the child needs), for a figure with a ``draw_event``
listener (the child would call it once more), or where ``os.fork`` does not
exist; figures are then rendered at ``plt.show()``.

Known limits of the third point: the ``draw()`` of a custom artist runs in the
child too, so what it does outside the process (writing a file) happens once
more; a change matplotlib cannot see (writing into the array returned by
``Line2D.get_ydata()`` in place) after the fork is not in the shown image. The
option ``prerender_figures=False`` turns the warm-up and rendering ahead off.
"""

from __future__ import annotations

import contextlib
import gc
import io
import math
import os
import select
import signal
import struct
import sys
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

#: savefig settings under which one draw of the canvas is what savefig would show
_PLAIN_SAVEFIG = {
    "savefig.facecolor": "auto",
    "savefig.edgecolor": "auto",
    "savefig.transparent": False,
    "savefig.dpi": "figure",
}
#: the cost assumed for a child's rendering before any finished
_FIRST_COST_S = 0.1
#: gaps between requests remembered to judge whether a child can finish in one
#: (their median, computed here: importing ``statistics`` would add ~3 ms to
#: every worker's start)
_GAPS = 8
#: a child is forked only if the typical gap between requests is at least
#: this many times what the last child took
_MARGIN = 1.0
#: a child still alive after this is stuck; SIGALRM's default action ends it
_CHILD_ALARM_S = 120
#: a child's result: PNG length, canvas height and width in pixels, render
#: time, whether the rendering wrote anything (a warning)
_RESULT_HEADER = struct.Struct("<3Qd?")
#: the worker's own threads besides the main one: the output drain and the host watch,
#: which hold no lock a forked child could need
_OWN_THREADS = frozenset({"eager_rt-drain", "eager_rt-host-watch"})
#: what the warm-up figure is drawn under (see ``_warm_up_figure``)
_WARM_UP_RC: dict[Any, Any] = {"font.family": ["DejaVu Sans"], "text.usetex": False}


class _Changes:
    """A figure's ``stale_callback``: counts the changes matplotlib reports, then passes them on.

    matplotlib calls it each time the figure, or any artist in it, is marked
    stale, even when the figure already is; so an unchanged count means an
    unchanged figure, while ``fig.stale`` itself stays what user code expects.
    """

    __slots__ = ("count", "passed_on")

    def __init__(self, passed_on: Callable[[Any, bool], None] | None) -> None:
        self.count = 0
        self.passed_on = passed_on

    def __call__(self, artist: Any, value: bool) -> None:
        self.count += 1
        if self.passed_on is not None:
            self.passed_on(artist, value)


class _Rendering:
    """A child's rendering: the PNG, the full canvas's RGBA pixels, what it took and said."""

    __slots__ = ("cost", "pixels", "png", "wrote")

    def __init__(self, png: bytes, pixels: bytes, cost: float, wrote: bool) -> None:
        self.png = png
        self.pixels = pixels
        self.cost = cost
        self.wrote = wrote


class _Child:
    """A forked process rendering one figure as it was at the fork, and its result."""

    __slots__ = ("changes", "count", "done", "ok", "pid", "rc", "result", "size")

    def __init__(self, fig: Any, changes: _Changes) -> None:
        self.changes = changes
        self.count = changes.count
        self.rc = _rc_snapshot()
        self.size = _size(fig)
        self.ok: bool | None = None  # None while it runs
        self.result = _scratch_fd()
        done_r, done_w = os.pipe()
        with warnings.catch_warnings():
            # Python 3.12+ warns about forking a process that has threads; the
            # child only renders, and _may_fork() left out user threads
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            os.close(done_r)
            _render_in_child(fig, self.result, done_w)
        os.close(done_w)
        self.pid = pid
        self.done = done_r

    def describes(self, fig: Any) -> bool:
        """The figure is still as it was at the fork, as far as the drawing goes."""
        return (
            fig.stale_callback is self.changes
            and self.changes.count == self.count
            and self.size == _size(fig)
            and self.rc == _rc_snapshot()
        )

    def finished(self) -> bool:
        """Whether the child ended; reaps it when it did."""
        if self.ok is not None:
            return True
        poller = select.poll()
        poller.register(self.done, select.POLLIN)
        if not poller.poll(0):
            return False
        status = os.read(self.done, 1)
        os.waitpid(self.pid, 0)
        self.ok = status == b"\0"
        return True

    def rendering(self) -> _Rendering:
        """What a child that finished well wrote."""
        header = _read_at(self.result, _RESULT_HEADER.size, 0)
        png_size, height, width, cost, wrote = _RESULT_HEADER.unpack(header)
        png = _read_at(self.result, png_size, _RESULT_HEADER.size)
        pixels = _read_at(self.result, height * width * 4, _RESULT_HEADER.size + png_size)
        return _Rendering(png, pixels, cost, wrote)

    def end(self) -> None:
        """Stop it if it still runs, reap it, free its result."""
        if self.ok is None:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            self.ok = False
        for fd in (self.done, self.result):
            with contextlib.suppress(OSError):
                os.close(fd)


class FigureRenderer:
    """Figures to PNG for ``plt.show()``, rendered ahead of time in a child while the worker idles.

    ``capture`` is the worker's hook that diverts what user-visible streams
    receive while the warm-up runs (text user code wrote because it changed
    matplotlib itself): a context manager yielding the list that collects
    ``(stream, text)`` pairs, written by ``write`` at the next show.
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
        #: per figure, the child rendering it (at most one of them runs at a time)
        self._children: weakref.WeakKeyDictionary[Any, _Child] = weakref.WeakKeyDictionary()
        #: per figure, its change count when it was last rendered or given to a child
        self._rendered: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        #: what the last child's rendering took (seconds)
        self._child_cost = _FIRST_COST_S
        self._gaps: deque[float] = deque(maxlen=_GAPS)
        self._idle_since: float | None = None
        #: the warm-up's remaining steps (nothing runs before the first); None once over
        self._warm_up: Iterator[None] | None = _warm_up_figure()
        self._held: list[tuple[str, str]] = []  # what the warm-up wrote, for the next show
        #: figures shown from a child's rendering whose drawing here waits for
        #: the end of the execution (their show was its last statement)
        self._unsettled: dict[Any, _Rendering] = {}

    # -- plt.show()

    def png(self, fig: Any, last_statement: bool = False) -> bytes:
        """The figure's PNG, from the child that rendered it as it is if there is one.

        ``last_statement``: the show is the last statement of the code
        running, so no user code can look at the figure before the execution
        ends; what drawing does to the figure may wait until then (see
        ``settle``), unless the drawing writes something (a warning), which
        belongs to this execution.
        """
        held, self._held = self._held, []
        for name, text in held:
            self._write(name, text)
        child = self._children.pop(fig, None)
        try:
            if child is not None and child.describes(fig):
                if child.finished():
                    png = self._adopt(fig, child, last_statement)
                    if png is not None:
                        return png
                else:
                    return self._race(fig, child)
        finally:
            if child is not None:
                child.end()
        return self._render(fig)

    def _adopt(self, fig: Any, child: _Child, defer: bool) -> bytes | None:
        """Show the rendering of a child that finished; None if it failed."""
        if not child.ok:
            return None
        rendering = child.rendering()
        self._child_cost = rendering.cost
        if defer and not rendering.wrote:
            self._unsettled[fig] = rendering
            return rendering.png
        _paint(_draw_without_pixels(fig), rendering)
        return self._shown(fig, rendering.png)

    def _race(self, fig: Any, child: _Child) -> bytes:
        """Render here while the child finishes; take its PNG if it is done by then.

        The drawing comes first, pixels included: it must happen here in any
        case, and it writes what a show writes, in the same place. If the
        child finished meanwhile, its PNG saves measuring the tight box and
        encoding; otherwise the worker does both, and the show costs what it
        costs without a child.
        """
        _draw(fig, pixels=True)
        if child.finished() and child.ok:
            rendering = child.rendering()
            self._child_cost = rendering.cost
            return self._shown(fig, rendering.png)
        return self._render(fig, drawn=True)

    def _shown(self, fig: Any, png: bytes) -> bytes:
        """``png`` is what the figure shows now: no child needed until it changes."""
        # measuring the tight box marks the figure stale though nothing the
        # drawing depends on changed; from here on, stale means a real change
        fig.stale = False
        changes = fig.stale_callback
        if isinstance(changes, _Changes):
            self._rendered[fig] = changes.count
        return png

    def rendering_ahead(self) -> bool:
        """Some figure has a child rendering it (or done rendering it)."""
        return bool(self._children)

    def unsettled(self, fig: Any) -> bool:
        """The figure was shown, and its drawing here waits for the end of the execution."""
        return fig in self._unsettled

    def settle(self) -> None:
        """Draw here the figures shown by the execution that just ended, then close them.

        Nothing of the user's ran since their show, so this is what the show
        would have left. The child's drawing of the same figure wrote
        nothing, so this one should not either; text it writes all the same
        is held for the next show.
        """
        pyplot = sys.modules.get("matplotlib.pyplot")
        while self._unsettled:
            fig = next(iter(self._unsettled))
            rendering = self._unsettled.pop(fig)
            with self._capture() as output:
                try:
                    _paint(_draw_without_pixels(fig), rendering)
                    self._shown(fig, rendering.png)
                except Exception:  # noqa: BLE001, S110 - the child drew this very figure
                    pass
                finally:
                    if pyplot is not None:
                        pyplot.close(fig)
            self._held.extend(output)

    def _render(self, fig: Any, drawn: bool = False) -> bytes:
        """Render here; ``drawn``: the canvas holds a drawing of the figure as it is."""
        png = _one_draw_png(fig, drawn=drawn)
        if png is None:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", bbox_inches="tight")
            png = buf.getvalue()
        return self._shown(fig, png)

    # -- the idle time between requests

    def idle_started(self) -> None:
        self._idle_since = time.monotonic()

    def request_arrived(self) -> None:
        if self._idle_since is not None:
            self._gaps.append(time.monotonic() - self._idle_since)
        self._idle_since = None

    def render_ahead(self, input_waiting: Callable[[], bool]) -> None:
        """Warm up, then start a child for a changed open figure, while no request waits."""
        if not self.ahead:
            return
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return
        self._warm_up_steps(input_waiting)
        if not self.ahead or self._warm_up is not None:
            return
        open_figures = _open_figures(pyplot)
        running = False
        for fig, child in list(self._children.items()):
            if fig not in open_figures or not child.describes(fig):
                del self._children[fig]  # closed, or changed since the fork
                child.end()
            elif not child.finished():
                running = True
        if running or not self._gaps_fit_a_rendering() or input_waiting() or not _may_fork():
            return
        for fig in open_figures:
            changes = _changes_of(fig)
            if (
                self._rendered.get(fig) == changes.count
                or not _renders_in_one_draw(fig)
                or _calls_back_on_draw(fig)
            ):
                continue
            self._rendered[fig] = changes.count
            self._children[fig] = _Child(fig, changes)
            return

    def _gaps_fit_a_rendering(self) -> bool:
        """Requests come far enough apart for a child to finish between two.

        When they do not (a fast stream), a child would almost always render
        a figure the next request changes again; forking it costs the worker
        a few milliseconds, and the pages it then writes are copied while the
        child lives.
        """
        return len(self._gaps) >= 2 and _median(self._gaps) >= _MARGIN * self._child_cost

    def stop(self) -> None:
        """End every child: the worker is leaving."""
        for child in list(self._children.values()):
            child.end()
        self._children.clear()

    def _warm_up_steps(self, input_waiting: Callable[[], bool]) -> None:
        """Run warm-up steps until it ends or a request waits.

        Each step is short (the longest, the first draw, ~50-80 ms), so a
        request that arrives during one waits at most that long, once per
        process, early in the stream. The warm-up draws with matplotlib's own
        font, so it writes nothing unless user code changed matplotlib itself
        (a wrapped ``Figure.draw`` that prints); what it writes then is held
        for the next ``plt.show()``, where a figure is drawn, and nothing is
        rendered ahead after that.
        """
        while self._warm_up is not None and not input_waiting():
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


def _median(values: deque[float]) -> float:
    ordered = sorted(values)
    half = len(ordered) // 2
    return ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2


def _changes_of(fig: Any) -> _Changes:
    """The figure's change counter, installed (in front of its callback) on first use."""
    callback = fig.stale_callback
    if isinstance(callback, _Changes):
        return callback
    changes = _Changes(callback)
    fig.stale_callback = changes
    return changes


def _open_figures(pyplot: Any) -> list[Any]:
    return [manager.canvas.figure for manager in pyplot._pylab_helpers.Gcf.get_all_fig_managers()]


def _may_fork() -> bool:
    """A child can be forked safely: the platform has fork, no thread of user code runs."""
    if not hasattr(os, "fork"):
        return False
    main = threading.main_thread()
    return all(t is main or t.name in _OWN_THREADS for t in threading.enumerate())


def _renders_in_one_draw(fig: Any) -> bool:
    """One draw of the canvas shows this figure as savefig would, and can run without pixels."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg

    rc: Any = matplotlib.rcParams
    return (
        isinstance(fig.canvas, FigureCanvasAgg)
        and getattr(fig.canvas, "device_pixel_ratio", 1) == 1
        and all(rc[key] == value for key, value in _PLAIN_SAVEFIG.items())
        and isinstance(rc["savefig.pad_inches"], (int, float))
        and hasattr(RendererAgg, "_draw_disabled")
    )


def _calls_back_on_draw(fig: Any) -> bool:
    """User code listens for the figure's drawing: a child's drawing would run it once more."""
    return bool(fig.canvas.callbacks.callbacks.get("draw_event"))


def _draw_without_pixels(fig: Any) -> Any:
    """What ``canvas.draw()`` does to the figure, without rasterising; its renderer."""
    _draw(fig, pixels=False)
    return fig.canvas.get_renderer()


def _draw(fig: Any, pixels: bool) -> None:
    """``canvas.draw()``, with or without pixels, from this one line.

    matplotlib names the line of the first caller outside itself in its
    warnings (a missing glyph), and shows a warning once per line: drawing
    from here either way keeps both the text and that once.
    """
    renderer = fig.canvas.get_renderer()
    with contextlib.nullcontext() if pixels else renderer._draw_disabled():
        fig.canvas.draw()


def _paint(renderer: Any, rendering: _Rendering) -> None:
    """Put a child's pixels into the worker's canvas, as its own drawing would have.

    The canvas has the child's size: ``_Child.describes`` held the figure's
    size and dpi to the fork's.
    """
    import numpy as np

    canvas = np.asarray(renderer.buffer_rgba())
    canvas[...] = np.frombuffer(rendering.pixels, np.uint8).reshape(canvas.shape)


def _render_in_child(fig: Any, result: int, done: int) -> NoReturn:
    """The forked child: render ``fig`` into ``result``, say how it went on ``done``, exit."""
    status = b"\1"
    try:
        # a collection would touch every object, and copy every page, shared
        # with the worker; the child is short-lived, its garbage goes with it
        gc.disable()
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(_CHILD_ALARM_S)
        # whatever the rendering writes is the child's alone: the worker's own
        # drawing at the show writes the same, where it belongs; the child
        # only says whether there was any
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        said = _scratch_fd()
        os.dup2(said, 1)
        os.dup2(said, 2)
        start = time.perf_counter()
        png = _one_draw_png(fig)
        if png is not None:
            import numpy as np

            pixels = np.ascontiguousarray(np.asarray(fig.canvas.buffer_rgba()))
            height, width = pixels.shape[:2]
            cost = time.perf_counter() - start
            wrote = os.lseek(said, 0, os.SEEK_END) > 0
            header = _RESULT_HEADER.pack(len(png), height, width, cost, wrote)
            _write_all(result, header + png)
            _write_all(result, pixels.data.cast("B"))
            status = b"\0"
    except BaseException:  # noqa: BLE001, S110 - any failure: the worker renders it itself
        pass
    finally:
        try:
            os.write(done, status)
        finally:
            os._exit(0)


def _scratch_fd() -> int:
    """An anonymous file for a child's result: in memory where the platform has memfd."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("eager_rt-figure", os.MFD_CLOEXEC)
    import tempfile

    with tempfile.TemporaryFile() as file:  # already unlinked: gone with its last fd
        return os.dup(file.fileno())


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_at(fd: int, size: int, offset: int) -> bytes:
    parts = []
    while size > 0:
        part = os.pread(fd, size, offset)
        if not part:
            raise EOFError("a figure rendering child's result is shorter than it says")
        parts.append(part)
        size -= len(part)
        offset += len(part)
    return b"".join(parts)


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
    from PIL import Image

    if not _renders_in_one_draw(fig):
        return None
    pad: Any = matplotlib.rcParams["savefig.pad_inches"]
    canvas: Any = fig.canvas
    if not drawn:
        _draw(fig, pixels=True)
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
