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
    assert serial.e2el_s > eager.e2el_s
    saved = serial.e2el_s - eager.e2el_s
    assert saving_text(serial, eager) == (
        f"eager saved {saved:.2f} s of end-to-end latency ({saved / serial.e2el_s:.0%}): "
        f"{serial.e2el_s:.2f} s -> {eager.e2el_s:.2f} s"
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
        f"E2EL {runs[0].e2el_s:.2f} s",
        f"E2EL {runs[1].e2el_s:.2f} s",
        "job.py @ 1 tok/s",
    ):
        assert words in svg, words
    saved = runs[0].e2el_s - runs[1].e2el_s
    assert f"saved {saved:.2f} s ({saved / runs[0].e2el_s:.0%})" in svg
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
    assert f"<td>{runs[1].e2el_s:.3f}</td>" in page


def test_an_unknown_format_is_refused(runs: list[RunResult], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"a timeline is written as \.png, \.svg, \.html"):
        draw_timeline(runs, tmp_path / "t.jpg")
