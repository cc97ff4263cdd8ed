"""Replayed token streams: faithful text, model-like pieces, a steady rate."""

from __future__ import annotations

import asyncio
import glob
import importlib
import sysconfig
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eager_rt.sources.replay import approximate_pieces, replay, tokenize_pieces

STDLIB = sorted(glob.glob(sysconfig.get_paths()["stdlib"] + "/*.py"))[:40]


@given(st.text())
def test_approximate_pieces_concatenate_to_the_text(text: str) -> None:
    assert "".join(approximate_pieces(text)) == text


@settings(deadline=None)  # the first call loads the cl100k table
@given(st.text())
def test_tokenizer_pieces_concatenate_to_the_text(text: str) -> None:
    assert "".join(tokenize_pieces(text)) == text


def test_real_tokenizer_is_used_when_installed() -> None:
    pytest.importorskip("tiktoken")
    text = "import pandas as pd\ndf = pd.read_csv('data.csv')\n"
    pieces = tokenize_pieces(text, "cl100k")
    assert pieces[:4] == ["import", " pandas", " as", " pd"]


def test_whitespace_glues_to_piece_starts_and_ends() -> None:
    """Like BPE: a statement's newline often rides at the end of ':\n' or ')\n', and a
    word carries its leading space, so boundaries rarely sit on neat line ends."""
    for tokenizer in ("approx", "cl100k"):
        if tokenizer == "cl100k":
            pytest.importorskip("tiktoken")
        text = "".join(Path(path).read_text(encoding="utf-8") for path in STDLIB[:10])
        pieces = tokenize_pieces(text, tokenizer)  # type: ignore[arg-type]
        glued_newlines = sum(1 for p in pieces if p.endswith("\n") and p.strip())
        bare_newlines = sum(1 for p in pieces if p.endswith("\n") and not p.strip())
        spaced_words = sum(1 for p in pieces if p.startswith(" ") and p[1:2].isalpha())
        assert glued_newlines > 0.2 * (glued_newlines + bare_newlines)
        assert spaced_words > 0.2 * len(pieces)


def test_approximation_has_about_as_many_pieces_as_cl100k() -> None:
    pytest.importorskip("tiktoken")
    text = "".join(Path(path).read_text(encoding="utf-8") for path in STDLIB)
    ratio = len(approximate_pieces(text)) / len(tokenize_pieces(text, "cl100k"))
    assert 0.8 < ratio < 1.25


def test_multibyte_characters_are_never_split() -> None:
    text = "print('日本語 😀 héllo')\n"
    for piece in tokenize_pieces(text):
        piece.encode("utf-8")  # a lone surrogate or broken character would raise


class _VirtualClock:
    """Stands in for ``eager_rt.clock`` and ``time``: sleeping moves the clock, nothing waits."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_sync_iteration_keeps_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    # the package exports the function under the module's name: take the module
    replay_module = importlib.import_module("eager_rt.sources.replay")
    clock = _VirtualClock()
    monkeypatch.setattr(replay_module, "clock", clock)
    monkeypatch.setattr(replay_module, "time", clock)
    stream = replay("x = 1\n" * 10, tps=100, ttft=0.1)
    released = []
    for piece in stream:
        released.append((clock.t - 1000.0, piece))
    assert "".join(p for _, p in released) == "x = 1\n" * 10
    assert stream.consumed == len(stream.pieces)
    # piece i is released at ttft + i/tps, neither earlier nor later
    assert [t for t, _ in released] == pytest.approx([0.1 + i / 100 for i in range(len(released))])
    assert released[-1][0] == pytest.approx(stream.duration)


def test_async_iteration_and_partial_consumption() -> None:
    stream = replay("y = 2\n" * 50, tps=1000)

    async def take(n: int) -> list[str]:
        out = []
        async for piece in stream:
            out.append(piece)
            if len(out) == n:
                break
        return out

    assert len(asyncio.run(take(5))) == 5
    info = stream.info()
    assert info["consumed"] == 5
    assert info["unconsumed"] == len(stream.pieces) - 5


def test_invalid_rates_are_rejected() -> None:
    with pytest.raises(ValueError):
        replay("x", tps=0)
    with pytest.raises(ValueError):
        replay("x", tps=10, ttft=-1)
