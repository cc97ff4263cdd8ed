"""The one clock every timestamp of a run is read from.

Runtime, backends and token sources all call :func:`now`, so their readings
compare directly. Inside a running event loop it is the loop's own clock
(``loop.time()``, monotonic); elsewhere (a source pulled on a thread) it is
:func:`time.monotonic`, which the default loop's clock is. A loop with a
virtual clock (:class:`eager_rt.testing.VirtualClockLoop`) therefore moves
every timestamp of a run with it, which is what makes policy tests exact.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["now"]


def now() -> float:
    """Seconds on a monotonic clock; the running loop's when there is one."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()
