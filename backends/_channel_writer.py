"""The host's end of a worker channel, writable from the event loop and from tool threads.

:class:`~eager_rt.backends._framed.WorkerSession` writes every frame through
one :class:`ChannelWriter`. The loop writes through asyncio's transport as
usual; a tool thread that has a call's reply ready writes the frame straight
to the channel's file descriptor, so the sandbox gets its reply without
waiting for the loop to wake up (a wake-up of a sleeping process is most of
what a sync tool call cost, see docs/tools.md "What a call costs").

Ordering is kept by one lock that every write takes: a thread writes
directly only when asyncio holds no unsent bytes of the channel (else its
frame would overtake them) and nothing handed back to the loop waits; a
frame it cannot write whole (a full pipe) is queued, and the loop writes the
queue before any frame of its own.
"""

from __future__ import annotations

import asyncio
import os
import threading

__all__ = ["ChannelWriter"]


class ChannelWriter:
    """One channel's writes, in order, from the loop (:meth:`write`) or any thread."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._fd = _plain_fd(writer.transport)
        #: bytes a thread could not write itself, for the loop to write next (in order)
        self._queued = bytearray()
        self._closed = False

    def write(self, data: bytes) -> None:
        """On the loop: write ``data`` after anything a thread left queued."""
        with self._lock:
            if self._queued:
                self._flush_locked()
            self.writer.write(data)

    def write_threadsafe(self, data: bytes) -> None:
        """From any thread: write ``data`` now if the channel is idle, else queue it for the loop.

        A channel already closed (the worker went away) drops ``data``:
        there is nobody left to read it.
        """
        with self._lock:
            if self._closed:
                return
            transport = self.writer.transport
            if (
                self._fd is None
                or self._queued
                or transport.is_closing()
                or transport.get_write_buffer_size()
            ):
                self._queue_locked(data)
                return
            try:
                sent = os.write(self._fd, data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                return  # a broken channel: the session's reader sees the worker go
            if sent < len(data):
                self._queue_locked(memoryview(data)[sent:])

    def close(self) -> None:
        """No more writes from threads (the worker is being stopped)."""
        with self._lock:
            self._closed = True
            self._queued.clear()

    def _queue_locked(self, data: bytes | memoryview) -> None:
        first = not self._queued
        self._queued += data
        if first:
            self._loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        with self._lock:
            if self._queued and not self._closed:
                self._flush_locked()

    def _flush_locked(self) -> None:
        data = bytes(self._queued)
        self._queued.clear()
        if not self.writer.transport.is_closing():
            self.writer.write(data)


def _plain_fd(transport: asyncio.BaseTransport) -> int | None:
    """The descriptor a thread may write frames to: asyncio's own unencrypted pipe or socket.

    Anything else (TLS, another loop's transports, a wrapper) takes every
    write through the loop.
    """
    if not type(transport).__module__.startswith("asyncio."):
        return None
    if transport.get_extra_info("ssl_object") is not None:
        return None
    for key in ("pipe", "socket"):
        endpoint = transport.get_extra_info(key)
        if endpoint is not None:
            try:
                fd = endpoint.fileno()
            except (AttributeError, OSError, ValueError):
                return None
            return fd if isinstance(fd, int) and fd >= 0 else None
    return None
