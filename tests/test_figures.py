"""Figures at ``plt.show()``: one draw, and rendered ahead in a child while the worker idles.

Each test runs the same executions on two local sessions, one rendering
figures ahead of time (the default) and one rendering them at ``plt.show()``
only, and holds the first to the second: same images, same text, same state
of the figure, in the same places. Rendering ahead must leave no trace user
code can see, so the tests see it the one way a child's drawing shows: an
artist of the test's own records which process draws it.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from eager_rt.backends.local import LocalSession

from eager_rt.executor import ExecResult, Status
from tests.processes import group_members, wait_until_gone

pytest.importorskip("matplotlib")
pytestmark = pytest.mark.anyio

T = 60.0
#: a pause between executions: the gaps the worker judges an idle rendering by
PAUSE = 0.4
#: an artist that records which process draws its figure, in the file ``drawn_by``
SPY = (
    "import os\n"
    "import matplotlib.pyplot as plt\n"
    "class Spy(plt.Artist):\n"
    "    def draw(self, renderer):\n"
    "        with open('drawn_by', 'a') as f:\n"
    "            f.write(f'{os.getpid()}\\n')\n"
)
#: which processes drew the figures with a Spy: the worker, a child of it, or both
DRAWN_BY = (
    "import os\n"
    "pids = open('drawn_by').read().split() if os.path.exists('drawn_by') else []\n"
    "print(sorted({'worker' if int(p) == os.getpid() else 'child' for p in pids}))"
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: a small figure, 400x300 pixels before cropping, not yet shown
SMALL_FIGURE = (
    "import matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots(figsize=(4, 3), dpi=100)\n"
    "ax.plot([1, 2, 3])\n"
)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[LocalSession, LocalSession]]:
    (tmp_path / "ahead").mkdir()
    (tmp_path / "plain").mkdir()
    ahead = LocalSession(cwd=str(tmp_path / "ahead"))
    plain = LocalSession(cwd=str(tmp_path / "plain"), prerender_figures=False)
    await ahead.start(timeout=T)
    await plain.start(timeout=T)
    try:
        yield ahead, plain
    finally:
        await ahead.close()
        await plain.close()


async def run_both(
    pair: tuple[LocalSession, LocalSession], code: str, pause: bool = True
) -> tuple[ExecResult, ExecResult]:
    """``code`` on both sessions, then (unless ``pause`` is False) idle time to render in."""
    ahead, plain = pair
    a = await ahead.execute(code, timeout=T)
    b = await plain.execute(code, timeout=T)
    assert a.status is Status.OK, a
    assert b.status is Status.OK, b
    if pause:
        await anyio.sleep(PAUSE)
    return a, b


def png_size(bundle: dict[str, object]) -> tuple[int, int]:
    data = base64.b64decode(str(bundle["image/png"]))
    assert data.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def rendered_while_idle(pair: tuple[LocalSession, LocalSession], figure: str) -> None:
    """Build ``figure`` (with a Spy) on both sessions after gaps long enough to render in.

    Checks that a child drew it in the first session, and that user code
    sees the same figure in both: not drawn yet.
    """
    for code in (SPY, "x = 1", "y = 2", figure + "\nfig.add_artist(Spy())"):
        await run_both(pair, code)
    a, b = await run_both(pair, "print(fig.stale)\n" + DRAWN_BY)
    assert a.stdout == "True\n['child']\n"
    assert b.stdout == "True\n[]\n"


async def test_figure_rendered_ahead_is_the_one_shown(
    pair: tuple[LocalSession, LocalSession],
) -> None:
    await rendered_while_idle(
        pair,
        "fig, ax = plt.subplots(figsize=(4, 3))\nax.plot([1, 2, 3], [3, 1, 2])\n"
        "ax.set_title('rendered while idle')",
    )
    a, b = await run_both(pair, "plt.show()")
    assert len(a.displays) == len(b.displays) == 1
    assert a.displays[0]["image/png"] == b.displays[0]["image/png"]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param("ax.set_title('changed after')\nax.plot([3, 2, 1])", id="artists"),
        pytest.param("plt.rcParams['savefig.facecolor'] = 'yellow'", id="rcparams"),
    ],
)
async def test_a_change_after_the_idle_rendering_is_in_the_image(
    pair: tuple[LocalSession, LocalSession], change: str
) -> None:
    await rendered_while_idle(pair, "fig, ax = plt.subplots(figsize=(4, 3))\nax.plot([1, 2, 3])")
    # a change, then show at once: no idle time in between to render it again
    a, b = await run_both(pair, change + "\nplt.show()", pause=False)
    assert a.displays[0]["image/png"] == b.displays[0]["image/png"]


async def test_warning_raised_by_an_idle_rendering_appears_at_show(
    pair: tuple[LocalSession, LocalSession],
) -> None:
    # DejaVu Sans has no glyph for this character: drawing it warns, once
    await rendered_while_idle(
        pair, "fig, ax = plt.subplots(figsize=(4, 3))\nax.set_title('\\u0f00')"
    )
    a, b = await run_both(pair, "print('before show')\nplt.show()\nprint('after show')")
    assert "Glyph" in b.stderr and "missing" in b.stderr
    assert [(o.kind, o.text) for o in a.outputs if o.kind != "display"] == [
        (o.kind, o.text) for o in b.outputs if o.kind != "display"
    ]
    assert [o.kind for o in a.outputs] == [o.kind for o in b.outputs]
    assert a.displays[0]["image/png"] == b.displays[0]["image/png"]


async def test_content_beyond_the_canvas_grows_the_image(
    pair: tuple[LocalSession, LocalSession],
) -> None:
    ahead, plain = pair
    code = (
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(4, 3), dpi=100)\n"
        "ax.plot([1, 2], label='a label placed outside the axes')\n"
        "ax.legend(loc='upper left', bbox_to_anchor=(1.02, 1))\n"
        "plt.show()\n"
    )
    a = await ahead.execute(code, timeout=T)
    width, _ = png_size(a.displays[0])
    assert width > 400  # the legend was kept, as savefig's tight box keeps it
    b = await plain.execute(code, timeout=T)
    assert a.displays[0]["image/png"] == b.displays[0]["image/png"]


async def test_shown_figure_is_cropped_to_its_content(
    pair: tuple[LocalSession, LocalSession],
) -> None:
    ahead, _ = pair
    r = await ahead.execute(SMALL_FIGURE + "plt.show()\n", timeout=T)
    width, height = png_size(r.displays[0])
    assert 300 < width < 400 and 200 < height < 300  # the empty margins are cut away


async def test_display_of_a_figure_uses_the_same_rendering(
    pair: tuple[LocalSession, LocalSession],
) -> None:
    ahead, _ = pair
    r = await ahead.execute(SMALL_FIGURE + "display(fig)\nplt.show()\n", timeout=T)
    assert r.status is Status.OK, r
    assert len(r.displays) == 2
    assert r.displays[0]["image/png"] == r.displays[1]["image/png"]


async def test_no_early_rendering_when_requests_come_back_to_back(
    pair: tuple[LocalSession, LocalSession],
) -> None:
    """Gaps too short for a child to finish in: the worker forks none (each costs it time)."""
    ahead, _ = pair
    figure = "fig, ax = plt.subplots()\nfig.add_artist(Spy())"
    for code in (SPY, figure, "ax.plot([1, 2])"):
        for _ in range(4):
            assert (await ahead.execute(code, timeout=T)).ok
    r = await ahead.execute(DRAWN_BY, timeout=T)
    assert r.stdout == "[]\n"


async def test_a_figure_that_cannot_render_fails_at_show_as_before(
    pair: tuple[LocalSession, LocalSession],
) -> None:
    broken = (
        "fig, ax = plt.subplots(figsize=(4, 3))\n"
        "class Broken(plt.Artist):\n"
        "    def draw(self, renderer):\n"
        "        raise RuntimeError('cannot draw this')\n"
        "fig.add_artist(Broken())"
    )
    for code in ("import matplotlib.pyplot as plt", "x = 1", "y = 2", broken):
        await run_both(pair, code)
    a, b = await run_both(pair, "plt.show()\nprint('after')")
    assert a.displays == b.displays == []
    assert a.stdout == b.stdout == "after\n"
    assert "cannot draw this" in a.stderr and a.stderr == b.stderr


async def test_idle_worker_warms_the_renderer_without_a_trace(
    pair: tuple[LocalSession, LocalSession],
) -> None:
    """The warm-up draws a private figure: pyplot figures, numbering and rcParams unchanged."""
    await run_both(pair, "import matplotlib.pyplot as plt\nplt.rcParams['font.family'] = 'serif'")
    a, b = await run_both(
        pair,
        "import matplotlib.font_manager as fm\n"
        "print(fm._get_font.cache_info().currsize > 0, plt.get_fignums(),"
        " plt.rcParams['font.family'], plt.rcParams['text.usetex'])",
    )
    assert a.stdout == "True [] ['serif'] False\n"  # fonts loaded by the warm-up
    assert b.stdout == "False [] ['serif'] False\n"  # nothing drawn yet
    a, b = await run_both(
        pair, "fig = plt.figure(figsize=(3, 2))\nplt.plot([1, 3, 2])\nprint(fig.number)\nplt.show()"
    )
    assert a.stdout == b.stdout == "1\n"
    assert a.displays[0]["image/png"] == b.displays[0]["image/png"]


async def test_text_written_by_the_warm_up_is_held_for_the_next_show(
    pair: tuple[LocalSession, LocalSession],
) -> None:
    """A wrapped ``Figure.draw`` that prints also prints for the warm-up's private figure.

    That text is sent at the next ``plt.show()``, before the figure's own, and
    no figure is rendered out of turn afterwards.
    """
    loud_draw = (
        "import matplotlib.pyplot as plt\n"
        "from matplotlib.figure import Figure\n"
        "quiet_draw = Figure.draw\n"
        "def loud_draw(self, renderer):\n"
        "    print('drawing')\n"
        "    return quiet_draw(self, renderer)\n"
        "Figure.draw = loud_draw"
    )
    await run_both(pair, loud_draw)
    a, b = await run_both(pair, "x = 1")
    assert a.stdout == b.stdout == ""  # the warm-up's text is not sent on its own
    for code in ("fig, ax = plt.subplots(figsize=(3, 2))", "ax.plot([1, 2])", "y = 2"):
        await run_both(pair, code)
    a, b = await run_both(pair, "print(fig.stale)\nplt.show()")
    texts = [(o.kind, o.text) for o in b.outputs if o.kind != "display"]
    assert texts[0] == ("stdout", "True\n")  # not rendered ahead in either session
    assert [(o.kind, o.text) for o in a.outputs if o.kind != "display"] == [
        texts[0],
        ("stdout", "drawing\n"),
        *texts[1:],
    ]
    assert a.outputs[-1].kind == b.outputs[-1].kind == "display"
    assert a.displays[0]["image/png"] == b.displays[0]["image/png"]


async def test_drawing_ahead_leaves_the_figure_as_it_was_until_show(
    pair: tuple[LocalSession, LocalSession],
) -> None:
    """Drawing moves things (a layout engine places the axes, labels are placed): not before show.

    What user code reads of the figure between its last change and the show
    is what it reads without any drawing ahead; after the show, what a
    drawing at the show leaves, canvas pixels included (``display()`` keeps
    the figure open).
    """
    await rendered_while_idle(
        pair,
        "fig, ax = plt.subplots(figsize=(4, 3), layout='constrained')\n"
        "ax.plot([1, 2, 3], [3, 1, 2])\nax.set_title('placed at draw time')",
    )
    where = (
        "print(ax.get_position(), ax.title.get_position(), ax.xaxis.label.get_position(),"
        " fig.stale)"
    )
    before_a, before_b = await run_both(pair, where)
    assert before_a.stdout == before_b.stdout
    assert "x0=0.125" in before_a.stdout  # the default place: no layout ran yet
    checksum = "import numpy as np\nprint(int(np.asarray(fig.canvas.buffer_rgba()).sum()))"
    a, b = await run_both(pair, f"display(fig)\n{where}\n{checksum}\n{DRAWN_BY}")
    assert a.displays[0]["image/png"] == b.displays[0]["image/png"]
    assert a.stdout.splitlines()[:2] == b.stdout.splitlines()[:2]  # places, stale; pixels
    assert "x0=0.125" not in a.stdout  # the layout ran at the show, in both
    assert a.stdout.splitlines()[2] == "['child', 'worker']"  # the child's pixels were used
    assert b.stdout.splitlines()[2] == "['worker']"


async def test_a_show_that_ends_the_code_is_settled_before_the_next_code(
    pair: tuple[LocalSession, LocalSession],
) -> None:
    """A show as the code's last statement sends the child's image at once.

    Its drawing in the worker waits until the execution is over, and is
    done before the next one starts: that code sees the figure as after a
    drawing at the show, and closed.
    """
    await rendered_while_idle(
        pair,
        "fig, ax = plt.subplots(figsize=(4, 3), layout='constrained')\n"
        "ax.plot([1, 2, 3], [3, 1, 2])\nax.set_title('placed at draw time')",
    )
    a, b = await run_both(pair, "x = 1\nplt.show()", pause=False)
    assert a.displays[0]["image/png"] == b.displays[0]["image/png"]
    after = (
        "print(ax.get_position(), ax.title.get_position(), ax.xaxis.label.get_position(),"
        " fig.stale, plt.get_fignums())\n" + DRAWN_BY
    )
    a, b = await run_both(pair, after, pause=False)
    assert a.stdout.splitlines()[0] == b.stdout.splitlines()[0]
    assert "x0=0.125" not in a.stdout and "[]" in a.stdout  # laid out, and closed
    assert a.stdout.splitlines()[1] == "['child', 'worker']"
    assert b.stdout.splitlines()[1] == "['worker']"


async def test_a_figure_with_a_draw_listener_is_not_drawn_ahead(
    pair: tuple[LocalSession, LocalSession],
) -> None:
    """A child's drawing would call user code listening for draws a second time."""
    listener = (
        "fig, ax = plt.subplots(figsize=(4, 3))\nax.plot([1, 2])\n"
        "fig.canvas.mpl_connect('draw_event', lambda event: print('drawn'))"
    )
    for code in (SPY, "x = 1", "y = 2", listener + "\nfig.add_artist(Spy())", "z = 3"):
        await run_both(pair, code)
    a, b = await run_both(pair, "plt.show()\n" + DRAWN_BY)
    assert a.stdout == b.stdout and a.stdout.startswith("drawn\n")
    assert a.stdout.endswith("['worker']\n")
    assert a.displays[0]["image/png"] == b.displays[0]["image/png"]


async def test_a_child_that_dies_is_replaced_by_a_drawing_at_show(
    pair: tuple[LocalSession, LocalSession],
) -> None:
    dies_in_a_child = (
        "worker_pid = os.getpid()\n"
        "class DiesInAChild(plt.Artist):\n"
        "    def draw(self, renderer):\n"
        "        if os.getpid() != worker_pid:\n"
        "            os._exit(3)\n"
        "fig, ax = plt.subplots(figsize=(4, 3))\nax.plot([2, 1, 2])\n"
        "last = DiesInAChild()\nlast.set_zorder(10)\nfig.add_artist(last)"
    )
    await rendered_while_idle(pair, dies_in_a_child)
    a, b = await run_both(pair, "plt.show()\nprint('after')")
    assert a.stdout == b.stdout == "after\n"
    assert a.displays[0]["image/png"] == b.displays[0]["image/png"]


async def test_user_threads_turn_drawing_ahead_off(
    pair: tuple[LocalSession, LocalSession],
) -> None:
    """A thread of user code may hold a lock when the worker forks; the child could hang on it."""
    ahead, _ = pair
    thread = (
        "import threading\nstop = threading.Event()\n"
        "threading.Thread(target=stop.wait, daemon=True).start()"
    )
    figure = "fig, ax = plt.subplots()\nax.plot([1, 2])\nfig.add_artist(Spy())"
    for code in (SPY, thread, "x = 1", "y = 2", figure, "z = 3"):
        assert (await ahead.execute(code, timeout=T)).ok
        await anyio.sleep(PAUSE)
    r = await ahead.execute("stop.set()\n" + DRAWN_BY + "\nplt.show()", timeout=T)
    assert r.stdout == "[]\n" and len(r.displays) == 1


async def test_no_child_is_left_after_show_or_close(
    pair: tuple[LocalSession, LocalSession],
) -> None:
    ahead, _ = pair
    children = "print(open(f'/proc/{os.getpid()}/task/{os.getpid()}/children').read().split())"
    await rendered_while_idle(pair, "fig, ax = plt.subplots()\nax.plot([1, 2])")
    a, _ = await run_both(pair, "plt.show()\n" + children)
    assert a.stdout == "[]\n" and len(a.displays) == 1
    # a child still drawing when the session closes
    slow_in_a_child = (
        "import time\nos.remove('drawn_by')\nworker_pid = os.getpid()\n"
        "class SlowInAChild(plt.Artist):\n"
        "    def draw(self, renderer):\n"
        "        if os.getpid() != worker_pid:\n"
        "            time.sleep(60)\n"
        "fig, ax = plt.subplots()\nfig.add_artist(Spy())\nfig.add_artist(SlowInAChild())"
    )
    await run_both(pair, slow_in_a_child)
    r = await ahead.execute(DRAWN_BY, timeout=T)
    assert r.stdout == "['child']\n"  # the Spy drew first: the child is asleep now
    group = ahead.worker_info["pid"]
    await ahead.close()
    assert [pid for pid in group_members(group) if not await wait_until_gone(pid)] == []
