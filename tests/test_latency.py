"""The paper's latency model: closed form, bounds and regimes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eager_rt.latency import ChunkFigures, LatencyModel, uniform

durations = st.floats(min_value=0.0, max_value=5.0, allow_nan=False)


@st.composite
def models(draw: st.DrawFn) -> LatencyModel:
    n = draw(st.integers(min_value=1, max_value=30))
    ttft = draw(durations)
    gaps = draw(st.lists(durations, min_size=n, max_size=n))
    t, chunks = ttft, []
    for gap in gaps:
        t += gap
        chunks.append(ChunkFigures(t, draw(st.floats(0, 0.01)), draw(durations)))
    gen_end = t + draw(durations)  # trailing tokens after the last chunk
    return LatencyModel(
        ttft=ttft, gen_end=gen_end, t_setup=draw(st.floats(0, 0.1)), chunks=tuple(chunks)
    )


@given(models())
def test_closed_form_equals_the_recursion(model: LatencyModel) -> None:
    assert model.parallel() == pytest.approx(model.simulate(), abs=1e-9)


@given(models())
def test_parallel_lies_between_its_bounds(model: LatencyModel) -> None:
    assert model.lower_bound() <= model.parallel() + 1e-9
    assert model.parallel() <= model.upper_bound() + 1e-9


@given(models())
def test_no_regression_beyond_overheads(model: LatencyModel) -> None:
    delta = max(c.delta for c in model.chunks)
    extra = delta + model.n * model.t_setup - model.setup_full
    assert model.parallel() <= model.serial() + extra + 1e-9


def test_generation_dominated_hides_all_but_the_last_chunk() -> None:
    model = uniform(n=10, total_tokens=1000, tps=100, t_setup=0.001, exec_per_chunk=0.1)
    assert model.regime() == "generation-dominated"
    # only the last chunk runs after generation: 10 s of tokens + one chunk
    assert model.parallel() == pytest.approx(10.0 + 0.001 + 0.1)
    assert model.serial() == pytest.approx(10.0 + 0.001 + 1.0)


def test_execution_dominated_is_bound_by_execution() -> None:
    model = uniform(n=10, total_tokens=100, tps=100, t_setup=0.001, exec_per_chunk=1.0)
    assert model.regime() == "execution-dominated"
    # the first chunk arrives at 0.1 s, then execution runs back to back
    assert model.parallel() == pytest.approx(0.1 + 10 * 1.001)


def test_n_star_balances_generation_and_setup() -> None:
    model = uniform(n=4, total_tokens=1000, tps=100, t_setup=0.5, exec_per_chunk=0.5)
    # L/v = 10 s, T_exe(full) = 2 s: 16 chunks of overhead fit in the slack
    assert model.n_star() == pytest.approx(16.0)


def test_speedup_bound() -> None:
    model = uniform(n=5, total_tokens=500, tps=50, t_setup=0.0, exec_per_chunk=1.0)
    assert model.speedup_bound() == pytest.approx(1 + 5 / 10)
    assert model.serial() / model.parallel() <= model.speedup_bound() + 1e-9


def test_model_needs_chunks() -> None:
    with pytest.raises(ValueError):
        LatencyModel(ttft=0, gen_end=1, t_setup=0, chunks=())
