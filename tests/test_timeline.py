"""The timeline picture: every mark named in a legend, NEL and E2EL in words, the saving drawn.

Runs are played on a :class:`~eager_rt.testing.FakeSession` on the virtual
clock, so their figures are exact and the words on the picture can be
checked; SVG and HTML keep text as text, so the tests read them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eager_rt.result import RunResult
from eager_rt.runtime import arun_stream
from eager_rt.testing import FakeSession, Rule, paced, run_virtual
from eager_rt.timeline import draw_timeline, saving_text

pytest.importorskip("matplotlib")

CODE = ["rows = load()\n", "print(len(rows))\n", "total = crunch(rows)\n", "print(total)\n"]


def play(mode: str, *, fail: bool = False) -> RunResult:
    async def main() -> RunResult:
        rules = [Rule("load(", cost=1.0), Rule("crunch(", cost=3.0)]
        if fail:
            rules.append(Rule("print(total)", raises="ValueError", evalue="bad total"))
        return await arun_stream(paced(CODE, tps=1), FakeSession(rules), mode=mode)  # type: ignore[arg-type]

    return run_virtual(main())


@pytest.fixture(scope="module")
def runs() -> list[RunResult]:
    return [play("serial"), play("eager")]


def test_the_saving_in_words(runs: list[RunResult]) -> None:
    serial, eager = runs
    # one piece a second, the last at 3 s; load() costs 1 s, crunch() 3 s. Serial runs
    # all after generation: 3 + 1 + 3 = 7 s. Eager: load() runs at 0 s, crunch() at 2 s,
    # when its statement is complete, and ends at 5 s.
    assert (serial.e2el_s, eager.e2el_s) == (7.0, 5.0)
    assert saving_text(serial, eager) == (
        "eager saved 2.00 s of end-to-end latency (29%): 7.00 s -> 5.00 s"
    )


def test_svg_names_every_mark_and_spells_out_nel_and_e2el(
    runs: list[RunResult], tmp_path: Path
) -> None:
    path = draw_timeline(runs, tmp_path / "t.svg", title="job.py @ 1 tok/s")
    svg = path.read_text()
    assert svg.lstrip().startswith(("<?xml", "<svg"))
    for words in (
        "model generating (tokens arriving)",
        "statement detected",
        "execution, ended ok",
        "E2EL: end-to-end latency",
        "(execution after the last token)",
        "E2EL 7.00 s",  # the runs' figures: see test_the_saving_in_words
        "E2EL 5.00 s",
        "job.py @ 1 tok/s",
        "saved 2.00 s (29%)",
    ):
        assert words in svg, words
    assert "eager saved" in svg
    assert "waiting for the first token" not in svg  # the first token came at once


def test_a_failed_run_names_its_colour(tmp_path: Path) -> None:
    run = play("eager", fail=True)
    assert run.status == "error"
    svg = draw_timeline([run], tmp_path / "t.svg").read_text()
    assert "execution, raised" in svg
    assert "eager saved" not in svg  # one run: nothing to compare


def test_png_and_html(runs: list[RunResult], tmp_path: Path) -> None:
    png = draw_timeline(runs, tmp_path / "t.png")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    page = draw_timeline(runs, tmp_path / "t.html", title="a <title>").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<h1>a &lt;title&gt;</h1>" in page
    assert "<svg" in page and "<?xml" not in page
    assert "NEL s (execution after the last token)" in page
    assert "<td>5.000</td>" in page  # the eager run's E2EL, in the table


def test_an_unknown_format_is_refused(runs: list[RunResult], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"a timeline is written as \.png, \.svg, \.html"):
        draw_timeline(runs, tmp_path / "t.jpg")
