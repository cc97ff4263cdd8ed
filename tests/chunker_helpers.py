"""Shared helpers of the chunker tests: feeding, scanner choice, stdlib corpus."""

from __future__ import annotations

import ast
import random
import sysconfig
import warnings
from collections.abc import Iterable
from pathlib import Path

import pytest

from eager_rt.chunk import Chunk
from eager_rt.chunker import Chunker
from eager_rt.scanner import PureScanner, native_scanner
from eager_rt.scanner_pure import Scanner as ScannerType
from eager_rt.sources.boundary import BOUNDARY, is_boundary

__all__ = [
    "FLUSH",
    "SCANNERS",
    "NativeScanner",
    "PureScanner",
    "compile_chunk",
    "feed_pieces",
    "random_pieces",
    "signature",
    "stdlib_files",
    "stdlib_sources",
    "top_level",
]

NativeScanner = native_scanner()

#: Both implementations when the extension is built; a skip marks the native
#: one otherwise, so a pure-only install still runs every test once.
SCANNERS = [
    pytest.param(PureScanner, id="pure"),
    pytest.param(
        NativeScanner,
        id="native",
        marks=pytest.mark.skipif(NativeScanner is None, reason="eager_rt._native not built"),
    ),
]


#: In a list of pieces: "the code unit ends here" (``Chunker.flush()``), as a source says it.
FLUSH = BOUNDARY


def feed_pieces(pieces: Iterable[str], scanner_cls: type[ScannerType] | None = None) -> list[Chunk]:
    chunker = Chunker(scanner_cls=scanner_cls)
    out: list[Chunk] = []
    for piece in pieces:
        out += chunker.flush() if is_boundary(piece) else chunker.feed(piece)
    out += chunker.close()
    return out


def random_pieces(text: str, rng: random.Random, lo: int = 1, hi: int = 12) -> list[str]:
    pieces = []
    i = 0
    while i < len(text):
        k = rng.randint(lo, hi)
        pieces.append(text[i : i + k])
        i += k
    return pieces


def signature(chunks: list[Chunk]) -> list[tuple[object, ...]]:
    """Everything a chunk says, for comparing two chunk sequences."""
    return [
        (
            c.code,
            c.index,
            c.start,
            c.end,
            c.body_end,
            c.lineno,
            c.kind,
            c.declaration,
            c.error,
        )
        for c in chunks
    ]


def compile_chunk(chunk: Chunk) -> None:
    """Compile a chunk on its own the way a runner would (BOM skipped)."""
    code = chunk.code[1:] if chunk.start == 0 and chunk.code.startswith("\ufeff") else chunk.code
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compile(code, "<chunk>", "exec", dont_inherit=True)


def stdlib_files() -> list[Path]:
    """Every ``.py`` file of the running Python's standard library, sorted."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)


def stdlib_sources(step: int = 1) -> list[tuple[str, str]]:
    """``(name, source)`` of every ``step``-th stdlib file that compiles, deterministically."""
    out = []
    for path in stdlib_files()[::step]:
        try:
            src = path.read_text(encoding="utf-8")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compile(src.removeprefix("\ufeff"), str(path), "exec", dont_inherit=True)
        except (SyntaxError, ValueError, UnicodeDecodeError):
            continue
        out.append((str(path), src))
    return out


def top_level(src: str) -> list[ast.stmt]:
    return ast.parse(src.removeprefix("\ufeff")).body
