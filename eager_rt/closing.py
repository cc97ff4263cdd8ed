"""``with`` and ``async with`` for the objects of eager_rt that own something to release.

A class that releases what it holds in ``close()`` (blocking) or ``aclose()``
(async) inherits the block protocol from here rather than writing it out
again: the block hands back the object itself and closes it however the block
ends, without swallowing the exception that ended it. The contextlib twins,
``closing()`` and ``aclosing()``, wrap an object at each use; these make the
object a context manager of its own. Nothing here imports the rest of eager_rt,
so any module can use it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

__all__ = ["AsyncClosing", "Closing"]


class Closing(ABC):
    """``with obj:`` is ``obj``, closed with ``obj.close()`` when the block ends."""

    @abstractmethod
    def close(self) -> None:
        """Release everything the object holds."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClosing(ABC):
    """``async with obj:`` is ``obj``, closed with ``await obj.aclose()`` when the block ends."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release everything the object holds."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
