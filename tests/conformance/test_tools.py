"""Host tools called from the code, checked on every backend unchanged.

Each test defines the tools' stubs in a started session of one backend
variant (``eager_rt.tools.stub_source``, as the runtime does) and executes
code with a :class:`~eager_rt.tools.ToolHost` answering the calls. What the
code sees (values, errors, concurrency, approval mid-statement) must be the
same on every backend; the host's records (``ToolHost.calls``) say what ran
on the host and when, so nothing here asserts on durations.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from eager_rt.executor import ExecResult, Output, Session, Status
from eager_rt.tools import Tool, ToolHost, as_tools, stub_source, tool
from tests.conformance.test_session import run_until_running

pytestmark = pytest.mark.anyio


async def define(
    session: Session,
    *tools: Tool | Callable[..., Any],
    approve: Any = None,
) -> ToolHost:
    """The tools' stubs defined in ``session``; the host that answers their calls."""
    declared = as_tools(tools)
    result = await session.execute(stub_source(declared), timeout=60)
    assert result.status is Status.OK, result
    return ToolHost(declared, approve=approve)


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


async def aadd(a: int, b: int) -> int:
    """Add two numbers, asynchronously."""
    await asyncio.sleep(0)
    return a + b


async def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll until ``condition()`` holds (no timed assertion: the timeout only ends a hang)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- calls and values


async def test_sync_and_async_tools_return_their_values(session: Session) -> None:
    host = await define(session, add, aadd)
    code = (
        "import inspect\n"
        "print(add(2, 3), add(a=1, b=1))\n"
        "print(await aadd(4, 5))\n"
        "print(inspect.iscoroutinefunction(aadd), inspect.iscoroutinefunction(add))\n"
        "print(add.__doc__)\n"
    )
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "5 2\n9\nTrue False\nAdd two numbers.\n"
    assert [(c.tool, c.arguments, c.ok) for c in host.calls] == [
        ("add", {"a": 2, "b": 3}, True),
        ("add", {"a": 1, "b": 1}, True),
        ("aadd", {"a": 4, "b": 5}, True),
    ]


async def test_a_tool_runs_after_the_output_written_before_its_call(session: Session) -> None:
    """What the code printed before a call (unflushed, on both streams) is delivered before
    the tool runs: a tool, an approver or a live view sees the call in its context."""
    seen: list[Output] = []
    stderr_seen: list[str] = []

    def printed() -> dict[str, str]:
        """What the host has received of the code's output so far."""
        got = {k: "".join(o.text for o in seen if o.kind == k) for k in ("stdout", "stderr")}
        stderr_seen.append(got["stderr"])
        return got

    host = await define(session, printed)
    code = (
        "import sys\n"
        "for i in range(3):\n"
        "    print('out', i)\n"
        "    print('err', i, file=sys.stderr)\n"
        "    print('seen', printed()['stdout'].count('out '))\n"
    )
    result = await session.execute(code, timeout=60, tools=host, on_output=seen.append)
    assert result.status is Status.OK, result
    assert result.stdout == "out 0\nseen 1\nout 1\nseen 2\nout 2\nseen 3\n"
    assert stderr_seen == ["err 0\n", "err 0\nerr 1\n", "err 0\nerr 1\nerr 2\n"]


async def test_gather_runs_async_tools_concurrently(session: Session) -> None:
    async def slow(n: int) -> int:
        await asyncio.sleep(0.3)
        return n * 10

    host = await define(session, slow)
    code = "import asyncio\nprint(await asyncio.gather(slow(1), slow(2), slow(3)))\n"
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "[10, 20, 30]\n"
    assert len(host.calls) == 3
    # every call started before any of them ended: the three were in flight together
    latest_start = max(c.started for c in host.calls)
    earliest_end = min(c.ended for c in host.calls if c.ended is not None)
    assert latest_start < earliest_end, [(c.started, c.ended) for c in host.calls]


async def test_bytes_cross_both_ways(session: Session) -> None:
    seen: list[Any] = []

    def flip(data: bytes) -> bytes:
        seen.append(data)
        return bytes(reversed(data))

    host = await define(session, flip)
    code = (
        "r = flip(b'\\x00\\x01\\xfe\\xff' * 3)\n"
        "print(type(r).__name__, r == b'\\xff\\xfe\\x01\\x00' * 3)\n"
        "print(flip(bytearray(b'ab')))\n"
    )
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "bytes True\nb'ba'\n"
    assert seen == [b"\x00\x01\xfe\xff" * 3, b"ab"]


async def test_plain_values_keep_their_shape(session: Session) -> None:
    def echo(value: Any) -> Any:
        return value

    host = await define(session, echo)
    code = (
        "v = {'$ref': 1, 'nested': [1, 2.5, None, True, 'é', {'$bytes': 'x'}], 'b': b'\\x00'}\n"
        "r = echo(v)\n"
        "print(r == v, echo((1, 2)), echo('$bytes'))\n"
    )
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    # keys that look like the codec's own markers survive; tuples come back as lists
    assert result.stdout == "True [1, 2] $bytes\n"


async def test_a_large_result(session: Session) -> None:
    def big(n: int) -> str:
        return "x" * n

    def big_bytes(n: int) -> bytes:
        return bytes(range(256)) * (n // 256)

    host = await define(session, big, big_bytes)
    code = (
        "s = big(5_000_000)\n"
        "b = big_bytes(5_000_192)\n"
        "print(len(s), s == 'x' * 5_000_000, len(b), b[:3], b[-1])\n"
    )
    result = await session.execute(code, timeout=120, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "5000000 True 5000192 b'\\x00\\x01\\x02' 255\n"


async def test_every_kind_of_parameter(session: Session) -> None:
    def mix(a: int, b: int = 2, *rest: int, c: int, d: int = 4, **extra: int) -> list[Any]:
        return [a, b, list(rest), c, d, extra]

    def only(x: int, /, y: int = 0) -> list[int]:
        return [x, y]

    host = await define(session, mix, only)
    code = (
        "print(mix(1, c=3))\n"
        "print(mix(1, 5, 6, 7, c=3, e=9))\n"
        "print(mix(a=1, b=5, c=3, d=8, f=2))\n"
        "print(only(7), only(7, y=1), only(7, 2))\n"
        "import inspect\n"
        "for f in (mix, only):\n"
        "    ps = inspect.signature(f).parameters.values()\n"
        "    print([(p.name, p.kind.name, p.default) for p in ps])\n"
    )
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout.splitlines() == [
        "[1, 2, [], 3, 4, {}]",
        "[1, 5, [6, 7], 3, 4, {'e': 9}]",
        "[1, 5, [], 3, 8, {'f': 2}]",
        "[7, 0] [7, 1] [7, 2]",
        "[('a', 'POSITIONAL_OR_KEYWORD', <class 'inspect._empty'>), "
        "('b', 'POSITIONAL_OR_KEYWORD', 2), ('rest', 'VAR_POSITIONAL', <class 'inspect._empty'>), "
        "('c', 'KEYWORD_ONLY', <class 'inspect._empty'>), ('d', 'KEYWORD_ONLY', 4), "
        "('extra', 'VAR_KEYWORD', <class 'inspect._empty'>)]",
        "[('x', 'POSITIONAL_ONLY', <class 'inspect._empty'>), ('y', 'POSITIONAL_OR_KEYWORD', 0)]",
    ]


async def test_a_default_that_is_not_a_literal_is_the_host_functions_own(
    session: Session,
) -> None:
    marker = object()

    def pick(value: object = marker) -> str:
        return "default" if value is marker else f"given {value!r}"

    host = await define(session, pick)
    result = await session.execute("print(pick(), pick(3))\n", timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "default given 3\n"
    assert [c.arguments for c in host.calls] == [{}, {"value": 3}]


# --------------------------------------------------------------------------- errors


async def test_a_tool_error_carries_name_type_and_message(session: Session) -> None:
    def lookup(key: str) -> str:
        raise KeyError(f"no record {key}")

    host = await define(session, lookup)
    code = (
        "try:\n"
        "    lookup('k1')\n"
        "except ToolError as e:\n"
        "    print(e.tool, e.type, e.message, isinstance(e, Exception))\n"
        "lookup('k2')\n"
        "print('never')\n"
    )
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.ERROR, result
    assert result.stdout == "lookup KeyError 'no record k1' True\n"
    assert result.error is not None
    assert result.error.ename == "ToolError"
    assert result.error.evalue == "tool lookup() failed: KeyError: 'no record k2'"
    assert result.error.lineno == 5
    assert [(c.ok, c.error) for c in host.calls] == [
        (False, "KeyError: 'no record k1'"),
        (False, "KeyError: 'no record k2'"),
    ]


async def test_arguments_are_validated_before_the_function_runs(session: Session) -> None:
    ran: list[int] = []

    def square(n: int) -> int:
        ran.append(n)
        return n * n

    host = await define(session, square)
    code = (
        "try:\n"
        "    square('not a number')\n"
        "except ToolError as e:\n"
        "    print(e.type)\n"
        "try:\n"
        "    square(1, 2)\n"
        "except TypeError as e:\n"
        "    print('TypeError')\n"
        "print(square('4'))\n"  # pydantic's lax mode: a numeric string is an int
    )
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "ValidationError\nTypeError\n16\n"
    assert ran == [4]  # the bad calls never reached the function
    # a wrong arity fails in the stub itself: the host was never asked
    assert [c.arguments for c in host.calls] == [{"n": "not a number"}, {"n": "4"}]


async def test_a_value_that_cannot_cross_fails_in_the_sandbox(session: Session) -> None:
    def echo(value: Any) -> Any:
        return value

    host = await define(session, echo)
    code = "try:\n    echo(object())\nexcept TypeError as e:\n    print('TypeError:', e)\n"
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout.startswith("TypeError: the arguments of echo()['value'] is a object")
    assert host.calls == []


async def test_a_value_the_tool_returns_that_cannot_cross(session: Session) -> None:
    def leak() -> object:
        return threading.Lock()

    host = await define(session, leak)
    code = "try:\n    leak()\nexcept ToolError as e:\n    print(e.type, '|', e.message)\n"
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout.startswith("TypeError | the value leak() returned is a lock")


async def test_nothing_from_the_sandbox_is_evaluated_on_the_host(
    session: Session, tmp_path: Any
) -> None:
    received: list[Any] = []
    target = tmp_path / "pwned"

    def store(text: str) -> str:
        received.append(text)
        return text

    host = await define(session, store)
    payload = f"__import__('pathlib').Path({str(target)!r}).touch()"
    code = f"r = store({payload!r})\nprint(r == {payload!r})\n"
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "True\n"
    assert received == [payload]  # a string, passed as a string
    assert not target.exists()


async def test_without_a_tool_host_a_call_raises_in_the_code(session: Session) -> None:
    await define(session, add)
    code = "try:\n    add(1, 2)\nexcept ToolError as e:\n    print(e.type)\n"
    result = await session.execute(code, timeout=60)
    assert result.status is Status.OK, result
    assert result.stdout == "RuntimeError\n"


# ------------------------------------------------------------- threads, interrupts, restarts


async def test_a_tool_called_from_a_thread(session: Session) -> None:
    host = await define(session, add)
    code = (
        "import threading\n"
        "out = []\n"
        "ts = [threading.Thread(target=lambda i=i: out.append(add(i, 100))) for i in range(3)]\n"
        "for t in ts:\n"
        "    t.start()\n"
        "for t in ts:\n"
        "    t.join()\n"
        "print(sorted(out))\n"
    )
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "[100, 101, 102]\n"
    assert sorted(c.arguments["a"] for c in host.calls) == [0, 1, 2]


def stalling_tool(kind: str, release: threading.Event, seconds: int) -> tuple[Tool, str]:
    """A tool ``stall`` that answers after ``seconds`` (the sync one as soon as
    ``release`` is set: no tool thread outlives the test), and the code's call of it."""

    def stall_sync(seconds: float) -> str:
        release.wait(seconds)
        return "late"

    async def stall_async(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "late"

    if kind == "sync":
        return tool(stall_sync, name="stall"), f"stall({seconds})"
    return tool(stall_async, name="stall"), f"await stall({seconds})"


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_interrupt_ends_a_call_blocked_in_a_tool(session: Session, kind: str) -> None:
    release = threading.Event()
    stall, call = stalling_tool(kind, release, 120)
    host = await define(session, stall, add)
    await session.execute("kept = 'yes'", timeout=60)
    code = f"print('calling', flush=True)\n{call}\nprint('never')\n"
    try:
        task, _ = await run_until_running(session, code, "calling", timeout=180, tools=host)
        await wait_for(lambda: len(host.calls) == 1)
        await session.interrupt()
        result = await asyncio.wait_for(task, 60)
    finally:
        release.set()
    assert result.status is Status.INTERRUPTED, result
    assert not result.state_lost
    assert "never" not in result.stdout
    after = await session.execute("print(kept, add(1, 1))", timeout=60, tools=host)
    assert after.status is Status.OK, after
    assert after.stdout == "yes 2\n"


async def interrupt_from_a_thread_while_stalled(
    session: Session, kind: str
) -> tuple[ExecResult, ToolHost]:
    """Print ``calling``, wait on a stalled tool, and be interrupted by a watchdog thread.

    (Bounded: a wait that never wakes fails after two minutes, not ten.)
    """
    release = threading.Event()
    stall, call = stalling_tool(kind, release, 600)
    host = await define(session, stall)
    code = (
        "import _thread, threading, time\n"
        "def watchdog():\n"
        "    time.sleep(0.5)\n"
        "    _thread.interrupt_main()\n"
        "threading.Thread(target=watchdog, daemon=True).start()\n"
        f"print('calling', flush=True)\n{call}\nprint('never')\n"
    )
    try:
        result = await asyncio.wait_for(session.execute(code, timeout=900, tools=host), 120)
    finally:
        release.set()
        await host.aclose()
    return result, host


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_signal_the_waiting_thread_did_not_receive_still_ends_the_wait(
    session: Session, kind: str
) -> None:
    """``_thread.interrupt_main()`` from a watchdog thread, while the code waits for a tool.

    The signal is handled by the main thread only when it next runs Python:
    a wait that does not wake for it would sit until the tool answers. This
    is also what happens when an interrupt lands just before the wait blocks.
    """
    result, host = await interrupt_from_a_thread_while_stalled(session, kind)
    # not the host's interrupt: the code's own error, as ``raise KeyboardInterrupt`` is
    # (an awaiting cell is stopped by cancelling it on a Jupyter kernel)
    assert result.status is Status.ERROR, result
    assert result.error is not None
    assert result.error.ename in ("KeyboardInterrupt", "CancelledError"), result.error
    assert result.stdout == "calling\n"
    assert [c.tool for c in host.calls] == ["stall"]
    after = await session.execute("print('still here')", timeout=60)
    assert after.status is Status.OK and after.stdout == "still here\n", after


async def test_tools_work_after_a_restart(session: Session) -> None:
    host = await define(session, add)
    await session.restart(timeout=120)
    gone = await session.execute("add(1, 2)", timeout=60, tools=host)
    assert gone.status is Status.ERROR
    assert gone.error is not None and gone.error.ename == "NameError"
    host = await define(session, add)
    result = await session.execute("print(add(20, 22))", timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "42\n"


# --------------------------------------------------------------------------- approval mid-statement


@pytest.mark.parametrize("verdict", [True, False])
async def test_approval_pauses_the_code_mid_statement(session: Session, verdict: bool) -> None:
    sent: list[int] = []
    asked: list[tuple[str, dict[str, Any]]] = []
    decide = asyncio.Event()

    def transfer(amount: int) -> str:
        sent.append(amount)
        return f"sent {amount}"

    async def approve(t: Tool, arguments: dict[str, Any]) -> bool:
        asked.append((t.name, arguments))
        await decide.wait()
        return verdict

    host = await define(session, tool(transfer, requires_approval=True), approve=approve)
    code = (
        "print('before', flush=True)\n"
        "try:\n"
        "    print('result:', transfer(5))\n"
        "except ToolError as e:\n"
        "    print('denied:', e.type, e.message)\n"
        "print('after')\n"
    )
    seen: list[Output] = []
    task = asyncio.create_task(
        session.execute(code, timeout=120, on_output=seen.append, tools=host)
    )
    await wait_for(lambda: bool(asked) or task.done())
    # the host is deciding: the code waits inside the statement, its earlier output is here
    assert asked == [("transfer", {"amount": 5})]
    assert not task.done()
    assert "".join(o.text for o in seen if o.kind == "stdout") == "before\n"
    assert sent == []
    decide.set()
    result = await asyncio.wait_for(task, 60)
    assert result.status is Status.OK, result
    if verdict:
        assert result.stdout == "before\nresult: sent 5\nafter\n"
        assert sent == [5]
    else:
        assert result.stdout == (
            "before\ndenied: PermissionError the call of transfer() was not approved\nafter\n"
        )
        assert sent == []
    assert [c.approved for c in host.calls] == [verdict]


async def test_a_sync_approval_callback(session: Session) -> None:
    def wipe(path: str) -> str:
        return f"wiped {path}"

    def approve(t: Tool, arguments: dict[str, Any]) -> bool:
        return str(arguments["path"]).startswith("/tmp/")

    host = await define(session, tool(wipe, requires_approval=True), approve=approve)
    code = (
        "print(wipe('/tmp/x'))\ntry:\n    wipe('/etc')\nexcept ToolError as e:\n    print(e.type)\n"
    )
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "wiped /tmp/x\nPermissionError\n"
    assert [c.approved for c in host.calls] == [True, False]


async def test_calls_from_many_threads_are_in_flight_together(session: Session) -> None:
    """Four threads of the code each wait for a call; the host runs the four at once."""

    def slow(n: int) -> int:
        time.sleep(0.5)
        return n

    host = await define(session, slow)
    code = (
        "import threading\n"
        "out = []\n"
        "ts = [threading.Thread(target=lambda i=i: out.append(slow(i))) for i in range(4)]\n"
        "for t in ts: t.start()\n"
        "for t in ts: t.join()\n"
        "print(sorted(out))\n"
    )
    result = await session.execute(code, timeout=120, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "[0, 1, 2, 3]\n"
    assert max(c.started for c in host.calls) < min(c.ended or 0.0 for c in host.calls)
