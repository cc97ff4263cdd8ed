"""The runtime with host tools, on FakeSession and a virtual clock: safety, records, events.

Statements call tools through :class:`~eager_rt.testing.ToolUse` rules, so
every time below is exact. What a real backend does with the calls is
checked on every backend in ``tests/conformance/test_tools.py``.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from eager_rt.chunk import Chunk
from eager_rt.events import Event, ToolCallFinished, ToolCallStarted
from eager_rt.policy import DefaultPolicy, HoldSideEffects
from eager_rt.result import ChunkRecord, RunResult
from eager_rt.runtime import arun_stream, run_stream
from eager_rt.sources.boundary import BOUNDARY
from eager_rt.testing import FakeSession, Rule, ScriptedSource, ToolUse, VirtualClockLoop
from eager_rt.tools import Tool, tool

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return "asyncio", {"loop_factory": VirtualClockLoop}


def send(to: str) -> str:
    """Send a message (a side effect)."""
    if to == "nobody":
        raise LookupError("no such recipient")
    return f"sent {to}"


async def lookup(key: str) -> str:
    """Read a record (read-only); takes a second."""
    await asyncio.sleep(1.0)
    return key.upper()


def transfer(amount: int) -> str:
    return f"moved {amount}"


def at_start(name: str) -> re.Pattern[str]:
    """A statement that starts with a call of ``name`` (not the stub's definition)."""
    return re.compile(rf"^{name}\(")


def sends(to: str, **options: Any) -> Rule:
    return Rule(re.compile(rf"^send\('{to}'\)"), tools=[ToolUse("send", {"to": to}, **options)])


async def started(*rules: Rule) -> FakeSession:
    session = FakeSession(rules)
    await session.start()
    return session


def batches(result: RunResult) -> list[tuple[list[int], float]]:
    return [(b.chunk_indices, b.t_start) for b in result.batches]


# ------------------------------------------------------------------ (a) no early side effects


async def test_a_side_effecting_tool_runs_only_when_its_statement_runs() -> None:
    loop_body = Rule(
        re.compile(r"^for "),
        tools=[
            ToolUse("lookup", {"key": "a"}, at=0.0, prints=False),
            ToolUse("send", {"to": "bob"}, at=0.5, prints=False),
        ],
        cost=0.5,
    )
    session = await started(loop_body)
    source = ScriptedSource(
        [
            (0.0, "for i in range(1):\n"),
            (1.0, "    r = lookup('a')\n"),
            (2.0, "    send('bob')\n"),
            (5.0, "print('done')\n"),
        ]
    )
    result = await arun_stream(
        source, session, tools=[tool(lookup, read_only=True), send], speculate=True
    )
    assert result.ok, result.error
    loop_start = result.batches[0].t_start
    assert loop_start == 5.0  # the for statement is complete once the next line came
    calls = {c.tool: c for c in result.tool_calls}
    # the read-only call started while the loop was still being written ...
    assert calls["lookup"].speculative and calls["lookup"].started == 1.0
    # ... the side effect only when the statement ran, as the code made it
    assert not calls["send"].speculative
    assert calls["send"].started == loop_start + 0.5


# --------------------------------------------------------------------------- (b) hold_side_effects

UNIT = [
    (0.0, "a = 1\n"),
    (1.0, "send('bob')\n"),
    (2.0, "b = 2\n"),
    (3.0, BOUNDARY),
    (4.0, "c = 3\n"),
]


async def test_without_holding_a_side_effect_runs_as_soon_as_written() -> None:
    session = await started(sends("bob"))
    result = await arun_stream(ScriptedSource(UNIT), session, tools=[send])
    assert batches(result) == [([0], 0.0), ([1], 1.0), ([2], 2.0), ([3], 4.0)]
    assert [c.started for c in result.tool_calls] == [1.0]


async def test_holding_waits_for_the_end_of_the_code_unit() -> None:
    session = await started(sends("bob"))
    result = await arun_stream(ScriptedSource(UNIT), session, tools=[send], hold_side_effects=True)
    assert result.ok, result.error
    # the statement after the held one waits too: the program's order is kept
    assert batches(result) == [([0], 0.0), ([1, 2], 3.0), ([3], 4.0)]
    assert [(c.tool, c.started) for c in result.tool_calls] == [("send", 3.0)]
    assert result.stdout == "sent bob\n"


async def test_a_held_statement_whose_unit_never_completes_never_runs() -> None:
    steps = [*UNIT[:3], (2.5, ConnectionResetError("the stream dropped"))]
    session = await started(sends("bob"))
    result = await arun_stream(ScriptedSource(steps), session, tools=[send], hold_side_effects=True)
    assert result.status == "source_error"
    assert result.tool_calls == []
    assert batches(result) == [([0], 0.0)]
    assert result.error is not None
    assert result.error.code_before == "a = 1\n"
    assert result.error.not_run == "send('bob')\nb = 2\n"
    # without holding, the half-written program acted
    session = await started(sends("bob"))
    unheld = await arun_stream(ScriptedSource(steps), session, tools=[send])
    assert [c.tool for c in unheld.tool_calls] == ["send"]


async def test_a_unit_cut_by_a_syntax_error_does_not_act() -> None:
    steps = [(0.0, "send('bob')\n"), (1.0, "x = (]\n"), (2.0, "y = 1\n")]
    session = await started(sends("bob"))
    result = await arun_stream(ScriptedSource(steps), session, tools=[send], hold_side_effects=True)
    assert result.status == "syntax_error"
    assert result.tool_calls == []
    assert result.stream_closed_early


async def test_holding_still_speculates_read_only_calls() -> None:
    rules = [
        sends("bob"),
        Rule(re.compile(r"^r = "), tools=[ToolUse("lookup", {"key": "a"}, prints=False)]),
    ]
    session = await started(*rules)
    steps = [(0.0, "send('bob')\n"), (1.0, "r = lookup('a')\n"), (5.0, BOUNDARY)]
    result = await arun_stream(
        ScriptedSource(steps),
        session,
        tools=[tool(lookup, read_only=True), send],
        hold_side_effects=True,
        speculate=True,
    )
    assert result.ok, result.error
    calls = {c.tool: c for c in result.tool_calls}
    # the lookup ran while its statement was held behind the send, and was ready at 5 s
    assert (calls["lookup"].started, calls["lookup"].ended) == (1.0, 2.0)
    assert calls["lookup"].speculative and calls["lookup"].claimed_at == 5.0
    assert calls["send"].started == 5.0 and not calls["send"].speculative
    assert result.e2el_s == 5.0


async def test_read_only_tools_are_not_held() -> None:
    rule = Rule(at_start("lookup"), tools=[ToolUse("lookup", {"key": "k"})])
    session = await started(rule)
    steps = [(0.0, "lookup('k')\n"), (3.0, "x = 1\n"), (4.0, BOUNDARY)]
    result = await arun_stream(
        ScriptedSource(steps),
        session,
        tools=[tool(lookup, read_only=True), send],
        hold_side_effects=True,
    )
    assert batches(result)[0] == ([0], 0.0)
    assert result.stdout == "K\n"


async def test_a_wrapper_from_an_earlier_unit_is_held_in_the_next() -> None:
    rules = [
        Rule(at_start("notify"), tools=[ToolUse("send", {"to": "ann"})]),
        Rule(at_start("s"), tools=[ToolUse("send", {"to": "bob"})]),
    ]
    session = await started(*rules)
    steps = [
        (0.0, "def notify(to):\n    return send(to)\n"),
        (1.0, "s = send\n"),
        (1.5, BOUNDARY),
        (2.0, "notify('ann')\n"),
        (3.0, "s('bob')\n"),
        (4.0, "x = 1\n"),
        (6.0, BOUNDARY),
    ]
    result = await arun_stream(ScriptedSource(steps), session, tools=[send], hold_side_effects=True)
    assert result.ok, result.error
    assert [(c.arguments["to"], c.started) for c in result.tool_calls] == [
        ("ann", 6.0),
        ("bob", 6.0),
    ]


def record(code: str, *, complete: bool = False) -> ChunkRecord:
    chunk = Chunk(code, 0, 0, len(code), len(code), 1, "statement")
    return ChunkRecord(chunk, 0.0, 0.0, unit_complete=complete)


@pytest.mark.parametrize(
    "code",
    [
        "send('x')\n",
        "r = [send(t) for t in targets]\n",
        "f = lambda: send('x')\n",
        "print(f'{send(1)}')\n",
        "def later():\n    return send('x')\n",
        "handlers = {'mail': send}\n",
        "await send_async(send)\n",
        "if ok:\n    send('x')\n",
    ],
)
def test_every_mention_of_a_held_name_holds(code: str) -> None:
    hold = HoldSideEffects(DefaultPolicy(), ["send"])
    assert hold.holds(record(code))
    assert hold.take([record(code)], False) == 0
    assert hold.take([record(code, complete=True)], False) == 1


@pytest.mark.parametrize(
    "code", ["x = 'send'\n", "# send\n", "obj.send('x')\n", "resend('x')\n", "print(sent)\n"]
)
def test_other_text_does_not_hold(code: str) -> None:
    assert not HoldSideEffects(DefaultPolicy(), ["send"]).holds(record(code))


def test_names_bound_by_a_held_statement_are_held_from_then_on() -> None:
    hold = HoldSideEffects(DefaultPolicy(), ["send"])
    for code in [
        "alias = send\n",
        "registry['mail'] = send\n",
        "queue.append(send)\n",
        "class Mailer:\n    go = send\n",
        "def wrapper():\n    local = send\n    return local\n",
    ]:
        assert hold.holds(record(code))
    assert {"alias", "registry", "queue", "Mailer", "wrapper"} <= hold.names
    assert "local" not in hold.names  # a function's locals are its own
    assert hold.holds(record("queue[0]('x')\n"))
    assert not hold.holds(record("local = 1\n"))


def test_code_that_does_not_parse_holds_on_any_word() -> None:
    hold = HoldSideEffects(DefaultPolicy(), ["send"])
    assert hold.holds(record("send(\n"))
    assert not hold.holds(record("x = (\n"))


def test_the_statements_before_the_held_one_follow_the_inner_policy() -> None:
    pending = [record("a = 1\n"), record("def f():\n    pass\n"), record("send('x')\n")]
    pending[1] = ChunkRecord(
        Chunk(pending[1].chunk.code, 1, 0, 1, 1, 2, "statement", declaration=True), 0.0, 0.0
    )
    hold = HoldSideEffects(DefaultPolicy(), ["send"])
    assert hold.take(pending, False) == 1  # gating keeps the def for the next real statement
    assert hold.take(pending[1:], False) == 0
    assert hold.runnable_at_end(pending) == 2


async def test_hold_needs_tools() -> None:
    with pytest.raises(ValueError, match="needs tools="):
        await arun_stream(["x = 1\n"], FakeSession(), hold_side_effects=True)


# ------------------------------------------------------------ (d) the ledger, records, events


async def test_the_ledger_lists_side_effects_in_order_with_failures_without_denials() -> None:
    rules = [
        Rule(at_start("lookup"), tools=[ToolUse("lookup", {"key": "a"})]),
        sends("ann"),
        sends("nobody", catch=True),
        Rule("transfer(500)", tools=[ToolUse("transfer", {"amount": 500}, catch=True)]),
        Rule("transfer(5)", tools=[ToolUse("transfer", {"amount": 5})]),
    ]
    session = await started(*rules)
    code = "lookup('a')\nsend('ann')\nsend('nobody')\ntransfer(500)\ntransfer(5)\n"

    def approve(t: Tool, arguments: dict[str, Any]) -> bool:
        return bool(arguments["amount"] < 100)

    events: list[Event] = []
    result = await arun_stream(
        ScriptedSource([(0.0, code)]),
        session,
        tools=[tool(lookup, read_only=True), send, tool(transfer, requires_approval=True)],
        approve=approve,
        on_event=events.append,
    )
    assert result.ok, result.error
    assert result.stdout == (
        "A\nsent ann\ntool send() failed: LookupError: no such recipient\n"
        "tool transfer() failed: PermissionError: the call of transfer() was not approved\n"
        "moved 5\n"
    )
    assert [(c.tool, c.arguments, c.ok, c.approved) for c in result.tool_calls] == [
        ("lookup", {"key": "a"}, True, None),
        ("send", {"to": "ann"}, True, None),
        ("send", {"to": "nobody"}, False, None),
        ("transfer", {"amount": 500}, False, False),
        ("transfer", {"amount": 5}, True, True),
    ]
    assert [(c.tool, c.arguments) for c in result.ledger] == [
        ("send", {"to": "ann"}),
        ("send", {"to": "nobody"}),
        ("transfer", {"amount": 5}),
    ]
    assert result.ledger[1].error == "LookupError: no such recipient"
    data = json.loads(json.dumps(result.to_dict()))  # JSON-ready, as `eager run --json` prints
    assert data["ledger"] == [2, 3, 5]
    assert data["tool_calls"][3]["approved"] is False
    # every call is reported live: started, then finished, at the record's own times
    reported = [
        (type(e).__name__, e.call.id, e.t)
        for e in events
        if isinstance(e, ToolCallStarted | ToolCallFinished)
    ]
    expected = []
    for c in result.tool_calls:
        expected += [("ToolCallStarted", c.id, c.started), ("ToolCallFinished", c.id, c.ended)]
    assert reported == expected


async def test_tool_call_records_have_exact_times() -> None:
    rule = Rule(at_start("lookup"), cost=0.5, tools=[ToolUse("lookup", {"key": "a"}, at=0.25)])
    session = await started(rule)
    source = ScriptedSource([(0.0, "x = 1\n"), (2.0, "lookup('a')\n")])
    result = await arun_stream(source, session, tools=[tool(lookup, read_only=True)])
    [call] = result.tool_calls
    assert (call.started, call.ended, call.duration) == (2.25, 3.25, 1.0)
    assert (call.read_only, call.speculative, call.claimed, call.wasted) == (
        True,
        False,
        True,
        False,
    )
    assert result.e2el_s == 3.5


# --------------------------------------------------------------------------- the sync twin


def test_run_stream_takes_tools_on_a_real_backend() -> None:
    def double(n: int) -> int:
        return 2 * n

    result = run_stream(["x = double(21)\n", "print(x)\n"], backend="local", tools=[double])
    assert result.ok, result.error
    assert result.stdout == "42\n"
    assert [(c.tool, c.arguments) for c in result.tool_calls] == [("double", {"n": 21})]


def test_no_tool_thread_outlives_its_run() -> None:
    import threading

    # the threads themselves, not their idents: an ended thread's ident is reused
    threads: set[threading.Thread] = set()

    def double(n: int) -> int:
        threads.add(threading.current_thread())
        return 2 * n

    result = run_stream(
        ["a = double(1)\n", "b = double(2)\n", "print(a + b)\n"], backend="local", tools=[double]
    )
    assert result.ok, result.error
    assert result.stdout == "6\n"
    assert threads and threading.current_thread() not in threads  # the run's own threads
    assert [t for t in threads if t.is_alive()] == []
