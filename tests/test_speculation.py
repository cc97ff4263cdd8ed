"""Speculative tool calls: the scanner, the host's table of speculated calls, and whole runs.

The scanner and the argument evaluation are pure (fed piece by piece, any
split). The host tests drive :class:`~eager_rt.tools.ToolHost` with the
requests a generated stub sends. The runtime tests run real tools (with
``asyncio.sleep`` latencies) on the local backend and assert on the records:
which calls started speculatively, before which chunk was complete, which
the code claimed, and that the output equals a run without speculation.
Nothing asserts a duration.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from eager_rt.backends import _tool_wire as wire
from hypothesis import given, settings
from hypothesis import strategies as st

from eager_rt.executor import Session
from eager_rt.result import RunResult
from eager_rt.runtime import arun_stream
from eager_rt.sources.replay import replay
from eager_rt.speculation import (
    CallSite,
    Scanner,
    Speculator,
    eligible_tools,
    expand,
    summarize,
)
from eager_rt.tools import Tool, ToolCall, ToolHost, as_tools, tool

pytestmark = pytest.mark.anyio

CORPUS = Path(__file__).resolve().parent.parent / "bench" / "tools_corpus"


def sites_of(code: str, names: Sequence[str] = ("weather", "lookup"), step: int = 1) -> list[str]:
    """The calls the scanner reports, fed ``step`` characters at a time, as source text."""
    scanner = Scanner(names)
    found: list[CallSite] = []
    for i in range(0, len(code), step):
        found += scanner.feed(code[i : i + step])
    return [ast.unparse(s.call) for s in found]


def reported_at(code: str, names: Sequence[str] = ("weather",)) -> list[tuple[str, int]]:
    """Each reported call and the length of the text fed when it was reported."""
    scanner = Scanner(names)
    out = []
    for i, c in enumerate(code):
        out += [(ast.unparse(s.call), i + 1) for s in scanner.feed(c)]
    return out


# --------------------------------------------------------------------------- the scanner


def test_a_literal_call_is_reported_at_its_closing_parenthesis() -> None:
    code = 'x = weather("Oslo")\n'
    assert reported_at(code) == [("weather('Oslo')", code.index(")") + 1)]


def test_calls_inside_unfinished_blocks_are_reported_before_the_block_ends() -> None:
    code = (
        "for i in range(3):\n"
        "    with open('f') as fh:\n"
        "        def inner():\n"
        "            return weather('Deep')\n"
        "        if i:\n"
        "            print(weather(city='Kw'))\n"
    )
    found = reported_at(code)
    assert [c for c, _ in found] == ["weather('Deep')", "weather(city='Kw')"]
    first_close = code.index("'Deep')") + len("'Deep')")
    assert found[0][1] == first_close  # long before the for statement is complete


def test_calls_in_strings_comments_attributes_and_definitions_are_not_calls() -> None:
    code = (
        "s = \"weather('a')\"\n"
        "t = '''weather(\"b\")\n  weather('c')\n'''\n"
        "u = r'\\' weather(\"d\")'\n"
        "b = b'weather(1)'\n"
        "f = f\"text weather('e') {len('x')}\"\n"
        "# weather('f')\n"
        "obj.weather('g')\n"
        "def weather(city):\n"
        "    pass\n"
        "class weather(Base):\n"
        "    pass\n"
        "x = weather('real')  # weather('h')\n"
    )
    assert sites_of(code) == ["weather('real')"]
    assert sites_of(code, step=3) == ["weather('real')"]


def test_calls_inside_fstring_fields_are_calls() -> None:
    assert sites_of("print(f\"{weather('Oslo')['t']:>5} and {{weather('no')}}\")\n") == [
        "weather('Oslo')"
    ]


def test_keyword_arguments_nesting_and_line_continuations() -> None:
    code = (
        "r = await asyncio.gather(\n"
        "    weather(city='A', units='imperial'),  # a comment ) inside\n"
        "    weather(\n"
        "        'B',\n"
        "    ),\n"
        ")\n"
        "y = weather \\\n    ('C')\n"
    )
    assert sites_of(code) == [
        "weather(city='A', units='imperial')",
        "weather('B')",
        "weather('C')",
    ]


def test_an_unfinished_string_never_leaks_calls() -> None:
    scanner = Scanner(["weather"])
    assert scanner.feed('x = """ weather("a") ') == []
    assert scanner.feed('weather("b")') == []
    assert [ast.unparse(s.call) for s in scanner.feed('"""; weather("c")')] == ["weather('c')"]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_split_of_the_stream_gives_the_same_calls(data: st.DataObject) -> None:
    code = (
        "cities = ['a', \"b\"]  # weather('no')\n"
        "for c in cities:\n"
        "    r = weather(c, units=f'{c}!')\n"
        "    s = '''weather('no')'''\n"
        "    t = lookup(id=[1, 2, {'k': (3,)}])\n"
        "res = [weather(k.upper()) for k in ['x', 'y'] ]\n"
    )
    cuts = sorted(data.draw(st.sets(st.integers(1, len(code) - 1), max_size=40)))
    scanner = Scanner(["weather", "lookup"])
    found: list[str] = []
    for a, b in zip([0, *cuts], [*cuts, len(code)], strict=True):
        found += [ast.unparse(s.call) for s in scanner.feed(code[a:b])]
    assert found == sites_of(code)
    assert found == [
        "weather(c, units=f'{c}!')",
        "lookup(id=[1, 2, {'k': (3,)}])",
        "weather(k.upper())",
    ]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("weathr()'\"#\\\n {}[]:=f,.x1")), max_size=80))
def test_the_scanner_never_fails_on_any_text(text: str) -> None:
    scanner = Scanner(["weather"])
    for c in text:
        scanner.feed(c)


def _ast_calls(code: str, names: set[str]) -> list[str]:
    """The interpreter's own view: every call of ``names`` by bare name, in source order."""
    calls = [
        n
        for n in ast.walk(ast.parse(code))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in names
    ]
    calls.sort(key=lambda n: (n.lineno, n.col_offset))
    return [ast.unparse(n) for n in calls]


def test_the_scanner_finds_exactly_the_calls_the_parser_finds_in_the_corpus() -> None:
    """Differential: on every corpus program, the same calls as ``ast`` (order aside)."""
    from bench.tools_corpus import TOOL_NAMES, program_names, program_text

    names = program_names()
    assert len(names) >= 20
    for name in names:
        code = program_text(name)
        for step in (1, 7):
            assert sorted(sites_of(code, sorted(TOOL_NAMES), step)) == sorted(
                _ast_calls(code, set(TOOL_NAMES))
            ), name


# --------------------------------------------------------------------------- evaluation


def _expand(code: str, session: dict[str, Any] | None = None) -> list[Any]:
    scanner = Scanner(["weather"])
    sites = scanner.feed(code)
    assert len(sites) == 1, sites
    result = expand(sites[0], session or {})
    if result is None:
        return ["unknown"]
    if result.missing:
        return ["missing", sorted(result.missing)]
    return [(args, kwargs, origin) for args, kwargs, origin in result.calls]


def test_loops_expand_to_one_call_per_element() -> None:
    assert _expand("for c in ['A', 'B']:\n    weather(c)\n") == [
        (["A"], {}, "literal"),
        (["B"], {}, "literal"),
    ]
    assert _expand("for i in range(1, 4, 2):\n  weather(city=f'c{i * 10}')\n") == [
        ([], {"city": "c10"}, "literal"),
        ([], {"city": "c30"}, "literal"),
    ]
    assert _expand("for i, c in enumerate('xy', 1):\n weather(c, i)\n") == [
        (["x", 1], {}, "literal"),
        (["y", 2], {}, "literal"),
    ]
    assert _expand("for k, v in {'a': 1}.items():\n weather(k, units=str(v))\n") == [
        (["a"], {"units": "1"}, "literal"),
    ]
    nested = "for a in [1, 2]:\n    for b in 'xy':\n        weather(a, b)\n"
    assert [c[0] for c in _expand(nested)] == [[1, "x"], [1, "y"], [2, "x"], [2, "y"]]
    assert _expand("r = [weather(c) for c in ('p', 'q')]\n") == [
        (["p"], {}, "literal"),
        (["q"], {}, "literal"),
    ]
    # a loop variable the call does not use: one call, not one per element
    assert _expand("for i in range(5):\n    weather('same')\n") == [(["same"], {}, "literal")]


def test_session_names_and_constant_subscripts_are_read_from_the_session() -> None:
    code = "for c in cities[1:]:\n    weather(c, units=cfg['units'][0])\n"
    assert _expand(code) == ["missing", ["cfg", "cities"]]
    session = {"cities": ["A", "B", "C"], "cfg": {"units": ["metric"]}}
    assert _expand(code, session) == [
        (["B"], {"units": "metric"}, "session"),
        (["C"], {"units": "metric"}, "session"),
    ]
    assert _expand("weather(**opts)\n", {"opts": {"city": "Z"}}) == [([], {"city": "Z"}, "session")]


def test_names_bound_inside_the_unfinished_block_are_never_read_from_the_session() -> None:
    assert _expand("def f(city):\n    return weather(city)\n") == ["unknown"]
    assert _expand("for c in xs:\n    c = c.upper()\n    weather(c)\n") == ["unknown"]
    assert _expand("with open('f') as fh:\n    weather(fh)\n") == ["unknown"]
    assert _expand("if True:\n    name = 'q'\n    weather(name)\n") == ["unknown"]
    # a loop over something only running code can know: its variable is unknowable
    assert _expand("for c in load():\n    weather(c)\n") == ["unknown"]
    assert _expand("weather(foo(1))\n") == ["unknown"]


def test_a_filtered_comprehension_is_not_expanded() -> None:
    assert _expand("r = [weather(c) for c in ['a', 'b'] if c != 'a']\n") == ["unknown"]


# --------------------------------------------------------------------------- options


def _weather(city: str, units: str = "metric") -> str:
    """Read-only."""
    return f"{city}/{units}"


def _send(to: str) -> str:
    """Side effect."""
    return to


TOOLS = as_tools([tool(_weather, name="weather", read_only=True), tool(_send, name="send")])


def test_only_read_only_tools_are_eligible() -> None:
    assert eligible_tools(TOOLS, True) == {"weather"}
    assert eligible_tools(TOOLS, ["weather"]) == {"weather"}
    assert eligible_tools(TOOLS, False) == frozenset()
    with pytest.raises(ValueError, match="not declared read_only"):
        eligible_tools(TOOLS, ["send"])
    with pytest.raises(ValueError, match="not one of the tools"):
        eligible_tools(TOOLS, ["nope"])
    approving = as_tools([tool(_weather, name="weather", read_only=True, requires_approval=True)])
    assert eligible_tools(approving, True) == frozenset()
    host = ToolHost(TOOLS)
    with pytest.raises(ValueError, match="read-only tools only"):
        host.allow_speculation(["send"])


async def test_the_host_never_speculates_a_tool_not_allowed() -> None:
    host = ToolHost(TOOLS)
    host.allow_speculation(["weather"])
    assert not host.speculate("send", ["bob"])
    assert host.speculate("weather", ["Oslo"])
    await host.end_speculation()
    assert [c.tool for c in host.calls] == ["weather"]


# --------------------------------------------------------------------------- the host's table


def request(name: str, **named: Any) -> dict[str, Any]:
    """What a generated stub sends: every parameter by name."""
    return {"tool": name, "args": wire.encode(named), "call": 1}


async def test_positional_keyword_and_default_forms_are_one_call() -> None:
    host = ToolHost(TOOLS)
    host.allow_speculation(["weather"])
    assert host.speculate("weather", ["Oslo"])
    assert host.speculate("weather", [], {"city": "Rome", "units": "metric"})
    first = await host(request("weather", city="Oslo", units="metric"))
    second = await host(request("weather", city="Rome", units="metric"))
    assert first == {"ok": True, "tool": "weather", "value": "Oslo/metric"}
    assert second["value"] == "Rome/metric"
    assert [(c.arguments, c.speculative, c.claimed) for c in host.calls] == [
        ({"city": "Oslo", "units": "metric"}, True, True),
        ({"city": "Rome", "units": "metric"}, True, True),
    ]
    await host.end_speculation()
    assert summarize(host.calls).wasted == 0


async def test_a_speculated_error_is_the_error_the_real_call_gets() -> None:
    async def fails(n: int) -> int:
        raise LookupError(f"no record {n}")

    declared = as_tools([tool(fails, read_only=True)])
    plain = await ToolHost(declared)(request("fails", n=3))
    host = ToolHost(declared)
    host.allow_speculation(["fails"])
    host.speculate("fails", [3])
    claimed = await host(request("fails", n=3))
    assert claimed == plain
    assert claimed["error"] == {"type": "LookupError", "message": "no record 3"}
    assert host.calls[0].speculative and host.calls[0].claimed and host.calls[0].error


async def test_unclaimed_calls_are_cancelled_and_reported_wasted() -> None:
    gate = asyncio.Event()

    async def slow(n: int) -> int:
        await gate.wait()
        return n

    host = ToolHost(as_tools([tool(slow, read_only=True)]))
    host.allow_speculation(["slow"], max_in_flight=2)
    for n in range(5):
        assert host.speculate("slow", [n])
    await asyncio.sleep(0.01)
    assert len(host.calls) == 2  # at most two in flight; the others wait for a slot
    gate.set()
    assert (await host(request("slow", n=0)))["value"] == 0
    await asyncio.sleep(0.05)
    assert len(host.calls) == 5  # slots freed: the queued ones ran
    gate.clear()
    host.speculate("slow", [9])
    await asyncio.sleep(0.01)
    await host.end_speculation()
    summary = host.speculation
    assert (summary.literal, summary.claimed, summary.wasted) == (6, 1, 5)
    last = host.calls[-1]
    assert last.wasted and last.ok is False and "CancelledError" in (last.error or "")
    assert not host.speculate("slow", [10])  # over: nothing starts after the end


async def test_a_queued_call_the_code_reaches_first_is_made_once() -> None:
    gate = asyncio.Event()

    async def slow(n: int) -> int:
        await gate.wait()
        return n

    host = ToolHost(as_tools([tool(slow, read_only=True)]))
    host.allow_speculation(["slow"], max_in_flight=1)
    host.speculate("slow", [1])
    host.speculate("slow", [2])  # queued behind 1
    gate.set()
    assert (await host(request("slow", n=2)))["value"] == 2
    await host.end_speculation()
    assert [(c.arguments["n"], c.speculative) for c in host.calls] == [(1, True), (2, False)]


async def test_sync_speculation_on_the_tool_threads_claimed_wasted_and_never_started() -> None:
    """A sync tool's speculative calls share the run's bounded threads; the end waits for them."""
    import threading

    entered = threading.Semaphore(0)
    gates = {n: threading.Event() for n in (1, 2, 3)}
    started: list[int] = []

    def look(n: int) -> int:
        started.append(n)
        entered.release()
        assert gates[n].wait(30)
        return n * 10

    host = ToolHost(as_tools([tool(look, read_only=True)]), max_threads=1)
    host.allow_speculation(["look"])
    for n in (1, 2, 3):
        assert host.speculate("look", [n])  # 1 takes the one thread; 2 and 3 wait for it
    assert await asyncio.to_thread(entered.acquire, True, 30)
    claimed = host(request("look", n=1))
    gates[1].set()
    assert (await claimed)["value"] == 10
    assert await asyncio.to_thread(entered.acquire, True, 30)  # 2 holds the thread now
    closing = asyncio.ensure_future(host.aclose())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not closing.done()  # 2 is still on its thread: the end of the run waits for it
    gates[2].set()
    await closing
    assert started == [1, 2]  # 3 was still waiting for the thread: it never ran
    first, second, third = host.calls
    assert (first.claimed, first.ok) == (True, True)
    for unclaimed in (second, third):
        assert unclaimed.wasted
        assert unclaimed.error == "CancelledError: cancelled at the end of the run, unclaimed"
    assert host.speculation.wasted == 2


async def test_an_inline_speculation_is_settled_when_it_starts() -> None:
    host = ToolHost(as_tools([tool(_weather, name="weather", read_only=True, inline=True)]))
    host.allow_speculation(["weather"])
    assert host.speculate("weather", ["Oslo"])
    [call] = host.calls
    assert call.ok and call.ended is not None  # it ran as the scanner found it
    assert (await host(request("weather", city="Oslo", units="metric")))["value"] == "Oslo/metric"
    assert call.claimed and len(host.calls) == 1
    await host.aclose()


# --------------------------------------------------------------------------- session values


class PeekSession:
    """Just enough of a session for the speculator: ``peek`` from a dict, counted."""

    def __init__(self, values: dict[str, Any] | None) -> None:
        self.values = values
        self.asked: list[list[str]] = []

    async def peek(self, names: Sequence[str]) -> dict[str, Any] | None:
        self.asked.append(list(names))
        if self.values is None:
            return None
        return {n: self.values[n] for n in names if n in self.values}


async def test_the_speculator_reads_session_names_once_idle_and_starts_one_call_each() -> None:
    host = ToolHost(TOOLS)
    speculator = Speculator(host, True)
    code = "for c in cities:\n    print(weather(c, units=u))\n"
    assert speculator.feed(code)  # waiting for session values
    assert host.calls == []
    session = PeekSession({"cities": ["A", "B"], "u": "si"})
    assert await speculator.peek(session)  # type: ignore[arg-type]
    assert session.asked == [["cities", "u"]]
    assert not await speculator.peek(session)  # type: ignore[arg-type]
    assert [(c.arguments, c.origin) for c in host.calls] == [
        ({"city": "A", "units": "si"}, "session"),
        ({"city": "B", "units": "si"}, "session"),
    ]
    await host.end_speculation()


async def test_unbound_names_are_asked_again_after_an_execution_and_dropped_once_run() -> None:
    host = ToolHost(TOOLS)
    speculator = Speculator(host, True)
    speculator.feed("weather(later)\n")
    session = PeekSession({})
    assert await speculator.peek(session)  # type: ignore[arg-type]
    assert not await speculator.peek(session)  # type: ignore[arg-type]
    speculator.executing(0)  # something before the call ran: ask again
    session.values = {"later": "Oslo"}
    assert await speculator.peek(session)  # type: ignore[arg-type]
    assert [c.arguments["city"] for c in host.calls] == ["Oslo"]
    speculator.feed("weather(other)\n")
    speculator.executing(len("weather(later)\nweather(other)\n"))  # that statement runs now
    assert speculator.names_to_peek() == []
    await host.end_speculation()


async def test_a_session_that_cannot_peek_leaves_literal_speculation_only() -> None:
    host = ToolHost(TOOLS)
    speculator = Speculator(host, True)
    speculator.feed("weather(name)\n")
    assert await speculator.peek(PeekSession(None))  # type: ignore[arg-type]
    assert speculator.names_to_peek() == []
    speculator.feed("weather(other)\nweather('lit')\n")
    assert speculator.names_to_peek() == []
    assert [c.arguments["city"] for c in host.calls] == ["lit"]
    await host.end_speculation()


# --------------------------------------------------------------------------- whole runs (local)

LATENCY = 0.3


async def a_weather(city: str, units: str = "metric") -> dict[str, Any]:
    """Weather for a city (read-only, slow)."""
    await asyncio.sleep(LATENCY)
    return {"city": city, "temp": len(city) * 3, "units": units}


def a_lookup(key: str) -> str:
    """A read-only lookup that fails for unknown keys."""
    if key == "missing":
        raise KeyError(key)
    return key.upper()


def a_notify(message: str) -> str:
    """A side effect: never speculated."""
    return f"sent {message}"


RUN_TOOLS: list[Tool] = [
    tool(a_weather, name="weather", read_only=True),
    tool(a_lookup, name="lookup", read_only=True),
    tool(a_notify, name="notify"),
]


async def run(code: str, session: Session, tps: float = 60.0, **options: Any) -> RunResult:
    return await arun_stream(replay(code, tps), session, tools=RUN_TOOLS, **options)


def chunk_of(result: RunResult, text: str) -> float:
    """When the chunk whose code contains ``text`` was detected."""
    return next(r.t_detected for r in result.chunks if text in r.chunk.code)


def calls(result: RunResult, name: str) -> list[ToolCall]:
    return [c for c in result.tool_calls if c.tool == name]


async def test_a_loop_body_call_starts_before_its_statement_is_complete(
    local_session: Session,
) -> None:
    code = (
        "temps = {}\n"
        "for city in ['Oslo', 'Rome', 'Lima']:\n"
        "    w = await weather(city)\n"
        "    temps[city] = w['temp']\n"
        "    print(city, temps[city])\n"
        "print(sorted(temps.items()))\n"
        "print(notify('done ' + str(len(temps))))\n"
    )
    result = await run(code, local_session, speculate=True)
    assert result.status == "ok", result.error
    weather_calls = calls(result, "weather")
    assert [c.arguments["city"] for c in weather_calls] == ["Oslo", "Rome", "Lima"]  # no dupes
    loop_detected = chunk_of(result, "for city in")
    for call in weather_calls:
        assert call.speculative and call.claimed and call.origin == "literal"
        assert call.started < loop_detected  # started while the loop was still being written
        assert call.claimed_at is not None and call.claimed_at >= loop_detected
    assert [c.speculative for c in calls(result, "notify")] == [False]
    assert summarize(result.tool_calls).wasted == 0

    await local_session.restart()
    plain = await run(code, local_session)
    assert plain.stdout == result.stdout
    assert [c.speculative for c in plain.tool_calls] == [False] * 4


async def test_session_values_expand_a_loop_over_an_earlier_statement_s_list(
    local_session: Session,
) -> None:
    code = (
        "cities = ['Bergen', 'Tromso']\n"
        "units = 'imperial'\n"
        "for c in cities:\n"
        "    print((await weather(c, units=units))['temp'])\n"
        "print('end')\n"
    )
    result = await run(code, local_session, speculate=True)
    assert result.status == "ok", result.error
    assert result.stdout == "18\n18\nend\n"
    made = calls(result, "weather")
    assert [(c.arguments, c.origin, c.claimed) for c in made] == [
        ({"city": "Bergen", "units": "imperial"}, "session", True),
        ({"city": "Tromso", "units": "imperial"}, "session", True),
    ]
    assert all(c.started < chunk_of(result, "for c in") for c in made)
    summary = summarize(result.tool_calls)
    assert (summary.literal, summary.session, summary.wasted) == (0, 2, 0)
    assert result.speculation == summary  # the run reports the same counts


async def test_wasted_calls_errors_and_changed_values_leave_the_output_unchanged(
    local_session: Session,
) -> None:
    code = (
        "x = 'Old'\n"
        "def change():\n"
        "    global x\n"
        "    x = 'New'\n"
        "if True:\n"
        "    change()\n"
        "    print((await weather(x))['city'])\n"
        "if len(x) > 99:\n"
        "    print(await weather('Never'))\n"
        "try:\n"
        "    lookup('missing')\n"
        "except ToolError as e:\n"
        "    print('error:', e.type, e.message)\n"
        "print(lookup('ok'), notify('x'))\n"
    )
    spec = await run(code, local_session, speculate=["weather", "lookup"])
    await local_session.restart()
    plain = await run(code, local_session)
    assert spec.status == plain.status == "ok", spec.error
    assert spec.stdout == plain.stdout == "New\nerror: KeyError 'missing'\nOK sent x\n"
    wasted = sorted(c.arguments["city"] for c in spec.tool_calls if c.wasted)
    assert wasted == ["Never", "Old"]  # a branch not taken; a value changed before the call
    assert [c.arguments["city"] for c in calls(spec, "weather") if c.claimed] == ["New"]
    failed = next(c for c in calls(spec, "lookup") if c.arguments["key"] == "missing")
    assert failed.speculative and failed.claimed and failed.error
    assert [c.speculative for c in calls(spec, "notify")] == [False]
    ledger = [(c.tool, c.arguments) for c in spec.ledger]
    assert ledger == [(c.tool, c.arguments) for c in plain.ledger] == [("notify", {"message": "x"})]


async def test_speculate_needs_tools_and_read_only_names(local_session: Session) -> None:
    with pytest.raises(ValueError, match="needs tools"):
        await arun_stream(["print(1)\n"], local_session, speculate=True)
    with pytest.raises(ValueError, match="read_only"):
        await run("print(1)\n", local_session, speculate=["notify"])
