"""Token streams whose pieces arrive at scripted moments, for tests on any clock.

Part of :mod:`eager_rt.testing`. Pieces are released on the running loop's
clock, so on a :class:`~eager_rt.testing.VirtualClockLoop` the pauses cost no
real time. For real-looking tokens of a whole text, :func:`eager_rt.replay`
paces on the same clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from eager_rt import clock
from eager_rt.testing.virtual_clock import sleep_until

__all__ = ["ScriptedSource", "paced"]


class ScriptedSource:
    """A token stream whose pieces arrive at given moments: ``(seconds, piece)`` pairs.

    Seconds count from the start of iteration, on the running loop's clock.
    A step whose piece is an exception instance raises it at that moment (a
    dropped connection, an API error). Records how far the last iteration got
    (``yielded``) and whether it was closed (``closed``), so a test can tell
    that the runtime stopped generation.
    """

    def __init__(self, steps: Iterable[tuple[float, str | BaseException]]) -> None:
        self.steps = list(steps)
        last = 0.0
        for at, _ in self.steps:
            if not at >= last:
                raise ValueError(f"step times must be >= 0 and non-decreasing, got {at!r}")
            last = at
        self.yielded = 0
        self.closed = False

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[str]:
        self.yielded, self.closed = 0, False
        start = clock.now()
        try:
            for at, piece in self.steps:
                await sleep_until(start + at)
                if isinstance(piece, BaseException):
                    raise piece
                self.yielded += 1
                yield piece
        finally:
            self.closed = True

    def info(self) -> dict[str, Any]:
        """What the runtime copies into ``RunResult.source_info``."""
        pieces = sum(1 for _, p in self.steps if isinstance(p, str))
        return {"source": "scripted", "pieces": pieces, "yielded": self.yielded}


def paced(pieces: Iterable[str], *, tps: float, ttft: float = 0.0) -> ScriptedSource:
    """``pieces`` as a model at ``tps`` pieces per second: piece *i* at ``ttft + i / tps``.

    Unlike :func:`eager_rt.replay`, the pieces are yours, not a tokenizer's.
    """
    if not tps > 0:
        raise ValueError(f"tps must be positive, got {tps!r}")
    return ScriptedSource((ttft + i / tps, piece) for i, piece in enumerate(pieces))
