"""Runtime behaviour on a real session (the local backend): events, clean-up, threads, sync API.

The runtime's policies and failure reports are tested exactly on FakeSession
in ``tests/test_runtime_policy.py``; what stays here needs a real
interpreter, real threads or the blocking facade.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from eager_rt.events import (
    ChunkDetected,
    Event,
    ExecutionFinished,
    ExecutionStarted,
    Finished,
    OutputEvent,
)
from eager_rt.executor import Session
from eager_rt.registry import get_backend
from eager_rt.runtime import arun_stream, astream_events, run_stream
from eager_rt.sources.replay import replay
from eager_rt.sync import SyncSession

pytestmark = pytest.mark.anyio

PROGRAM = "x = 2\nprint(x * 21)\nfor i in range(2):\n    print(i)\nprint('end')\n"


async def test_events_arrive_live_and_in_order(local_session: Session) -> None:
    events: list[Event] = []
    result = await arun_stream(replay(PROGRAM, tps=1000), local_session, on_event=events.append)
    assert result.status == "ok"
    assert result.stdout == "42\n0\n1\nend\n"
    assert isinstance(events[-1], Finished) and events[-1].result is result
    kinds = [type(e) for e in events]
    assert kinds.count(ExecutionStarted) == kinds.count(ExecutionFinished) == len(result.batches)
    detected = [e.chunk for e in events if isinstance(e, ChunkDetected)]
    assert [c.code for c in detected] == [r.chunk.code for r in result.chunks]
    assert "".join(c.code for c in detected) == PROGRAM
    printed = "".join(e.output.text for e in events if isinstance(e, OutputEvent))
    assert printed == result.stdout
    # every batch starts after its chunks were detected, and ends after it starts
    for e in events:
        if isinstance(e, ExecutionStarted):
            for idx in e.chunk_indices:
                assert result.chunks[idx].t_detected <= e.t


async def test_leaving_the_event_stream_early_cleans_up(local_session: Session) -> None:
    code = "print('a')\nimport time\ntime.sleep(0.3)\n" + "print('b')\n" * 50
    tasks_before = len(asyncio.all_tasks())
    stream = astream_events(replay(code, tps=100), local_session)
    async for event in stream:
        if isinstance(event, OutputEvent):
            break
    await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == tasks_before
    result = await local_session.execute("print('usable')", timeout=30)
    assert result.stdout == "usable\n"


async def test_cancelling_a_run_leaves_nothing_behind(local_session: Session) -> None:
    tasks_before = len(asyncio.all_tasks())
    threads_before = threading.active_count()
    code = "import time\n" + "time.sleep(0.05)\n" * 200
    task = asyncio.create_task(arun_stream(replay(code, tps=400), local_session))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(asyncio.all_tasks()) == tasks_before
    assert threading.active_count() <= threads_before
    result = await local_session.execute("print('after')", timeout=30)
    assert result.stdout == "after\n"


class SyncSource:
    """A blocking generator (like a sync SDK stream) that records its closing."""

    def __init__(self, pieces: list[str], pause: float) -> None:
        self.pieces = pieces
        self.pause = pause
        self.closed_on: str | None = None
        self.yielded = 0

    def __iter__(self) -> Iterator[str]:
        try:
            for piece in self.pieces:
                self.yielded += 1
                yield piece
                time.sleep(self.pause)
        finally:
            self.closed_on = threading.current_thread().name


async def test_blocking_source_is_pulled_and_closed_on_its_own_thread(
    local_session: Session,
) -> None:
    source = SyncSource(["print(1)\n", "1/0\n"] + ["print(2)\n"] * 20, pause=0.05)
    threads_before = threading.active_count()
    result = await arun_stream(source, local_session)
    assert result.status == "error"
    assert result.stream_closed_early
    assert source.closed_on is not None and source.closed_on.startswith("eager_rt-source")
    assert source.yielded < 22
    assert threading.active_count() <= threads_before
    assert result.stdout == "1\n"


def test_sync_facade_with_and_without_a_session() -> None:
    result = run_stream(replay(PROGRAM, tps=2000), timeout=120)
    assert result.stdout == "42\n0\n1\nend\n"
    with SyncSession(get_backend("local")().session()) as session:
        first = run_stream(["y = 5\n"], session, timeout=60)
        assert first.ok
        second = run_stream(["print(y)\n"], session, timeout=60)
        assert second.stdout == "5\n"


def test_sync_facade_times_out_cleanly() -> None:
    with SyncSession(get_backend("local")().session()) as session:
        with pytest.raises(TimeoutError):
            run_stream(replay("print(1)\n" * 100, tps=20), session, timeout=0.5)
        after = run_stream(["print('alive')\n"], session, timeout=60)
        assert after.stdout == "alive\n"


async def test_a_failing_blocking_source_is_reported_too(local_session: Session) -> None:
    def dropping() -> Iterator[str]:
        yield "x = 5\n"
        yield "print(x)\n"
        raise TimeoutError("read timed out")

    result = await arun_stream(dropping(), local_session)
    assert result.status == "source_error"
    assert result.stdout == "5\n"
    assert result.error is not None and result.error.ename == "TimeoutError"
