"""Output floods: bounded frames, a per-execution cap with a notice, coalescing, nothing lost.

Each test reproduces a finding of issue 17 on a real worker (the framed
worker under :class:`WorkerSession`, as the local, Docker and Podman backends
run it). The cap is an option, so most floods are scaled down with a small
``max_output``: the code path is the one a 2 GB flood takes under the default
cap. One test prints a real line of over 1 GiB of frame (180 M ``€``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from eager_rt.backends import _protocol as protocol
from eager_rt.backends._framed import WorkerSession
from eager_rt.backends._limits import (
    DEFAULT_EXEC_TIMEOUT,
    DEFAULT_MAX_OUTPUT,
    Limits,
    OutputBudget,
    dropped_notice,
)
from eager_rt.backends._process import SubprocessWorker

from eager_rt.executor import Output, Status

pytestmark = pytest.mark.anyio

T = 120.0  # a backstop against a hang, never reached by a passing test

Make = Callable[..., Awaitable[WorkerSession]]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """Started worker sessions with the given options; all closed after the test."""
    made: list[WorkerSession] = []

    async def start(**options: Any) -> WorkerSession:
        session = WorkerSession(SubprocessWorker(), python=sys.executable, **options)
        made.append(session)
        await session.start(timeout=60)
        return session

    try:
        yield start
    finally:
        for session in made:
            await session.close()


def frames_of(outputs: list[Output]) -> list[Output]:
    return [o for o in outputs if o.kind in ("stdout", "stderr")]


# --------------------------------------------------------------------------- the cap


async def test_a_print_flood_keeps_max_output_and_says_how_much_was_dropped(make: Make) -> None:
    session = await make(max_output=100_000)
    await session.execute("kept = 'state'", timeout=T)
    events: list[Output] = []
    line = "x" * 999 + "\n"  # 1000 bytes
    r = await session.execute(
        "for i in range(5000):\n    print('x' * 999)", timeout=T, on_output=events.append
    )
    assert r.status is Status.OK
    notice = dropped_notice(5000 * 1000 - 100_000)
    assert r.stdout == line * 100 + notice
    assert "[... 4900000 bytes of output dropped]" in notice
    # the notice is an event too, the last one; the events are the result's outputs
    assert events == r.outputs and events[-1] == Output("stdout", text=notice)
    # nothing was lost but output: the session and its state go on
    after = await session.execute("print(kept)", timeout=T)
    assert after.stdout == "state\n"


async def test_the_cap_is_per_execution(make: Make) -> None:
    session = await make(max_output=10)
    first = await session.execute("print('a' * 30)", timeout=T)
    assert first.stdout == "a" * 10 + dropped_notice(21)
    second = await session.execute("print('b' * 5)", timeout=T)
    assert second.stdout == "bbbbb\n"


async def test_the_cap_counts_utf8_bytes_and_cuts_between_characters(make: Make) -> None:
    session = await make(max_output=10)
    r = await session.execute("print('€' * 5)", timeout=T)  # 15 bytes + newline
    assert r.stdout == "€€€" + dropped_notice(16 - 9)


async def test_stderr_and_fd_output_count_too(make: Make) -> None:
    session = await make(max_output=1000)
    r = await session.execute(
        "import os, sys\n"
        "os.write(1, b'f' * 600)\n"
        "sys.stderr.write('e' * 600)\n",
        timeout=T,
    )
    assert r.status is Status.OK
    kept = sum(len(o.text) for o in frames_of(r.outputs) if "dropped" not in o.text)
    assert kept == 1000
    assert r.stderr.endswith(dropped_notice(200))  # dropping began on stderr


async def test_displays_count_against_the_cap(make: Make) -> None:
    """A bundle that does not fit is dropped whole; from there on, everything is."""
    session = await make(max_output=1000)
    r = await session.execute(
        "class Big:\n"
        "    def _repr_html_(self):\n"
        "        return 'h' * 5000\n"
        "    def __repr__(self):\n"
        "        return 'Big'\n"
        "print('before')\n"
        "display(Big())\n"
        "print('after')\n",
        timeout=T,
    )
    assert r.status is Status.OK
    assert r.displays == []
    assert r.stdout == "before\n" + dropped_notice(5000 + len("Big") + len("after\n"))


async def test_no_cap_when_max_output_is_none(make: Make) -> None:
    session = await make(max_output=None)
    r = await session.execute("print('y' * 3_000_000)", timeout=T)
    assert r.stdout == "y" * 3_000_000 + "\n"


async def test_the_default_cap_applies_without_any_option(make: Make) -> None:
    session = await make()
    assert session.limits.max_output == DEFAULT_MAX_OUTPUT
    r = await session.execute(f"print('z' * {DEFAULT_MAX_OUTPUT + 5})", timeout=T)
    assert r.stdout == "z" * DEFAULT_MAX_OUTPUT + dropped_notice(6)


# --------------------------------------------------------------------------- frames


async def test_a_line_over_a_gib_of_frame_keeps_the_session(make: Make) -> None:
    """180 M '€' escape to 1.08 GB of JSON: once one frame and a dead session, now capped."""
    session = await make()
    await session.execute("kept = 1", timeout=T)
    r = await session.execute("print('€' * 180_000_000)", timeout=T)
    assert r.status is Status.OK, r.detail
    notice = r.outputs[-1].text
    kept = r.stdout[: -len(notice)]
    assert set(kept) == {"€"} and len(kept.encode()) <= DEFAULT_MAX_OUTPUT
    assert notice == dropped_notice(180_000_000 * 3 + 1 - len(kept.encode()))
    assert (await session.execute("print(kept)", timeout=T)).stdout == "1\n"


async def test_large_output_is_split_into_bounded_frames(make: Make) -> None:
    """Uncapped, every frame still carries at most FRAME_TEXT characters (one event each)."""
    session = await make(max_output=None)
    events: list[Output] = []
    text = "😀" * 200_000 + "€" * 100_000  # astral characters escape to 12 bytes each
    r = await session.execute(
        "print('😀' * 200_000 + '€' * 100_000)", timeout=T, on_output=events.append
    )
    assert r.stdout == text + "\n"
    assert len(events) >= len(text) // protocol.FRAME_TEXT
    for event in events:
        assert len(event.text) <= protocol.FRAME_TEXT
        assert len(protocol.encode({"type": "stream", "id": 1, "text": event.text})) < (
            protocol.MAX_FRAME // 1000
        )


async def test_a_huge_error_message_is_cut_not_fatal(make: Make) -> None:
    session = await make()
    r = await session.execute("raise ValueError('v' * 2_000_000)", timeout=T)
    assert r.status is Status.ERROR and r.error is not None
    assert r.error.evalue.startswith("v" * 1000)
    assert r.error.evalue.endswith("characters dropped]")
    assert len(r.error.evalue) < 300_000
    assert (await session.execute("print('alive')", timeout=T)).stdout == "alive\n"


def test_the_encoder_refuses_a_frame_over_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "MAX_FRAME", 100)
    with pytest.raises(protocol.ProtocolError, match="exceeds the limit"):
        protocol.encode({"text": "t" * 200})


# --------------------------------------------------------------------------- coalescing


async def test_print_with_flush_in_a_loop_is_coalesced(make: Make) -> None:
    """300k ``print(flush=True)`` once meant 300k frames and events; now a few per window."""
    session = await make()
    events: list[Output] = []
    n = 50_000
    r = await session.execute(
        f"for i in range({n}):\n    print(i, flush=True)", timeout=T, on_output=events.append
    )
    assert r.stdout == "".join(f"{i}\n" for i in range(n))
    # at most 8 frames per 5 ms window: far fewer events than prints unless the
    # loop took seconds
    assert len(events) < n // 10


async def test_a_flush_before_os_exit_loses_nothing(make: Make) -> None:
    """A coalesced flush is still a promise: ``os._exit`` sends what waits first."""
    session = await make()
    r = await session.execute(
        "import os\nfor i in range(500):\n    print(i, flush=True)\nos._exit(0)", timeout=T
    )
    assert r.status is Status.DIED
    assert r.stdout == "".join(f"{i}\n" for i in range(500))


async def test_a_sparse_flush_is_sent_at_once(make: Make) -> None:
    session = await make()
    seen = asyncio.Event()

    def on_output(output: Output) -> None:
        if "first" in output.text:
            seen.set()

    task = asyncio.ensure_future(
        session.execute(
            "import time\nprint('first', end='', flush=True)\ntime.sleep(60)",
            timeout=T,
            on_output=on_output,
        )
    )
    await asyncio.wait_for(seen.wait(), 30)  # long before the code ends
    assert not task.done()
    await session.interrupt()
    assert (await task).status is Status.INTERRUPTED


# --------------------------------------------------------------------------- background output

THREAD = (
    "import threading, time\n"
    "printed = 0\n"
    "def chatter():\n"
    "    global printed\n"
    "    for i in range(300):\n"
    "        print(f'line {i}')\n"
    "        printed = i + 1\n"
    "        time.sleep(0.001)\n"
    "threading.Thread(target=chatter).start()\n"
)
LINES = "".join(f"line {i}\n" for i in range(300))


async def wait_for_thread(session: WorkerSession) -> None:
    """Until the thread printed its last line (peek runs no code)."""
    for _ in range(3000):
        values = await session.peek(["printed"])
        if values and values.get("printed") == 300:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the thread never finished")


async def test_output_of_a_thread_while_idle_goes_to_the_next_execution(make: Make) -> None:
    session = await make()
    first = await session.execute(THREAD, timeout=T)
    await wait_for_thread(session)
    events: list[Output] = []
    second = await session.execute("print('next')", timeout=T, on_output=events.append)
    # every line is somewhere, once, in order; what came while idle opens the next result
    assert first.stdout + second.stdout == LINES + "next\n"
    assert second.stdout.endswith("line 299\nnext\n")
    assert events == second.outputs


async def test_background_output_goes_to_the_session_callback_when_set(make: Make) -> None:
    session = await make()
    background: list[Output] = []
    session.on_background_output = background.append
    first = await session.execute(THREAD, timeout=T)
    await wait_for_thread(session)
    second = await session.execute("print('next')", timeout=T)
    assert first.stdout + "".join(o.text for o in background) == LINES
    assert second.stdout == "next\n"


async def test_background_output_is_capped_with_a_notice(make: Make) -> None:
    session = await make(max_output=100)
    await session.execute(
        "import threading, time\n"
        "done = False\n"
        "def later():\n"
        "    global done\n"
        "    time.sleep(0.2)\n"
        "    print('b' * 999)\n"
        "    done = True\n"
        "threading.Thread(target=later).start()\n",
        timeout=T,
    )
    for _ in range(3000):
        if (await session.peek(["done"]) or {}).get("done"):
            break
        await asyncio.sleep(0.01)
    r = await session.execute("print('mine')", timeout=T)
    assert r.stdout == "b" * 100 + dropped_notice(900) + "mine\n"


# --------------------------------------------------------------------------- limits


def test_limits_defaults_and_validation() -> None:
    limits = Limits()
    assert (limits.exec_timeout, limits.max_output) == (DEFAULT_EXEC_TIMEOUT, DEFAULT_MAX_OUTPUT)
    assert limits.timeout(None) == DEFAULT_EXEC_TIMEOUT and limits.timeout(3.0) == 3.0
    assert Limits(exec_timeout=None).timeout(None) is None
    for bad in ({"exec_timeout": 0}, {"max_output": -1}, {"max_output": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Limits(**bad)  # type: ignore[arg-type]


def test_the_host_budget_cuts_and_counts_whatever_the_worker_sends() -> None:
    """The backstop: a worker that ignored the cap still cannot grow the host."""
    budget = OutputBudget(10)
    assert budget.admit(Output("stdout", text="12345")) == Output("stdout", text="12345")
    assert budget.admit(Output("stderr", text="abcdefgh")) == Output("stderr", text="abcde")
    assert budget.admit(Output("display", data={"text/plain": "x"})) is None
    assert budget.admit(Output("stdout", text="more")) is None
    budget.add_dropped("stdout", 100)  # what the worker said it held back
    assert budget.notice() == Output("stderr", text=dropped_notice(3 + 1 + 4 + 100))
    assert OutputBudget(None).admit(Output("stdout", text="x" * 99)) is not None
    assert OutputBudget(5).notice() is None


async def test_the_default_wall_time_bounds_an_execution_given_no_timeout(make: Make) -> None:
    session = await make(exec_timeout=0.5)
    r = await session.execute("import time\nx = 1\ntime.sleep(60)")
    assert r.status is Status.TIMEOUT and not r.state_lost
    assert "timeout of 0.5 s" in r.detail
    assert (await session.execute("print(x)", timeout=T)).stdout == "1\n"


async def test_no_wall_time_when_exec_timeout_is_none(make: Make) -> None:
    session = await make(exec_timeout=None)
    assert session.limits.timeout(None) is None
    r = await session.execute("import time\ntime.sleep(0.2)\nprint('slept')")
    assert r.stdout == "slept\n"
