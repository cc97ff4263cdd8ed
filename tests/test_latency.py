"""The paper's latency model: closed form, bounds and regimes."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eager_rt.latency import ChunkFigures, LatencyModel, ToolFigures, call_text_times, uniform
from eager_rt.result import RunResult
from eager_rt.runtime import arun_stream
from eager_rt.testing import FakeSession, Rule, ScriptedSource, ToolUse, run_virtual
from eager_rt.tools import tool

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


# --------------------------------------------------------------------------- tool time


def test_a_read_only_call_written_early_could_have_been_hidden() -> None:
    # one chunk, complete at 1 s; it ran 2 s, 1.8 s of it waiting for a read-only
    # call whose text was complete at 1 s: that call could have run from 1 s
    chunk = ChunkFigures(1.0, 0.0, 2.0, tool_wait=1.8, tools_ready=1.0 + 1.8)
    model = LatencyModel(ttft=0.1, gen_end=1.0, t_setup=0.0, chunks=(chunk,))
    assert model.parallel() == pytest.approx(3.0)
    assert model.optimum() == pytest.approx(2.8)  # the call itself is the bound
    assert model.hideable_s() == pytest.approx(0.2)


def test_a_loop_written_slowly_could_have_run_its_calls_at_once() -> None:
    # `for k in keys: lookup(k)`: the call's text complete at 0.5 s, the loop at 2 s;
    # three 1-second calls one after the other, 0.1 s of other work
    chunk = ChunkFigures(2.0, 0.0, 3.1, tool_wait=3.0, tools_ready=0.5 + 1.0)
    model = LatencyModel(ttft=0.0, gen_end=2.0, t_setup=0.0, chunks=(chunk,))
    assert model.parallel() == pytest.approx(5.1)
    assert model.optimum() == pytest.approx(2.1)
    assert model.e2el_optimum() == pytest.approx(2.1)
    assert model.hideable_s() == pytest.approx(3.0)


def test_side_effects_are_not_hideable() -> None:
    chunk = ChunkFigures(1.0, 0.0, 2.0)  # it waited for a tool that is not read-only: W = 0
    tools = (ToolFigures(1.0, 3.0, read_only=False, t_text=0.5),)
    model = LatencyModel(ttft=0.0, gen_end=1.0, t_setup=0.0, chunks=(chunk,), tools=tools)
    assert model.optimum() == model.parallel() == pytest.approx(3.0)
    assert model.hideable_s() == 0.0
    report = model.report(measured_e2el=3.0)
    assert report["tool_s"] == pytest.approx(2.0)
    assert report["tool_hidden_s"] == 0.0  # it ran after the last token
    assert report["e2el_over_optimum"] == pytest.approx(1.0)


def test_tool_time_before_the_last_token_is_hidden() -> None:
    tools = (
        ToolFigures(0.5, 1.5, read_only=True),  # all of it before 2 s
        ToolFigures(1.5, 3.5, read_only=True),  # half of it
    )
    chunk = ChunkFigures(1.0, 0.0, 0.1)
    model = LatencyModel(ttft=0.0, gen_end=2.0, t_setup=0.0, chunks=(chunk,), tools=tools)
    assert model.tool_s() == pytest.approx(3.0)
    assert model.tool_hidden_s() == pytest.approx(1.5)
    assert model.report()["tool_hidden_share"] == pytest.approx(0.5)


@st.composite
def tool_models(draw: st.DrawFn) -> LatencyModel:
    """Models whose tool figures a run could have: W within T_exe, R before the chunk ends."""
    base = draw(models())
    chunks = []
    for c in base.chunks:
        wait = draw(st.floats(0.0, 1.0)) * c.exec_s
        earliest = c.t_generated + c.delta + base.t_setup + c.exec_s
        ready = draw(st.floats(0.0, 1.0)) * earliest
        chunks.append(ChunkFigures(c.t_generated, c.delta, c.exec_s, wait, ready))
    return LatencyModel(
        ttft=base.ttft, gen_end=base.gen_end, t_setup=base.t_setup, chunks=tuple(chunks)
    )


@given(tool_models())
def test_the_optimum_never_exceeds_the_parallel_model(model: LatencyModel) -> None:
    assert model.optimum() <= model.parallel() + 1e-9
    assert model.e2el_optimum() >= model.gen_end
    # what speculation could still save takes the optimum back up to the parallel model's E2EL
    parallel_e2el = max(model.gen_end, model.parallel())
    assert model.e2el_optimum() + model.hideable_s() == pytest.approx(
        max(parallel_e2el, model.e2el_optimum()), abs=1e-9
    )


@given(models())
def test_without_tools_the_optimum_is_the_parallel_model(model: LatencyModel) -> None:
    assert model.optimum() == pytest.approx(model.parallel(), abs=1e-9)
    assert "tool_s" not in model.report()


def test_call_text_times_read_the_stream_timeline() -> None:
    code = "r = lookup('a')\nobj.lookup(1)\nfor k in ks:\n    print(lookup(\n        k))\n"
    # pieces: each line arrives one second after the previous
    ends, times, offset = [], [], 0
    for i, line in enumerate(code.splitlines(keepends=True)):
        offset += len(line)
        ends.append(offset)
        times.append(float(i))
    # the first call closes on line 0, the method call is not the tool, the last closes on line 4
    assert call_text_times(code, ends, times, "lookup") == [0.0, 4.0]
    assert call_text_times("def lookup(x):\n    pass\n", [24], [0.0], "lookup") == []
    assert call_text_times("lookup('a'", [10], [0.0], "lookup") == []  # never closed
    assert call_text_times(code, [], [], "lookup") == []


# --------------------------------------------------------------------------- from a run


async def lookup(key: str) -> str:
    await asyncio.sleep(1.0)
    return key.upper()


LOOP = [
    (0.0, "for k in ['a', 'b']:\n"),
    (1.0, "    print(lookup(k))\n"),
    (3.0, "done = 1\n"),
]


def loop_run(speculate: bool) -> RunResult:
    """Two one-second read-only calls in a loop written from 0 to 1 s, complete at 3 s."""
    rule = Rule(
        re.compile(r"^for "),
        tools=[ToolUse("lookup", {"key": "a"}), ToolUse("lookup", {"key": "b"}, at=0.0)],
    )

    async def main() -> RunResult:
        session = FakeSession([rule])
        await session.start()
        return await arun_stream(
            ScriptedSource(LOOP),
            session,
            tools=[tool(lookup, read_only=True)],
            speculate=speculate,
        )

    return run_virtual(main())


def test_a_run_is_held_against_its_optimum_with_tool_time_counted() -> None:
    run = loop_run(speculate=False)
    assert run.ok and run.stdout == "A\nB\n"
    assert [(c.started, c.ended) for c in run.tool_calls] == [(3.0, 4.0), (3.0, 4.0)]
    model = LatencyModel.from_run(run, t_setup=0.0)
    loop, done = model.chunks
    # the loop's text closed at 1 s; the next line, at 3 s, showed it complete; both ran
    # in one batch from 3 s to 4 s, its time and its tool wait shared between them
    assert (loop.t_generated, loop.delta, done.t_generated, done.delta) == (1.0, 2.0, 3.0, 0.0)
    assert [(c.exec_s, c.tool_wait) for c in model.chunks] == [(0.5, 0.5), (0.5, 0.5)]
    assert [c.tools_ready for c in model.chunks] == [0.0, 2.0]  # both calls: from 1 s to 2 s
    assert [t.t_text for t in model.tools] == [1.0, 1.0]
    report = model.report(run.e2el_s)
    assert report["optimum_s"] == 3.0  # the loop is known complete only at 3 s
    assert report["hideable_s"] == 1.0
    assert report["tool_hidden_share"] == 0.0
    assert report["e2el_over_optimum"] == pytest.approx(4.0 / 3.0)


def test_a_speculative_run_reaches_its_optimum() -> None:
    run = loop_run(speculate=True)
    assert run.ok and run.stdout == "A\nB\n"
    assert [(c.started, c.ended, c.claimed_at) for c in run.tool_calls] == [
        (1.0, 2.0, 3.0),
        (1.0, 2.0, 3.0),
    ]
    model = LatencyModel.from_run(run, t_setup=0.0)
    report = model.report(run.e2el_s)
    assert report["optimum_s"] == 3.0
    assert report["hideable_s"] == 0.0
    assert report["tool_hidden_s"] == 2.0
    assert report["tool_hidden_share"] == 1.0
    assert report["e2el_over_optimum"] == 1.0
