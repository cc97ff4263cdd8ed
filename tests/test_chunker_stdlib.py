"""Fidelity over the running Python's standard library, fed in random pieces.

Sample (stated, deterministic): every 4th ``.py`` file of the sorted stdlib
listing (``sysconfig.get_paths()["stdlib"]``, ``site-packages`` excluded), of
which those that compile — about 590 files on CPython 3.11.  Each file is cut
into pieces of 1–16 characters by ``random.Random(crc32(path))`` and fed to
the pure scanner and, when built, to the native one with the *same* pieces.

For every file: the two scanners give identical chunk sequences; the chunks
concatenate to the file; every chunk is a ``statement`` (the file compiles)
that compiles on its own; and the statements inside the chunks are exactly
the file's top-level statements (type and position), each in one chunk.
Set ``EAGER_RT_STDLIB_STEP=1`` to run over every file.
"""

from __future__ import annotations

import os
import random
import zlib

import pytest

from eager_rt.chunk import Chunk
from tests.chunker_helpers import (
    NativeScanner,
    PureScanner,
    compile_chunk,
    feed_pieces,
    random_pieces,
    signature,
    stdlib_sources,
    top_level,
)

STEP = int(os.environ.get("EAGER_RT_STDLIB_STEP", "4"))
SOURCES = stdlib_sources(STEP)


def _positions(stmts: list) -> list[tuple[str, int, int, int | None, int | None]]:  # type: ignore[type-arg]
    return [
        (type(s).__name__, s.lineno, s.col_offset, s.end_lineno, s.end_col_offset) for s in stmts
    ]


def _check_file(name: str, src: str, chunks: list[Chunk]) -> str | None:
    """Return what is wrong with the chunks of one file, or None."""
    if "".join(c.code for c in chunks) != src:
        return "concatenation differs from the file"
    expected = _positions(top_level(src))
    got = []
    for c in chunks:
        if c.kind == "trivia":
            if c is not chunks[-1] or top_level(c.code):
                return f"bad trivia chunk {c.index} at line {c.lineno}"
            continue
        if c.kind != "statement":
            return f"chunk {c.index} at line {c.lineno} is {c.kind}: {c.error}"
        try:
            compile_chunk(c)
        except SyntaxError as exc:  # pragma: no cover - a failure message
            return f"chunk {c.index} at line {c.lineno} does not compile: {exc}"
        body = top_level(c.code if c.start else c.code.removeprefix("\ufeff"))
        if not body:
            return f"chunk {c.index} at line {c.lineno} holds no statement"
        for kind, line, col, end_line, end_col in _positions(body):
            shift = c.lineno - 1
            got.append(
                (kind, line + shift, col, None if end_line is None else end_line + shift, end_col)
            )
    if got != expected:
        for i, (a, b) in enumerate(zip(got, expected, strict=False)):
            if a != b:
                return f"statement {i}: chunks give {a}, ast gives {b}"
        return f"{len(got)} statements in chunks, {len(expected)} in ast"
    return None


def test_sample_is_large_enough() -> None:
    assert len(SOURCES) >= 300


def test_stdlib_fidelity_and_differential() -> None:
    failures = []
    for name, src in SOURCES:
        pieces = random_pieces(src, random.Random(zlib.crc32(name.encode())), 1, 16)
        pure = feed_pieces(pieces, PureScanner)
        problem = _check_file(name, src, pure)
        if problem is None and NativeScanner is not None:
            native = feed_pieces(pieces, NativeScanner)
            if signature(native) != signature(pure):
                problem = "native and pure scanners disagree"
        if problem is not None:
            failures.append(f"{name}: {problem}")
    assert failures == []


@pytest.mark.skipif(NativeScanner is None, reason="eager_rt._native not built")
def test_stdlib_native_whole_files() -> None:
    """Whole-file feeds (one piece) agree with the piecewise pure result."""
    failures = []
    for name, src in SOURCES[::4]:
        whole = feed_pieces([src], NativeScanner)
        pieces = random_pieces(src, random.Random(zlib.crc32(name.encode()) + 1), 3, 5)
        if signature(whole) != signature(feed_pieces(pieces, PureScanner)):
            failures.append(name)
    assert failures == []
