"""ChannelWriter: frames written from the loop and from threads arrive whole and in order."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from eager_rt.backends import _protocol as protocol
from eager_rt.backends._channel_writer import ChannelWriter

F_SETPIPE_SZ = 1031  # Linux

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def _pipe(size: int | None = None) -> AsyncIterator[tuple[ChannelWriter, int]]:
    """A ChannelWriter on asyncio's write-pipe transport, and the pipe's read end."""
    read_fd, write_fd = os.pipe()
    if size is not None:
        fcntl.fcntl(write_fd, F_SETPIPE_SZ, size)
    loop = asyncio.get_running_loop()
    transport, proto = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(write_fd, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(transport, proto, None, loop)
    channel = ChannelWriter(writer)
    try:
        yield channel, read_fd
    finally:
        channel.close()
        transport.close()
        os.close(read_fd)


def _frames(data: bytes) -> list[dict[str, object]]:
    decoder = protocol.FrameDecoder()
    decoder.feed(data)
    out = []
    while (message := decoder.next()) is not None:
        out.append(message)
    return out


def _read_all(fd: int, into: bytearray, stop: threading.Event) -> None:
    os.set_blocking(fd, False)
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            if stop.is_set():
                return
            stop.wait(0.001)
            continue
        if not chunk:
            return
        into += chunk


async def test_a_thread_writes_straight_to_an_idle_pipe() -> None:
    async with _pipe() as (channel, read_fd):
        frame = protocol.encode({"op": "reply", "call": 1, "ok": True})
        await asyncio.to_thread(channel.write_threadsafe, frame)
        # written by the thread itself: there before the loop runs any callback
        assert os.read(read_fd, 1 << 16) == frame


async def test_frames_from_the_loop_and_threads_stay_whole_and_in_order() -> None:
    """A small pipe nobody drains at first: partial writes, queued tails, loop writes between."""
    async with _pipe(size=4096) as (channel, read_fd):
        per_writer = 60
        body = "x" * 1500  # frames larger than a third of the pipe: partial writes happen

        def thread_writes(name: str) -> None:
            for seq in range(per_writer):
                channel.write_threadsafe(protocol.encode({"w": name, "seq": seq, "pad": body}))

        queued = 0
        queue = channel._queue_locked

        def counting(data: bytes | memoryview) -> None:
            nonlocal queued
            queued += 1
            queue(data)

        channel._queue_locked = counting  # type: ignore[method-assign,unused-ignore]
        received = bytearray()
        stop = threading.Event()
        threads = [threading.Thread(target=thread_writes, args=(f"t{i}",)) for i in range(3)]
        for t in threads:
            t.start()
        for seq in range(per_writer):  # the loop writes too, with turns between
            channel.write(protocol.encode({"w": "loop", "seq": seq, "pad": body}))
            await asyncio.sleep(0)
        reader = threading.Thread(target=_read_all, args=(read_fd, received, stop))
        reader.start()  # only now: the pipe was full meanwhile
        for t in threads:
            await asyncio.to_thread(t.join)
        expected = 4 * per_writer
        for _ in range(2000):
            await asyncio.sleep(0.005)  # the loop flushes what threads queued
            if len(_frames(bytes(received))) == expected:
                break
        stop.set()
        await asyncio.to_thread(reader.join)

    assert queued > 0  # the case under test: threads found the pipe full and queued
    frames = _frames(bytes(received))
    assert len(frames) == expected
    for name in ("loop", "t0", "t1", "t2"):
        assert [f["seq"] for f in frames if f["w"] == name] == list(range(per_writer))
    assert all(f["pad"] == body for f in frames)


async def test_a_closed_channel_drops_late_thread_writes() -> None:
    async with _pipe() as (channel, read_fd):
        channel.close()
        await asyncio.to_thread(channel.write_threadsafe, protocol.encode({"late": True}))
        os.set_blocking(read_fd, False)
        try:
            data = os.read(read_fd, 1024)
        except BlockingIOError:
            data = b""
        assert data == b""
