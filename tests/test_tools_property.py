"""Property: with tools, eager execution with speculation changes nothing the program does.

Hypothesis writes small programs over a set of deterministic tools, read-only
and side-effecting, sync and async: literal calls, calls on earlier results
(session values), loops over literal lists and ranges, async comprehensions,
calls inside functions, branches that may not be taken (wasted speculation),
and variables changed before a call (a speculated value that no longer
matches). Each program runs twice on one local session (restarted between
runs), replayed at 400 tok/s: serially, then eagerly with speculation. The output must
be the same, every side-effecting tool must have run exactly as many times
with the same arguments in the same order, and no non-read-only call may
ever be speculative.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from eager_rt.registry import get_backend
from eager_rt.result import RunResult
from eager_rt.runtime import run_stream
from eager_rt.sources.replay import replay
from eager_rt.speculation import summarize
from eager_rt.sync import SyncSession
from eager_rt.tools import Tool, tool

#: what the side-effecting tools did, in order (the tools' own record, not the host's)
EFFECTS: list[tuple[str, Any]] = []


async def double(x: int) -> int:
    """Read-only, async."""
    await asyncio.sleep(0.005 * (x % 3))
    return 2 * x + 1


def measure(key: str, n: int = 1) -> int:
    """Read-only, sync; fails on a negative count, as a real service might."""
    if n < 0:
        raise ValueError(f"negative n: {n}")
    return len(key) * n


async def record(tag: str) -> int:
    """Side effect, async."""
    EFFECTS.append(("record", tag))
    return len(EFFECTS)


def bump(value: int) -> int:
    """Side effect, sync."""
    EFFECTS.append(("bump", value))
    return value + 1


TOOLS: list[Tool] = [
    tool(double, read_only=True),
    tool(measure, read_only=True),
    tool(record),
    tool(bump),
]

small = st.integers(-2, 6)


@st.composite
def statements(draw: st.DrawFn, index: int, names: list[str]) -> str:
    """One statement (maybe a block) that binds ``v{index}`` to an int."""
    v = f"v{index}"
    known = draw(st.sampled_from(names)) if names else None
    lit = draw(small)
    kinds = ["literal", "measure", "loop", "range", "comp", "effect", "branch", "func"]
    if known is not None:
        kinds += ["session", "session", "change", "effect_on"]
    kind = draw(st.sampled_from(kinds))
    if kind == "literal":
        return f"{v} = await double({lit})\nprint({v})\n"
    if kind == "measure":
        return f"{v} = measure('k{lit}', n={abs(lit)})\nprint({v})\n"
    if kind == "session":
        return f"{v} = await double(x={known})\nprint({v})\n"
    if kind == "loop":
        items = draw(st.lists(small, min_size=1, max_size=3))
        return (
            f"{v} = 0\nfor item in {items!r}:\n"
            f"    {v} += await double(item)\n    print('loop', item)\nprint({v})\n"
        )
    if kind == "range":
        return f"{v} = 0\nfor i in range({abs(lit)}):\n    {v} += measure('r', i)\nprint({v})\n"
    if kind == "comp":
        return f"{v} = sum([await double(k) for k in range({abs(lit)})])\nprint({v})\n"
    if kind == "effect":
        return f"{v} = await record('t{lit}')\nprint({v})\n"
    if kind == "effect_on":
        return f"{v} = bump({known})\nprint({v})\n"
    if kind == "branch":
        condition = f"{known} > {lit}" if known else "False"
        return (
            f"if {condition}:\n    {v} = await double({lit + 10})\n"
            f"else:\n    {v} = measure('no', n={abs(lit)})\nprint({v})\n"
        )
    if kind == "change":  # the value speculated on changes before the call: wasted, not wrong
        return (
            f"def g{index}():\n    global {known}\n    {known} += 1\n"
            f"if True:\n    g{index}()\n    {v} = await double({known})\nprint({v})\n"
        )
    # a function whose body calls tools; called with a literal
    return (
        f"def f{index}(z):\n    return measure('f', n=z) + bump(z)\n"
        f"{v} = f{index}({abs(lit)})\nprint({v})\n"
    )


@st.composite
def programs(draw: st.DrawFn) -> str:
    count = draw(st.integers(1, 6))
    parts: list[str] = []
    names: list[str] = []
    for i in range(count):
        parts.append(draw(statements(i, names)))
        names.append(f"v{i}")
    if draw(st.booleans()):
        parts.append("print(measure('end', n=-1))\n")  # a tool error ends the run
    return "".join(parts)


@pytest.fixture(scope="module")
def session() -> Iterator[SyncSession]:
    s = SyncSession(get_backend("local")().session())
    s.start(timeout=60)
    try:
        yield s
    finally:
        s.close()


def _run(session: SyncSession, code: str, **options: Any) -> tuple[RunResult, list[Any]]:
    session.restart()
    EFFECTS.clear()
    result = run_stream(replay(code, 400.0), session, tools=TOOLS, timeout=120, **options)
    return result, list(EFFECTS)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(code=programs())
def test_eager_speculation_equals_serial(session: SyncSession, code: str) -> None:
    serial, serial_effects = _run(session, code, mode="serial")
    eager, eager_effects = _run(session, code, speculate=True, max_speculative=3)
    assert eager.stdout == serial.stdout, code
    assert eager.status == serial.status, code
    if serial.error is not None:
        assert eager.error is not None and eager.error.ename == serial.error.ename
    assert eager_effects == serial_effects, code  # what ran, how often, in order
    assert [(c.tool, c.arguments) for c in eager.ledger] == [
        (c.tool, c.arguments) for c in serial.ledger
    ]
    assert not any(c.speculative and not c.read_only for c in eager.tool_calls)
    spec = summarize(eager.tool_calls)  # --hypothesis-show-statistics: what was exercised
    event(f"speculated={spec.speculated > 0} wasted={spec.wasted > 0} session={spec.session > 0}")
    made = sorted(repr((c.tool, c.arguments)) for c in eager.tool_calls if c.claimed)
    assert made == sorted(repr((c.tool, c.arguments)) for c in serial.tool_calls), code
