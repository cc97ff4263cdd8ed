"""eager_rt.testing: the virtual clock, scripted sources, and FakeSession's Session contract.

FakeSession runs no Python, so it cannot join the conformance suite (whose
tests check real semantics: state, prints of computed values, figures).
These tests check the same contract on it directly, with exact times: every
test here runs on a VirtualClockLoop.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

import eager_rt.testing
from eager_rt import clock
from eager_rt.executor import ExecResult, Output, SessionDead, Status
from eager_rt.testing import (
    FakeBackend,
    FakeSession,
    Rule,
    ScriptedSource,
    ToolUse,
    VirtualClockLoop,
    paced,
    run_virtual,
    sleep_until,
)
from eager_rt.tools import ToolHost, as_tools

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return "asyncio", {"loop_factory": VirtualClockLoop}


@pytest.fixture
async def fake() -> AsyncIterator[FakeSession]:
    session = FakeSession(
        [
            Rule("slow(", cost=4.0, stdout="slow done\n"),
            Rule("loop(", cost=math.inf, outputs=[(0.0, Output("stdout", "looping\n"))]),
            Rule("stubborn(", hang=True),
            Rule("late(", cost=math.inf, interrupt_delay=0.75),
            Rule("fail(", raises="ValueError", evalue="bad value"),
            Rule("crash(", cost=0.5, dies="killed by SIGKILL (out of memory?)"),
        ],
        default_cost=0.125,
        interrupt_grace=1.0,
    )
    await session.start()
    try:
        yield session
    finally:
        await session.close()


# --------------------------------------------------------------------------- the clock


async def test_the_clock_jumps_to_the_next_timer() -> None:
    t0 = clock.now()
    wall = time.monotonic()
    await asyncio.sleep(3600)
    assert clock.now() - t0 == 3600
    await sleep_until(t0 + 7200.5)
    assert clock.now() == t0 + 7200.5
    assert time.monotonic() - wall < 60  # an hour of sleeping took no real hour


async def test_the_clock_waits_for_work_on_a_thread() -> None:
    t0 = clock.now()
    timer = asyncio.create_task(asyncio.sleep(10))
    loop = asyncio.get_running_loop()

    def work() -> int:
        time.sleep(0.05)
        return threading.get_ident()

    # the thread sleeps for real; the virtual clock does not jump past the timer meanwhile
    value = await loop.run_in_executor(None, work)
    assert value != threading.get_ident()
    assert clock.now() == t0
    await timer
    assert clock.now() == t0 + 10


def test_run_virtual_returns_the_result() -> None:
    async def main() -> float:
        await asyncio.sleep(2.5)
        return clock.now()

    assert run_virtual(main(), start=100.0) == 102.5


# --------------------------------------------------------------------------- sources


async def test_scripted_source_releases_pieces_at_their_moments() -> None:
    source = ScriptedSource([(0.0, "a"), (0.5, "b"), (2.0, ConnectionError("dropped"))])
    t0 = clock.now()
    seen: list[tuple[float, str]] = []
    with pytest.raises(ConnectionError, match="dropped"):
        async for piece in source:
            seen.append((clock.now() - t0, piece))
    assert seen == [(0.0, "a"), (0.5, "b")]
    assert clock.now() - t0 == 2.0
    assert source.closed
    assert source.info() == {"source": "scripted", "pieces": 2, "yielded": 2}


async def test_paced_pieces_and_early_close() -> None:
    source = paced(["x", "y", "z"], tps=4, ttft=1.0)
    t0 = clock.now()
    times = []
    async for piece in source:
        times.append(clock.now() - t0)
        if piece == "y":
            break
    assert times == [1.0, 1.25]
    assert source.yielded == 2
    with pytest.raises(ValueError, match="non-decreasing"):
        ScriptedSource([(1.0, "a"), (0.5, "b")])


# --------------------------------------------------------------------------- outputs and errors


async def test_output_is_streamed_as_it_happens_and_collected(fake: FakeSession) -> None:
    seen: list[tuple[float, Output]] = []
    t0 = clock.now()
    code = "a = 1\nslow()\nprint('x', 1, sep='-')\nprint(a)\n"
    result = await fake.execute(code, on_output=lambda o: seen.append((clock.now() - t0, o)))
    assert result.status is Status.OK
    assert seen == [(4.125, Output("stdout", "slow done\n")), (4.25, Output("stdout", "x-1\n"))]
    assert result.outputs == [o for _, o in seen]
    # a print of something computed cannot be known without running it: it prints nothing
    assert result.stdout == "slow done\nx-1\n"
    assert (result.started, result.ended) == (t0, t0 + 4.375)


async def test_error_fields_name_the_line_in_the_executed_string(fake: FakeSession) -> None:
    code = "\n\na = 1\nfor i in range(3):\n    fail(i)\nprint('never')\n"
    result = await fake.execute(code)
    assert result.status is Status.ERROR
    assert result.error is not None
    assert (result.error.ename, result.error.evalue) == ("ValueError", "bad value")
    assert result.error.lineno == 4  # the top-level statement that was running
    assert result.error.traceback[-2:] == ["    for i in range(3):", "ValueError: bad value"]
    assert result.outputs == []  # the statement after it never ran
    assert result.ended - result.started == 0.125  # a = 1; the loop raised at once


async def test_an_error_on_a_later_line_of_a_statement() -> None:
    session = FakeSession([Rule("boom", raises="KeyError", evalue="'k'", line=2)])
    await session.start()
    result = await session.execute("x = 0\n\nwith ctx:\n    boom()\n")
    assert result.error is not None and result.error.lineno == 4
    assert result.error.traceback[-2] == "    boom()"


async def test_syntax_error_is_reported_with_its_line(fake: FakeSession) -> None:
    result = await fake.execute("x = 1\ny = (\n")
    assert result.status is Status.ERROR
    assert result.error is not None
    assert result.error.ename == "SyntaxError"
    assert result.error.lineno == 2
    assert result.ended == result.started  # nothing ran


async def test_statements_are_matched_one_by_one() -> None:
    session = FakeSession([Rule(re.compile(r"^@"), cost=1.0), Rule("y", cost=2.0)])
    await session.start()
    code = "x = 1; y = 2\n@decorate\ndef f():\n    return y\n"
    result = await session.execute(code)
    # x = 1 costs 0, y = 2 costs 2, the decorated def (which mentions y too) matches "^@" first
    assert result.ended - result.started == 3.0


# ---------------------------------------------------------------- interrupts and timeouts


async def test_interrupt_keeps_state(fake: FakeSession) -> None:
    task = asyncio.create_task(fake.execute("loop()\n"))
    await asyncio.sleep(1.0)
    await fake.interrupt()
    result = await task
    assert result.status is Status.INTERRUPTED
    assert result.detail == fake.supervisor.interrupted()
    assert result.error is not None and result.error.ename == "KeyboardInterrupt"
    assert result.error.lineno == 1
    assert not result.state_lost and fake.alive and fake.interpreters == 1
    assert result.stdout == "looping\n"
    assert result.ended - result.started == 1.0


async def test_interrupt_when_idle_is_harmless(fake: FakeSession) -> None:
    await fake.interrupt()
    assert (await fake.execute("x = 1")).status is Status.OK


async def test_timeout_interrupts_and_keeps_state(fake: FakeSession) -> None:
    result = await fake.execute("loop()\n", timeout=2.0)
    assert result.status is Status.TIMEOUT
    assert result.detail == fake.supervisor.timed_out(2.0)
    assert result.error is not None and result.error.ename == "KeyboardInterrupt"
    assert not result.state_lost and fake.interpreters == 1
    assert result.ended - result.started == 2.0


async def test_a_slow_interrupt_within_the_grace_period(fake: FakeSession) -> None:
    result = await fake.execute("late()\n", timeout=2.0)
    assert result.status is Status.TIMEOUT
    assert not result.state_lost
    assert result.ended - result.started == 2.75


async def test_timeout_on_code_that_ignores_interrupts_restarts(fake: FakeSession) -> None:
    result = await fake.execute("stubborn()\n", timeout=2.0)
    assert result.status is Status.TIMEOUT
    assert result.state_lost
    assert result.error is None
    cause = fake.supervisor.ignored_interrupt(after_timeout=True)
    assert result.detail == f"{cause}; the worker was restarted"
    assert result.ended - result.started == 3.0  # the timeout, then the grace period
    assert fake.alive and fake.interpreters == 2


async def test_a_statement_that_ends_before_the_late_interrupt_ends_normally() -> None:
    session = FakeSession([Rule("step", cost=1.0, interrupt_delay=math.inf)], interrupt_grace=5)
    await session.start()
    result = await session.execute("step()\nstep()\n", timeout=1.5)
    # the interrupt at 1.5 s is ignored; the code ends on its own at 2 s, within the grace
    assert result.status is Status.OK
    assert result.ended - result.started == 2.0


# --------------------------------------------------------------------------- deaths and lifecycle


async def test_death_is_reported_and_the_worker_restarted(fake: FakeSession) -> None:
    result = await fake.execute("print('bye')\ncrash()\nprint('never')\n")
    assert result.status is Status.DIED
    assert result.state_lost
    assert result.detail == "killed by SIGKILL (out of memory?); the worker was restarted"
    assert result.stdout == "bye\n"
    assert fake.alive and fake.interpreters == 2


async def test_death_without_auto_restart_leaves_the_session_dead() -> None:
    session = FakeSession([Rule("crash(", dies="segfault")], auto_restart=False)
    await session.start()
    result = await session.execute("crash()")
    assert result.status is Status.DIED
    assert result.detail == "segfault; the worker was not restarted (auto_restart is off)"
    assert not session.alive
    with pytest.raises(SessionDead, match=r"the worker died: segfault"):
        await session.execute("x = 1")


async def test_a_death_while_idle_is_noted_on_the_next_execution(fake: FakeSession) -> None:
    fake.crash("killed by the OOM killer")
    assert not fake.alive
    result = await fake.execute("x = 1")
    assert result.status is Status.OK
    assert result.state_lost
    assert result.detail == fake.supervisor.idle_death("killed by the OOM killer")
    assert fake.interpreters == 2


async def test_cancelled_execute_stops_the_code(fake: FakeSession) -> None:
    task = asyncio.create_task(fake.execute("loop()\n"))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    call = fake.calls[-1]
    assert call.cancelled and call.result is None and call.ended == call.started + 1.0
    assert fake.alive and fake.interpreters == 1  # it stopped at the interrupt: state kept
    assert (await fake.execute("x = 1")).status is Status.OK


async def test_cancelled_execute_of_code_that_ignores_interrupts_kills_it(
    fake: FakeSession,
) -> None:
    task = asyncio.create_task(fake.execute("stubborn()\n"))
    await asyncio.sleep(1.0)
    t_cancel = clock.now()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the cancellation propagated only once the code was gone: after the grace period
    assert clock.now() == t_cancel + 1.0
    assert fake.alive and fake.interpreters == 2


async def test_restart_clears_state_and_close_is_idempotent_and_final(fake: FakeSession) -> None:
    await fake.restart()
    assert fake.alive and fake.interpreters == 2
    await fake.close()
    assert not fake.alive
    await fake.close()
    with pytest.raises(SessionDead):
        await fake.execute("pass")


async def test_closing_under_a_running_execution_ends_it(fake: FakeSession) -> None:
    task = asyncio.create_task(fake.execute("loop()\n"))
    await asyncio.sleep(0.5)
    await fake.close()
    result = await task
    assert result.status is Status.DIED and result.state_lost
    assert result.detail == "the session was closed or restarted while the code ran"


async def test_a_session_that_was_never_started_is_not_alive() -> None:
    session = FakeSession(start_cost=1.5)
    with pytest.raises(SessionDead, match="not alive"):
        await session.execute("x = 1")
    t0 = clock.now()
    await session.start()
    assert session.alive and clock.now() - t0 == 1.5


async def test_a_second_execute_waits_for_its_turn(fake: FakeSession) -> None:
    first = asyncio.create_task(fake.execute("slow()\n"))
    await asyncio.sleep(0)
    # its timeout (1 s) is shorter than the wait, but starts with its turn
    second = asyncio.create_task(fake.execute("x = 1\n", timeout=1.0))
    third = asyncio.create_task(fake.execute("y = 2\n"))
    one, two, three = await asyncio.gather(first, second, third)
    assert [r.status for r in (one, two, three)] == [Status.OK] * 3
    assert one.ended == two.started and two.ended == three.started
    assert fake.executed == ["slow()\n", "x = 1\n", "y = 2\n"]


async def test_an_output_callback_error_is_raised_after_the_code_ended(fake: FakeSession) -> None:
    def broken(_: Output) -> None:
        raise RuntimeError("callback broke")

    with pytest.raises(RuntimeError, match="callback broke"):
        await fake.execute("print(1)\nprint(2)\n", on_output=broken)
    assert fake.calls[-1].result is not None and fake.calls[-1].result.stdout == "1\n2\n"


async def test_a_callback_that_escapes_fails_the_call_instead_of_hanging(
    fake: FakeSession,
) -> None:
    class Escape(BaseException):
        pass

    def escaping(_: Output) -> None:
        raise Escape

    with pytest.raises(Escape):
        await fake.execute("print(1)\n", on_output=escaping)


async def test_fake_factory_makes_configured_sessions() -> None:
    factory = FakeBackend(default_cost=0.5)
    session = factory.session(start_cost=0.25)
    assert isinstance(session, FakeSession) and session.backend_name == "fake"
    async with session:
        result: ExecResult = await session.execute("a = 1\nb = 2\n")
        assert result.ended - result.started == 1.0


def test_rules_reject_impossible_scripts() -> None:
    with pytest.raises(ValueError, match="cost"):
        Rule(cost=-1)
    with pytest.raises(ValueError, match="outside"):
        Rule(cost=1.0, outputs=[(2.0, Output("stdout", "x"))])
    with pytest.raises(ValueError, match="not both"):
        Rule(raises="E", dies="gone")


# --------------------------------------------------------------------------- tool calls


async def lookup(key: str) -> dict[str, Any]:
    await asyncio.sleep(1.5)
    if key == "missing":
        raise KeyError(key)
    return {"key": key, "n": len(key)}


def host_of(*tools: Any) -> ToolHost:
    return ToolHost(as_tools(tools), t0=clock.now())


async def test_a_statement_calls_a_tool_and_prints_the_reply() -> None:
    session = FakeSession(
        [Rule("lookup(", cost=0.5, tools=[ToolUse("lookup", {"key": "abc"}, at=0.25)])]
    )
    await session.start()
    host = host_of(lookup)
    seen: list[tuple[float, Output]] = []
    t0 = clock.now()
    result = await session.execute(
        "x = 1\nprint(lookup('abc'))\n",
        tools=host,
        on_output=lambda o: seen.append((clock.now() - t0, o)),
    )
    assert result.status is Status.OK, result
    # the call is made 0.25 s into the statement and answered 1.5 s later; the rest follows
    assert seen == [(1.75, Output("stdout", "{'key': 'abc', 'n': 3}\n"))]
    assert result.ended - result.started == 2.0
    [call] = host.calls
    assert (call.tool, call.arguments, call.started, call.ended, call.ok) == (
        "lookup",
        {"key": "abc"},
        0.25,
        1.75,
        True,
    )


async def test_uses_at_one_moment_are_made_together() -> None:
    uses = [ToolUse("lookup", {"key": k}, at=0.0) for k in ("a", "bb", "ccc")]
    session = FakeSession([Rule("gather(", tools=uses)])
    await session.start()
    host = host_of(lookup)
    result = await session.execute("await gather(...)\n", tools=host)
    assert result.stdout.splitlines() == [
        "{'key': 'a', 'n': 1}",
        "{'key': 'bb', 'n': 2}",
        "{'key': 'ccc', 'n': 3}",
    ]
    assert [(c.started, c.ended) for c in host.calls] == [(0.0, 1.5)] * 3
    assert result.ended - result.started == 1.5


async def test_a_failed_call_raises_tool_error_or_is_caught() -> None:
    session = FakeSession(
        [
            Rule("soft(", tools=[ToolUse("lookup", {"key": "missing"}, catch=True)]),
            Rule("hard(", tools=[ToolUse("lookup", {"key": "missing"})]),
        ]
    )
    await session.start()
    host = host_of(lookup)
    result = await session.execute("soft()\nx = 1\nhard()\nprint('never')\n", tools=host)
    assert result.status is Status.ERROR
    assert result.stdout == "tool lookup() failed: KeyError: 'missing'\n"
    assert result.error is not None
    assert (result.error.ename, result.error.evalue, result.error.lineno) == (
        "ToolError",
        "tool lookup() failed: KeyError: 'missing'",
        3,
    )
    assert [c.error for c in host.calls] == ["KeyError: 'missing'"] * 2


async def test_without_a_handler_or_with_a_failing_one() -> None:
    session = FakeSession([Rule("f(", tools=[ToolUse("f", catch=True)])])
    await session.start()
    alone = await session.execute("f()\n")
    assert alone.stdout == "tool f() failed: RuntimeError: this execution was given no tools\n"

    async def broken(request: Mapping[str, Any]) -> dict[str, Any]:
        raise OSError("handler down")

    failed = await session.execute("f()\n", tools=broken)
    assert failed.stdout == "tool f() failed: OSError: handler down\n"


async def test_an_interrupt_reaches_a_statement_waiting_for_a_tool() -> None:
    cancelled = asyncio.Event()

    async def stall() -> None:
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    session = FakeSession([Rule("stall(", cost=1.0, tools=[ToolUse("stall", at=0.5)])])
    await session.start()
    task = asyncio.create_task(session.execute("stall()\n", tools=host_of(stall)))
    await asyncio.sleep(2.0)
    await session.interrupt()
    result = await task
    assert result.status is Status.INTERRUPTED
    assert result.ended - result.started == 2.0
    assert cancelled.is_set()  # the call the code no longer waits for was dropped


async def test_a_timeout_while_waiting_for_a_tool() -> None:
    async def stall() -> None:
        await asyncio.sleep(100)

    session = FakeSession([Rule("stall(", tools=[ToolUse("stall")])])
    await session.start()
    result = await session.execute("stall()\n", tools=host_of(stall), timeout=3.0)
    assert result.status is Status.TIMEOUT
    assert not result.state_lost
    assert result.ended - result.started == 3.0


def test_tool_uses_reject_impossible_scripts() -> None:
    with pytest.raises(ValueError, match="outside the statement"):
        Rule(cost=1.0, tools=[ToolUse("f", at=2.0)])
    with pytest.raises(ValueError, match=">= 0"):
        ToolUse("f", at=-1.0)
    with pytest.raises(TypeError, match="the arguments of f"):
        ToolUse("f", {"x": object()})


# --------------------------------------------------------------------------- the documented example


def test_the_module_docstring_example_runs() -> None:
    doc = eager_rt.testing.__doc__ or ""
    block = doc.split("Testing an agent::\n", 1)[1].split("\nWith pytest", 1)[0]
    code = "\n".join(line[4:] for line in block.splitlines())
    exec(compile(code, "<eager_rt.testing docstring>", "exec"), {})  # noqa: S102 - our own example
