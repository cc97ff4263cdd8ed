"""``eager_rt.closing``: the block hands back the object and closes it however the block ends."""

from __future__ import annotations

import asyncio

import pytest

from eager_rt.closing import AsyncClosing, Closing


class Held(Closing, AsyncClosing):
    def __init__(self) -> None:
        self.closed: list[str] = []

    def close(self) -> None:
        self.closed.append("close")

    async def aclose(self) -> None:
        self.closed.append("aclose")


def test_with_closes_and_does_not_swallow_the_error() -> None:
    held = Held()
    with held as inside:
        assert inside is held and held.closed == []
    assert held.closed == ["close"]
    with pytest.raises(LookupError), held:
        raise LookupError("from the block")
    assert held.closed == ["close", "close"]


def test_async_with_closes_and_does_not_swallow_the_error() -> None:
    held = Held()

    async def use() -> None:
        async with held as inside:
            assert inside is held and held.closed == []
        assert held.closed == ["aclose"]
        with pytest.raises(LookupError):
            async with held:
                raise LookupError("from the block")

    asyncio.run(use())
    assert held.closed == ["aclose", "aclose"]


def test_a_class_without_its_close_cannot_be_made() -> None:
    class Forgot(Closing):
        pass

    with pytest.raises(TypeError):
        Forgot()  # type: ignore[abstract]
