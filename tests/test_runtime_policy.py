"""The runtime's policies on FakeSession and a virtual clock: exact, and fast.

Batching, gating, early error interruption, ``on_error="continue"``, serial
mode, failures of every kind, cancellation, and the timeline and metrics of a
run, all asserted as exact numbers: every piece arrives and every statement
runs at a scripted moment of a virtual clock (see :mod:`eager_rt.testing`).
What a real backend must do for the runtime is checked on every backend in
``tests/conformance/test_streaming.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Sequence

import pytest

from eager_rt.chunk import Chunk
from eager_rt.events import (
    ChunkDetected,
    Event,
    ExecutionFinished,
    ExecutionStarted,
    Finished,
    Interrupted,
    OutputEvent,
)
from eager_rt.executor import Output
from eager_rt.policy import BatchPolicy, DefaultPolicy
from eager_rt.result import ChunkRecord, RunResult
from eager_rt.runtime import arun_stream
from eager_rt.testing import FakeSession, Rule, ScriptedSource, VirtualClockLoop, paced

pytestmark = pytest.mark.anyio

OOM = "killed by SIGKILL (out of memory?)"


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return "asyncio", {"loop_factory": VirtualClockLoop}


async def started(*rules: Rule, **options: float) -> FakeSession:
    session = FakeSession(rules, **options)  # type: ignore[arg-type]
    await session.start()
    return session


def batches(result: RunResult) -> list[tuple[list[int], float, float]]:
    """Each batch as (chunk indices, start, end)."""
    return [(b.chunk_indices, b.t_start, b.t_end) for b in result.batches]


# --------------------------------------------------------------------------- batching and gating


STEADY = [(0.0, "slow()\n")] + [(0.25 * (i + 1), f"v{i} = {i}\n") for i in range(5)]
STEADY += [(1.5, "print(v0 + v4)\n")]


async def test_a_free_consumer_merges_everything_pending() -> None:
    session = await started(Rule("slow(", cost=2.0), default_cost=0.125)
    result = await arun_stream(ScriptedSource(STEADY), session)
    assert result.status == "ok", result.error
    # slow() runs while the rest arrives; then everything pending is one execution
    assert batches(result) == [([0], 0.0, 2.0), ([1, 2, 3, 4, 5, 6], 2.0, 2.75)]
    assert session.executed[1] == "\n" + "".join(text for _, text in STEADY[1:])


async def test_without_batching_each_statement_runs_alone() -> None:
    session = await started(Rule("slow(", cost=2.0), default_cost=0.125)
    result = await arun_stream(ScriptedSource(STEADY), session, batching=False)
    assert batches(result) == [([0], 0.0, 2.0)] + [
        ([i], 2.0 + 0.125 * (i - 1), 2.0 + 0.125 * i) for i in range(1, 7)
    ]


GATED = [
    (0.0, "def f():\n    return 1\n"),
    (0.5, "class C:\n    pass\n"),
    (1.0, "print(f(), C.__name__)\n"),
]


async def test_gating_lets_definitions_ride_with_the_next_real_statement() -> None:
    session = await started(default_cost=0.125)
    result = await arun_stream(ScriptedSource(GATED), session, gating=True)
    # a def is complete only when the next line starts: def at 0.5, class and print at 1.0
    assert [r.t_detected for r in result.chunks] == [0.5, 1.0, 1.0]
    assert batches(result) == [([0, 1, 2], 1.0, 1.375)]


async def test_without_gating_a_definition_runs_at_once() -> None:
    session = await started(default_cost=0.125)
    result = await arun_stream(ScriptedSource(GATED), session, gating=False)
    assert batches(result) == [([0], 0.5, 0.625), ([1, 2], 1.0, 1.25)]
    assert result.batches[0].code == "def f():\n    return 1\n"


async def test_definitions_left_at_the_end_still_run() -> None:
    session = await started(default_cost=0.125)
    source = ScriptedSource([(0.0, "x = 1\n"), (0.5, "def g():\n    pass\n")])
    result = await arun_stream(source, session)
    assert result.executed_code == result.code
    assert batches(result) == [([0], 0.0, 0.125), ([1], 0.5, 0.625)]


def _reference_take(
    pending: Sequence[ChunkRecord], over: bool, batching: bool, gating: bool
) -> int:
    """The runtime's decision before it was a policy object, verbatim (as a count)."""
    if not pending:
        return 0
    if gating:
        real = [i for i, r in enumerate(pending) if not r.chunk.declaration]
        if not real:
            if not over:
                return 0
            k = len(pending) - 1
        else:
            k = real[-1] if batching else real[0]
    else:
        k = len(pending) - 1 if batching else 0
    if batching and over:
        k = len(pending) - 1
    return k + 1


def _record(index: int, declaration: bool) -> ChunkRecord:
    code = "def f(): pass\n" if declaration else "x = 1\n"
    chunk = Chunk(code, index, 0, len(code), len(code) - 1, index + 1, "statement", declaration)
    return ChunkRecord(chunk, 0.0, 0.0)


def test_the_default_policy_decides_exactly_as_the_runtime_did() -> None:
    for batching, gating, over in itertools.product((True, False), repeat=3):
        policy = DefaultPolicy(batching=batching, gating=gating)
        for n in range(6):
            for pattern in itertools.product((True, False), repeat=n):
                pending = [_record(i, d) for i, d in enumerate(pattern)]
                expected = _reference_take(pending, over, batching, gating)
                assert policy.take(pending, over) == expected, (batching, gating, over, pattern)


# --------------------------------------------------------------------------- a custom policy


class Pairs:
    """Run statements two by two; a last odd one at the end."""

    def take(self, pending: Sequence[ChunkRecord], generation_over: bool) -> int:
        if len(pending) >= 2:
            return 2
        return len(pending) if generation_over else 0


async def test_a_custom_policy_decides_the_batches() -> None:
    session = await started(default_cost=0.0625)
    assert isinstance(Pairs(), BatchPolicy)
    code = [f"s{i} = {i}\n" for i in range(5)]
    result = await arun_stream(paced(code, tps=4), session, policy=Pairs())
    assert batches(result) == [([0, 1], 0.25, 0.375), ([2, 3], 0.75, 0.875), ([4], 1.0, 1.0625)]


async def test_a_policy_that_never_runs_gets_everything_run_at_the_end() -> None:
    class Never:
        def take(self, pending: Sequence[ChunkRecord], generation_over: bool) -> int:
            return 0

    session = await started()
    result = await arun_stream(paced(["a = 1\n", "b = 2\n"], tps=2), session, policy=Never())
    assert batches(result) == [([0, 1], 0.5, 0.5)]


async def test_policy_misuse_is_rejected() -> None:
    class TooMany:
        def take(self, pending: Sequence[ChunkRecord], generation_over: bool) -> int:
            return len(pending) + 1

    session = await started()
    with pytest.raises(ValueError, match=r"TooMany.take\(\) returned 2"):
        await arun_stream(["a = 1\n"], session, policy=TooMany())
    with pytest.raises(ValueError, match="either policy"):
        await arun_stream(["a = 1\n"], session, policy=DefaultPolicy(), gating=False)


# ----------------------------------------------------------------- early error interruption


async def test_an_error_closes_the_stream_and_says_what_ran_and_what_did_not() -> None:
    session = await started(Rule("x['b']", cost=0.625, raises="KeyError", evalue="'b'"))
    steps = [(0.0, "print('before')\n"), (0.25, "x = {'a': 1}\n"), (0.5, "print(x['b'])\n")]
    steps += [(0.75 + 0.25 * i, f"print('after {i}')\n") for i in range(10)]
    source = ScriptedSource(steps)
    result = await arun_stream(source, session)
    assert result.status == "error"
    assert result.stream_closed_early
    assert source.closed and source.yielded == 5  # cut at 1.125 s: 8 pieces never generated
    assert result.gen_s == 1.125
    error = result.error
    assert error is not None
    assert (error.kind, error.ename, error.evalue) == ("runtime", "KeyError", "'b'")
    assert error.lineno == 3
    assert error.statement == "print(x['b'])\n"
    assert error.code_before == "print('before')\nx = {'a': 1}\n"
    assert error.not_run == "print('after 0')\nprint('after 1')\n"
    assert result.stdout == "before\n"


async def test_a_failing_statement_inside_a_batch_is_pinned_exactly() -> None:
    session = await started(Rule("slow(", cost=1.0), Rule("fail(", raises="ValueError"))
    steps = [(0.0, "slow()\n"), (0.25, "a = 1\n"), (0.5, "fail()\n"), (0.75, "b = 2\n")]
    result = await arun_stream(ScriptedSource(steps), session)
    # the batch is padded to its stream line, so the error's line is the stream's
    assert session.executed[1] == "\na = 1\nfail()\nb = 2\n"
    error = result.error
    assert error is not None
    assert (error.chunk_index, error.lineno, error.statement) == (2, 3, "fail()\n")
    assert error.code_before == "slow()\na = 1\n"
    assert error.not_run == "b = 2\n"
    assert [r.ran for r in result.chunks] == [True, True, True, False]


async def test_an_error_stops_a_source_that_is_waiting() -> None:
    session = await started(Rule("1 / 0", raises="ZeroDivisionError"))
    source = ScriptedSource([(0.0, "1 / 0\n"), (30.0, "print('never')\n")])
    result = await arun_stream(source, session)
    assert result.status == "error"
    assert source.closed and source.yielded == 1
    assert result.e2el_s == 0.0  # not a second waited for the model's next token


async def test_interrupted_event_names_the_error() -> None:
    session = await started(Rule("int(", raises="ValueError", evalue="bad literal"))
    events: list[Event] = []
    await arun_stream(paced(["int('x')\n", "print(0)\n"], tps=1), session, on_event=events.append)
    assert [(e.reason, e.t) for e in events if isinstance(e, Interrupted)] == [
        ("ValueError: bad literal at line 1", 0.0)
    ]


async def test_continue_generates_everything_and_runs_nothing_after_the_error() -> None:
    session = await started(Rule("undefined_name", raises="NameError"))
    steps = [(0.0, "print('a')\n"), (0.25, "undefined_name\n"), (0.5, "print('b')\n")]
    result = await arun_stream(ScriptedSource(steps), session, on_error="continue")
    assert result.status == "error"
    assert not result.stream_closed_early
    assert result.code == "print('a')\nundefined_name\nprint('b')\n"
    assert result.stdout == "a\n"
    assert result.error is not None and result.error.not_run == "print('b')\n"
    assert len(result.batches) == 2
    assert result.gen_s == 0.5


async def test_a_syntax_error_mid_stream() -> None:
    session = await started()
    steps = [(0.0, "print('ok')\n"), (0.5, "x = = 2\n"), (1.0, "print('never')\n")]
    source = ScriptedSource(steps)
    result = await arun_stream(source, session)
    assert result.status == "syntax_error"
    assert result.stream_closed_early and source.yielded == 2
    assert result.stdout == "ok\n"
    error = result.error
    assert error is not None
    assert (error.kind, error.lineno, error.statement) == ("syntax", 2, "x = = 2\n")
    assert error.code_before == "print('ok')\n"
    assert error.not_run == "x = = 2\n"
    assert session.executed == ["print('ok')\n"]  # the invalid statement was never sent


async def test_a_source_error_mid_stream() -> None:
    session = await started()
    steps: list[tuple[float, str | BaseException]] = [
        (0.0, "print(1)\n"),
        (0.5, "for i in range(3):\n    print(i)\n"),  # complete only once the next line comes
        (1.0, ConnectionError("peer closed connection mid-stream")),
    ]
    result = await arun_stream(ScriptedSource(steps), session)
    assert result.status == "source_error"
    assert result.stdout == "1\n"  # the cut-off loop never ran
    error = result.error
    assert error is not None
    assert (error.kind, error.ename) == ("source", "ConnectionError")
    assert error.code_before == "print(1)\n"
    assert error.not_run == "for i in range(3):\n    print(i)\n"
    assert isinstance(error.cause, ConnectionError)
    assert result.gen_s == 1.0
    assert result.to_dict()["error"]["kind"] == "source"


# --------------------------------------------------------------------------- timeouts and deaths


async def test_an_execution_timeout_stops_the_run_with_state_kept() -> None:
    session = await started(Rule("train(", cost=10.0))
    steps = [(0.0, "train()\n"), (0.5, "print('a')\n"), (2.5, "print('b')\n")]
    source = ScriptedSource(steps)
    result = await arun_stream(source, session, exec_timeout=2.0)
    assert result.status == "timeout"
    assert result.stream_closed_early and source.yielded == 2
    error = result.error
    assert error is not None
    assert (error.kind, error.ename) == ("timeout", "KeyboardInterrupt")
    assert error.statement == "train()\n"
    assert not error.state_lost
    assert error.not_run == "print('a')\n"
    assert batches(result) == [([0], 0.0, 2.0)]


async def test_a_timeout_the_code_ignores_loses_the_state() -> None:
    session = await started(Rule("spin(", hang=True), interrupt_grace=1.0)
    result = await arun_stream(["spin()\n"], session, exec_timeout=2.0)
    assert result.status == "timeout"
    assert result.error is not None and result.error.state_lost
    assert result.error.ename == "timeout"  # no exception: the worker was killed
    assert result.error.evalue == result.batches[0].result.detail
    assert batches(result) == [([0], 0.0, 3.0)]
    assert session.interpreters == 2


async def test_a_death_mid_run() -> None:
    session = await started(Rule("crash(", cost=0.5, dies=OOM))
    steps = [(0.0, "a = 1\n"), (0.25, "crash()\n"), (1.0, "print('never')\n")]
    source = ScriptedSource(steps)
    result = await arun_stream(source, session)
    assert result.status == "died"
    assert source.yielded == 2 and result.stream_closed_early
    error = result.error
    assert error is not None
    assert (error.kind, error.statement, error.state_lost) == ("died", "crash()\n", True)
    assert error.evalue == f"{OOM}; the worker was restarted"
    assert error.code_before == "a = 1\n"
    assert session.alive and session.interpreters == 2


# --------------------------------------------------------------------------- serial mode


async def test_serial_mode_runs_the_whole_program_once_after_generation() -> None:
    session = await started(default_cost=0.25)
    code = ["x = 2\n", "print(x * 21)\n", "for i in range(2):\n", "    print(i)\n", "y = 1\n"]
    result = await arun_stream(paced(code, tps=4), session, mode="serial")
    assert session.executed == ["".join(code)]
    assert batches(result) == [([0, 1, 2, 3], 1.0, 2.0)]
    assert (result.gen_s, result.exec_s, result.nel_s, result.e2el_s) == (1.0, 1.0, 1.0, 2.0)


async def test_serial_mode_reports_the_failing_statement() -> None:
    session = await started(Rule("fail(", raises="ValueError"))
    result = await arun_stream(["a = 1\n", "fail()\n", "b = 2\n"], session, mode="serial")
    error = result.error
    assert error is not None
    assert (error.statement, error.code_before, error.not_run) == ("fail()\n", "a = 1\n", "b = 2\n")


# --------------------------------------------------------------------------- timeline and metrics


async def test_timestamps_and_metrics_are_exact() -> None:
    session = await started(Rule("load(", cost=2.0), default_cost=0.25)
    steps = [(0.5, "a = load()\n"), (1.0, "b = 2\n"), (1.5, "print('x')\n")]
    events: list[Event] = []
    result = await arun_stream(ScriptedSource(steps), session, on_event=events.append)
    assert result.status == "ok"
    timeline = [(r.t_generated, r.t_detected, r.t_exec_start, r.t_exec_end) for r in result.chunks]
    assert timeline == [(0.5, 0.5, 0.5, 2.5), (1.0, 1.0, 2.5, 3.0), (1.5, 1.5, 2.5, 3.0)]
    assert batches(result) == [([0], 0.5, 2.5), ([1, 2], 2.5, 3.0)]
    assert result.ttft_s == 0.5
    assert result.gen_s == 1.5
    assert result.exec_s == 2.5
    assert result.nel_s == 1.5  # 1.0 s of load() after the last piece, then the whole last batch
    assert result.e2el_s == 3.0
    assert [(type(e).__name__, e.t) for e in events] == [
        ("ChunkDetected", 0.5),
        ("ExecutionStarted", 0.5),
        ("ChunkDetected", 1.0),
        ("ChunkDetected", 1.5),
        ("ExecutionFinished", 2.5),
        ("ExecutionStarted", 2.5),
        ("OutputEvent", 3.0),
        ("ExecutionFinished", 3.0),
        ("Finished", 3.0),
    ]
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.result is result
    output = events[6]
    assert isinstance(output, OutputEvent) and output.output == Output("stdout", "x\n")
    assert isinstance(events[0], ChunkDetected) and isinstance(events[1], ExecutionStarted)
    assert isinstance(events[4], ExecutionFinished)


async def test_statements_run_while_generation_continues() -> None:
    session = await started(default_cost=0.5)
    result = await arun_stream(paced(["print('first')\n", "print('second')\n"], tps=0.5), session)
    first = result.chunks[0]
    assert (first.t_exec_start, first.t_exec_end) == (0.0, 0.5)
    assert result.gen_s == 2.0
    assert (result.nel_s, result.e2el_s) == (0.5, 2.5)  # only the last statement is not hidden


async def test_session_start_overlaps_generation() -> None:
    session = FakeSession(start_cost=1.0)
    result = await arun_stream(paced(["print('hi')\n"], tps=1, ttft=0.75), session)
    assert session.alive
    assert result.stdout == "hi\n"
    assert batches(result) == [([0], 1.0, 1.0)]  # it started while the model was thinking


# --------------------------------------------------------------------------- cancellation


async def test_cancelling_a_run_leaves_nothing_running() -> None:
    session = await started(Rule("loop(", cost=math.inf))
    source = ScriptedSource([(0.0, "loop()\n"), (5.0, "print('later')\n")])
    tasks_before = asyncio.all_tasks()
    task = asyncio.create_task(arun_stream(source, session))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asyncio.all_tasks() == tasks_before
    assert source.closed
    call = session.calls[-1]
    assert call.cancelled and call.ended == 1.0 + call.started
    assert not session.supervisor.busy and session.interpreters == 1  # interrupted, not killed
    assert (await session.execute("x = 1")).status.value == "ok"


# --------------------------------------------------------------------------- inputs


async def test_ttft_is_the_first_pieces_arrival() -> None:
    session = await started()
    result = await arun_stream(paced(["x = 2\n", "print(x)\n"], tps=2, ttft=0.75), session)
    # the first piece completes the first statement: both name the same moment
    assert result.ttft_s == result.chunks[0].t_generated == 0.75


async def test_a_blocking_source_takes_no_virtual_time() -> None:
    session = await started(default_cost=0.5)
    result = await arun_stream(["a = 1\n", "b = 2\n"], session)  # pulled on a thread
    assert result.ok and result.gen_s == 0.0
    assert batches(result) == [([0], 0.0, 0.5), ([1], 0.5, 1.0)]


async def test_a_source_must_yield_text() -> None:
    session = await started()
    with pytest.raises(TypeError, match="not str"):
        await arun_stream([b"print(1)\n"], session)  # type: ignore[list-item]


async def test_bad_options_are_rejected() -> None:
    session = await started()
    with pytest.raises(ValueError, match="mode"):
        await arun_stream(["x=1\n"], session, mode="lazy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_error"):
        await arun_stream(["x=1\n"], session, on_error="ignore")  # type: ignore[arg-type]
