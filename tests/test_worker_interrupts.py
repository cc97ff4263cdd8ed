"""An interrupt of the worker backends is a frame, then a SIGINT: either one ends a tool wait.

A tool wait reads the channel, so the ``interrupt`` frame alone ends it, even
when the signal comes late or never (a lost signal once left a wait on the
sandboxed worker blocked until the tool answered). Whichever of the two the
code meets first raises KeyboardInterrupt; the other must then change nothing,
or code that catches the interrupt to clean up would be interrupted twice.
Run on every worker backend (local, sandboxed local, Docker, Podman), with a
sync and an async tool.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import pytest
from eager_rt.backends._framed import WorkerSession

from eager_rt.executor import ExecResult, Output, Session, Status
from eager_rt.tools import ToolHost
from tests.conformance.test_session import run_until_running
from tests.conformance.test_tools import add, define, stalling_tool, wait_for

pytestmark = [
    pytest.mark.anyio,
    # conftest's backend fixture, narrowed to the backends that speak the worker protocol
    pytest.mark.parametrize("backend", ["local", "local-bwrap", "docker", "podman"], indirect=True),
]

SendInterrupt = Callable[[int], Awaitable[None]]


@pytest.fixture
def worker(session: Session) -> WorkerSession:
    """The conftest's session, of the worker backends only (see ``pytestmark``)."""
    assert isinstance(session, WorkerSession)
    return session


def replace_signal(
    monkeypatch: pytest.MonkeyPatch,
    session: WorkerSession,
    make: Callable[[SendInterrupt], SendInterrupt],
) -> None:
    """Have the session send its interrupt's SIGINT through ``make(the real sender)``."""
    monkeypatch.setattr(session.process, "send_interrupt", make(session.process.send_interrupt))


async def stalled(
    session: WorkerSession,
    kind: str,
    release: threading.Event,
    code: str,
    *tools: Callable[..., object],
    on_output: Callable[[Output], None] | None = None,
) -> tuple[asyncio.Task[ExecResult], ToolHost]:
    """Start ``code`` and return once its ``{call}`` waits for a tool that answers in 2 min."""
    stall, call = stalling_tool(kind, release, 120)
    host = await define(session, stall, add, *tools)
    await session.execute("kept = 'yes'", timeout=60)
    source = "print('calling', flush=True)\n" + code.format(call=call)
    execution = session.execute(source, timeout=180, tools=host, on_output=on_output)
    task = asyncio.create_task(execution)
    await wait_for(lambda: len(host.calls) == 1 or task.done())
    assert not task.done(), task.result()
    return task, host


async def interrupted_with_its_signal_held(
    session: WorkerSession, kind: str, code: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[ExecResult, ToolHost, list[Callable[[], Awaitable[None]]]]:
    """Interrupt ``code`` stalled in a tool call with the SIGINT held back (the frame goes);
    the result, and the held signals, each sent when called."""
    held: list[Callable[[], Awaitable[None]]] = []

    def hold(real: SendInterrupt) -> SendInterrupt:
        async def send(pid: int) -> None:
            held.append(lambda: real(pid))

        return send

    replace_signal(monkeypatch, session, hold)
    release = threading.Event()
    try:
        task, host = await stalled(session, kind, release, code)
        await session.interrupt()
        return await asyncio.wait_for(task, 60), host, held
    finally:
        release.set()


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_interrupt_whose_signal_is_lost_still_ends_the_tool_wait(
    worker: WorkerSession, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = "{call}\nprint('never')\n"
    result, host, held = await interrupted_with_its_signal_held(worker, kind, code, monkeypatch)
    assert len(held) == 1  # the interrupt did try to signal: only the frame got through
    assert result.status is Status.INTERRUPTED, result
    assert "never" not in result.stdout
    after = await worker.execute("print(kept, add(1, 1))", timeout=60, tools=host)
    assert after.status is Status.OK, after
    assert after.stdout == "yes 2\n"


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_late_signal_does_not_interrupt_the_code_that_caught_the_interrupt(
    worker: WorkerSession, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The frame ends the wait; the SIGINT lands while the code cleans up, and is absorbed."""
    sent = asyncio.Event()
    caught = asyncio.Event()

    def late(real: SendInterrupt) -> SendInterrupt:
        async def send(pid: int) -> None:
            async def after_the_catch() -> None:
                await caught.wait()
                await real(pid)
                sent.set()

            asyncio.get_running_loop().create_task(after_the_catch())

        return send

    async def signal_sent() -> str:
        """Answers once the host has sent the interrupt's SIGINT."""
        await sent.wait()
        return "signalled"

    replace_signal(monkeypatch, worker, late)
    release = threading.Event()
    code = (
        "import asyncio, time\n"
        "try:\n"
        "    {call}\n"
        "except (KeyboardInterrupt, asyncio.CancelledError):\n"
        "    print('caught', flush=True)\n"
        "    print(await signal_sent())\n"
        "    time.sleep(0.3)\n"  # a SIGINT not absorbed would end the sleep with an error
        "    print('cleaned')\n"
    )
    try:
        task, host = await stalled(
            worker, kind, release, code, signal_sent, on_output=lambda o: caught_it(o, caught)
        )
        await worker.interrupt()
        result = await asyncio.wait_for(task, 60)
    finally:
        release.set()
    assert sent.is_set()
    assert result.status is caught_status(kind), result
    assert result.stdout == "calling\ncaught\nsignalled\ncleaned\n"
    assert [c.tool for c in host.calls] == ["stall", "signal_sent"]


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_signal_that_comes_during_the_next_execution_is_absorbed(
    worker: WorkerSession, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The frame ended the wait; the SIGINT, relayed late (as Podman's client does), lands
    while the next execution runs: that one is not interrupted, and the one after
    that can still be."""
    result, _, held = await interrupted_with_its_signal_held(worker, kind, "{call}\n", monkeypatch)
    assert result.status is Status.INTERRUPTED, result
    (late_signal,) = held
    monkeypatch.undo()  # interrupts signal again from here on
    nap = "import time\nprint('start', flush=True)\nfor _ in range(30):\n    time.sleep(0.01)\n"
    running, _ = await run_until_running(worker, nap + "print('end')\n", "start", timeout=60)
    await late_signal()
    after = await asyncio.wait_for(running, 60)
    assert after.status is Status.OK, after
    assert after.stdout == "start\nend\n"
    # the debt is paid: a real interrupt of code that reads no channel still works
    spinning = "print('spin', flush=True)\nwhile True: pass\n"
    spin, _ = await run_until_running(worker, spinning, "spin")
    await worker.interrupt()
    stopped = await asyncio.wait_for(spin, 60)
    assert stopped.status is Status.INTERRUPTED, stopped


def caught_status(kind: str) -> Status:
    """How an interrupt the code caught ends, when the interrupt came through the loop.

    A sync wait ends with KeyboardInterrupt, which the code caught: it ran to its
    end. An async one ends by cancelling the code's task: the code ran its
    cleanup, and the execution, whose event loop was stopped, is interrupted.
    """
    return Status.OK if kind == "sync" else Status.INTERRUPTED


def caught_it(output: Output, caught: asyncio.Event) -> None:
    if "caught" in output.text:
        caught.set()


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_frame_read_after_the_signal_raised_changes_nothing(
    worker: WorkerSession, kind: str
) -> None:
    """The usual order: the SIGINT ends the wait; the cleanup's own tool call reads the frame."""
    release = threading.Event()
    code = (
        "import asyncio\n"
        "try:\n"
        "    {call}\n"
        "except (KeyboardInterrupt, asyncio.CancelledError):\n"
        "    print('caught', add(1, 2))\n"
        "print('after', add(2, 3))\n"
    )
    try:
        task, _ = await stalled(worker, kind, release, code)
        await worker.interrupt()
        result = await asyncio.wait_for(task, 60)
    finally:
        release.set()
    # (a SIGINT that lands while an async call's frame is still being sent is raised
    # there, inside the code's task, which catches it and runs to its end: ok)
    assert result.status in {caught_status(kind), Status.OK}, result
    assert result.stdout == "calling\ncaught 3\nafter 5\n"
