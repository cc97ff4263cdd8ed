"""Closing an upstream iterator when a source generator is closed early.

Sources are chained generators (SDK stream -> events -> code pieces). When the
runtime closes the outermost one, every link must close the one it wraps, or
the HTTP response behind the chain keeps streaming (and billing) until the
garbage collector notices.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["aclose_quietly", "close_quietly"]


def close_quietly(obj: Any) -> None:
    """Call ``obj.close()`` when it has one (generators, SDK streams, responses)."""
    close = getattr(obj, "close", None)
    if callable(close):
        result = close()
        if inspect.isawaitable(result):  # an async object reached from sync code
            close_awaitable = getattr(result, "close", None)
            if callable(close_awaitable):
                close_awaitable()


async def aclose_quietly(obj: Any) -> None:
    """Await ``obj.aclose()`` (async generators) or ``obj.close()`` (SDK async streams)."""
    for name in ("aclose", "close"):
        method = getattr(obj, name, None)
        if callable(method):
            result = method()
            if inspect.isawaitable(result):
                await result
            return
