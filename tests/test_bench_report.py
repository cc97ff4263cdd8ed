"""The replay report's summary figures are what their definitions say.

The report holds each rate's NEL hidden against what the latency model allows;
these figures decide whether the runtime or the workload is the limit, so
their arithmetic is checked here on rows whose answers are known.
"""

from __future__ import annotations

import pytest

from bench.corpus_index import script_text
from bench.test_bench_replay import ScriptRow, _ends_with_show, _rate_summary

ENDS_WITH_SHOW = "cohort_retention.py"
ENDS_OTHERWISE = "ab_test_bootstrap.py"


def _row(
    script: str, *, gen: float, serial_nel: float, eager_nel: float, optimum: float
) -> ScriptRow:
    return ScriptRow(
        script=script,
        track="synthetic",
        tps=50.0,
        pieces=100,
        chunks=10,
        batches=10,
        gen_nominal_s=gen,
        gen_s=gen,
        serial_nel_s=serial_nel,
        serial_nel_spread_s=0.0,
        serial_e2el_s=gen + serial_nel,
        eager_nel_s=eager_nel,
        eager_e2el_s=gen + eager_nel,
        lower_bound_s=gen + eager_nel / 2,
        model_optimum_s=optimum,
        status="ok/ok",
        stdout_equal=True,
        display_count_equal=True,
        images_equal=True,
    )


def test_the_scripts_used_end_as_named() -> None:
    assert script_text(ENDS_WITH_SHOW).rstrip().endswith("plt.show()")
    assert _ends_with_show(ENDS_WITH_SHOW)
    assert not _ends_with_show(ENDS_OTHERWISE)


def test_hidden_at_the_optimum_and_with_final_figures_free() -> None:
    rows = [
        # 0.2 s of 1.0 s not hidden, all of it after the figure's show
        _row(ENDS_WITH_SHOW, gen=10.0, serial_nel=1.0, eager_nel=0.2, optimum=10.2),
        # 0.1 s of 1.0 s not hidden: a final loop; the optimum says 0.05 s was unavoidable
        _row(ENDS_OTHERWISE, gen=10.0, serial_nel=1.0, eager_nel=0.1, optimum=10.05),
    ]
    summary = _rate_summary(rows)
    assert summary["nel_hidden"] == pytest.approx(1 - 0.3 / 2.0)
    assert summary["nel_hidden_at_optimum"] == pytest.approx(1 - 0.25 / 2.0)
    # the show-ending script counts as fully hidden; the loop's 0.05 s remains
    assert summary["nel_hidden_if_figures_free"] == pytest.approx(1 - 0.05 / 2.0)
    assert summary["over_model"] == pytest.approx((10.2 + 10.1) / (10.2 + 10.05))


def test_an_optimum_before_the_last_token_counts_as_all_hidden() -> None:
    rows = [_row(ENDS_OTHERWISE, gen=10.0, serial_nel=0.5, eager_nel=0.0, optimum=9.0)]
    summary = _rate_summary(rows)
    assert summary["nel_hidden_at_optimum"] == pytest.approx(1.0)
    assert summary["nel_hidden_if_figures_free"] == pytest.approx(1.0)
