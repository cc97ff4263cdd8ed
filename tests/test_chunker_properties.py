"""Property tests: arbitrary split points, arbitrary text, native against pure.

Three contracts checked on hypothesis inputs:

* the chunks depend only on the stream, never on where it was cut into
  tokens (whole feed, arbitrary splits and one character at a time agree);
* concatenation of the chunks is the input, statements compile, syntax
  errors do not, trivia holds nothing to run — on valid *and* invalid text;
* the native and pure scanners produce identical chunk sequences;
* all of this holds with ``flush()`` calls at arbitrary points too, and a
  flush where a statement really ends changes nothing.

Valid programs are built from a pool of top-level statements so the number of
chunks is known exactly; invalid text comes from a token soup rich in the
characters the scanner cares about.
"""

from __future__ import annotations

import ast
import itertools
import random
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eager_rt.chunk import Chunk
from eager_rt.scanner_pure import Scanner as ScannerType
from tests.chunker_helpers import (
    FLUSH,
    SCANNERS,
    NativeScanner,
    PureScanner,
    compile_chunk,
    feed_pieces,
    signature,
)

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Top-level statements, each exactly one chunk (trailing newline added by the builder).
STATEMENTS = [
    "x = 1",
    "a = 1; b = 2",
    "import os",
    "print('#', \"(\", '''[''')",
    "s = f\"{x!r:>{x}} {'}'}\"",
    "t = rb'\\'' + Rb\"\\\\\"",
    "y = (1,\n     2)",
    "z = [\n1,\n# else:\n2,\n]",
    "w = 1 + \\\n    2",
    "doc = '''\nelse:\ndef f(\n'''",
    "if x: y = 1",
    "if x:\n    pass\nelif y:\n    pass\nelse:\n    pass",
    "try:\n    pass\nexcept ValueError:\n    pass\nfinally:\n    pass",
    "try:\n    pass\nexcept* TypeError:\n    pass",
    "for i in range(3):\n    pass\nelse:\n    pass",
    "while x:\n    break\nelse:\n    pass",
    "with open(p) as f:\n    f.read()",
    "def f(a,\n      b):\n\n    # comment\n\n    return a",
    "@dec\n@dec2(1)\n\n# c\nclass A:\n    x = 1",
    "async def g():\n    await h()",
    "class K: pass",
    "match p:\n    case 1:\n        pass\n    case _:\n        pass",
    "match = 3",
    "elsewhere = 2",
    "π = 3.14",
    "lambda: 0",
    "if x:\n\tpass",
]
TRIVIA = ["", "\n", "# comment\n", "   \n", "\n# a\n\n", "    # indented comment\n", "\x0c\n"]
NEWLINES = ["\n", "\r\n", "\r"]

SOUP = [
    "if",
    "else",
    "elif",
    "except",
    "finally",
    "def",
    "class",
    "async",
    "match",
    "case",
    "x",
    "elsewhere",
    "é",
    "f",
    "rb",
    "@",
    ":",
    ";",
    "=",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "'",
    '"',
    "'''",
    '"""',
    "#",
    "\\",
    " ",
    "    ",
    "\t",
    "\x0c",
    "\n",
    "\r\n",
    "\r",
    "1",
    ",",
    "+",
    "pass",
    "return",
    "\ufeff",
    "\0",
]


@st.composite
def programs(draw: st.DrawFn) -> tuple[str, int]:
    """A valid program and its number of top-level statements."""
    stmts = draw(st.lists(st.sampled_from(STATEMENTS), min_size=0, max_size=8))
    nl = draw(st.sampled_from(NEWLINES))
    parts = []
    for stmt in stmts:
        parts.append(draw(st.sampled_from(TRIVIA)))
        parts.append(stmt + "\n")
    parts.append(draw(st.sampled_from(TRIVIA)))
    text = "".join(parts)
    if draw(st.booleans()) and text.endswith("\n"):
        text = text[:-1]
    if nl != "\n":
        text = text.replace("\r\n", "\n").replace("\n", nl)
    if draw(st.booleans()):
        text = "\ufeff" + text
    return text, len(stmts)


soups = st.lists(st.sampled_from(SOUP), max_size=40).map("".join)
any_text = st.one_of(programs().map(lambda p: p[0]), soups)


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a]


def _check_kinds(chunks: list[Chunk]) -> None:
    for c in chunks:
        if c.kind == "statement":
            compile_chunk(c)
        elif c.kind == "syntax_error":
            assert c.error is not None
            with pytest.raises((SyntaxError, ValueError)), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compile_chunk(c)
        else:
            assert c is chunks[-1]
            code = c.code.removeprefix("\ufeff") if c.start == 0 else c.code
            assert ast.parse(code).body == []


@pytest.mark.parametrize("scanner_cls", SCANNERS)
@SETTINGS
@given(prog=programs(), cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_valid_programs(
    scanner_cls: type[ScannerType], prog: tuple[str, int], cuts: list[int]
) -> None:
    text, count = prog
    whole = feed_pieces([text], scanner_cls)
    assert "".join(c.code for c in whole) == text
    statements = [c for c in whole if c.kind == "statement"]
    assert len(statements) == count
    assert all(c.kind in ("statement", "trivia") for c in whole)
    _check_kinds(whole)
    assert signature(feed_pieces(split(text, cuts), scanner_cls)) == signature(whole)


@pytest.mark.parametrize("scanner_cls", SCANNERS)
@SETTINGS
@given(text=any_text, cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_any_text(scanner_cls: type[ScannerType], text: str, cuts: list[int]) -> None:
    whole = feed_pieces([text], scanner_cls)
    assert "".join(c.code for c in whole) == text
    _check_kinds(whole)
    assert signature(feed_pieces(split(text, cuts), scanner_cls)) == signature(whole)


@pytest.mark.parametrize("scanner_cls", SCANNERS)
@settings(max_examples=60, deadline=None)
@given(text=any_text)
def test_one_character_at_a_time(scanner_cls: type[ScannerType], text: str) -> None:
    assert signature(feed_pieces(list(text), scanner_cls)) == signature(
        feed_pieces([text], scanner_cls)
    )


@pytest.mark.skipif(NativeScanner is None, reason="eager_rt._native not built")
@SETTINGS
@given(text=any_text, cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_native_equals_pure(text: str, cuts: list[int]) -> None:
    pieces = split(text, cuts)
    assert signature(feed_pieces(pieces, NativeScanner)) == signature(
        feed_pieces(pieces, PureScanner)
    )


@pytest.mark.skipif(NativeScanner is None, reason="eager_rt._native not built")
@SETTINGS
@given(text=st.text(max_size=60), cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_native_equals_pure_on_unicode(text: str, cuts: list[int]) -> None:
    pieces = split(text, cuts)
    native = feed_pieces(pieces, NativeScanner)
    assert signature(native) == signature(feed_pieces(pieces, PureScanner))
    assert "".join(c.code for c in native) == text


FSOUP = [
    *SOUP,
    "f'",
    'f"',
    "rf'",
    'Rf"',
    "fr'''",
    'f"""',
    "{",
    "}",
    "{{",
    "}}",
    ":",
    "!r",
    "\\N{",
    "\\",
    "x}",
    "{x:",
]
fsoups = st.lists(st.sampled_from(FSOUP), max_size=40).map("".join)


def _forced(cls: type[ScannerType]) -> type[ScannerType]:
    class Forced(cls):  # type: ignore[valid-type,misc]
        def __init__(self, probe: bool = True) -> None:
            super().__init__(probe, True)

    return Forced


@pytest.mark.skipif(NativeScanner is None, reason="eager_rt._native not built")
@SETTINGS
@given(text=st.one_of(fsoups, any_text), cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_native_equals_pure_with_pep701_fstrings(text: str, cuts: list[int]) -> None:
    """The 3.12 f-string tokenization agrees too, whatever the running Python."""
    assert NativeScanner is not None
    pieces = split(text, cuts)
    native = feed_pieces(pieces, _forced(NativeScanner))
    assert signature(native) == signature(feed_pieces(pieces, _forced(PureScanner)))
    assert signature(native) == signature(feed_pieces([text], _forced(NativeScanner)))
    assert "".join(c.code for c in native) == text


def test_seeded_soup_fuzz() -> None:
    """A fixed-seed sweep over token soup: split invariance, native == pure, both modes."""
    rng = random.Random(20261122)
    pairs: list[tuple[type[ScannerType], type[ScannerType] | None]] = [
        (PureScanner, NativeScanner),
        (_forced(PureScanner), None if NativeScanner is None else _forced(NativeScanner)),
    ]
    for _ in range(1500):
        text = "".join(rng.choice(FSOUP) for _ in range(rng.randint(0, 50)))
        pieces = split(text, [rng.randint(0, 100) for _ in range(rng.randint(0, 20))])
        for pure, native in pairs:
            whole = signature(feed_pieces([text], pure))
            assert signature(feed_pieces(pieces, pure)) == whole, (text, pieces)
            if native is not None:
                assert signature(feed_pieces(pieces, native)) == whole, (text, pieces)


# -- flush points -----------------------------------------------------------------


def with_flushes(text: str, flushes: list[int], cuts: list[int]) -> list[str]:
    """``text`` split at ``cuts``, with a FLUSH marker at each flush point (repeats kept)."""
    n = len(text) + 1
    marks = [f % n for f in flushes]
    out: list[str] = [FLUSH] * marks.count(0)
    prev = 0
    for b in sorted({c % n for c in cuts} | set(marks) | {len(text)}):
        if b > prev:
            out.append(text[prev:b])
            out += [FLUSH] * marks.count(b)
            prev = b
    return out


def _units(text: str, flushes: list[int]) -> list[str]:
    return with_flushes(text, flushes, [])


def _check_flushed(text: str, chunks: list[Chunk]) -> None:
    assert "".join(c.code for c in chunks) == text
    _check_kinds(chunks)
    for c in chunks:  # a flush never splits a CRLF between two chunks
        assert text[c.start - 1 : c.start + 1] != "\r\n" or c.start == 0


@pytest.mark.parametrize("scanner_cls", SCANNERS)
@SETTINGS
@given(
    text=any_text,
    flushes=st.lists(st.integers(min_value=0), max_size=6),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
)
def test_flush_anywhere(
    scanner_cls: type[ScannerType], text: str, flushes: list[int], cuts: list[int]
) -> None:
    whole = feed_pieces(_units(text, flushes), scanner_cls)
    _check_flushed(text, whole)
    assert signature(feed_pieces(with_flushes(text, flushes, cuts), scanner_cls)) == signature(
        whole
    )


@pytest.mark.parametrize("scanner_cls", SCANNERS)
@SETTINGS
@given(prog=programs(), cuts=st.lists(st.integers(min_value=0), max_size=20))
def test_flush_at_statement_ends_changes_nothing(
    scanner_cls: type[ScannerType], prog: tuple[str, int], cuts: list[int]
) -> None:
    """A source that flushes where its statements end gets the chunks it would get anyway.

    Only a lone ``\r`` newline differs: it is held back for the next chunk.
    """
    text, count = prog
    plain = feed_pieces([text], scanner_cls)
    ends = [c.end for c in plain if c.kind == "statement"]
    flushed = feed_pieces(with_flushes(text, ends, cuts), scanner_cls)
    _check_flushed(text, flushed)
    if "\r" in text.replace("\r\n", ""):
        assert [c.kind for c in flushed if c.kind == "statement"] == ["statement"] * count
    else:
        assert signature(flushed) == signature(plain)


@pytest.mark.skipif(NativeScanner is None, reason="eager_rt._native not built")
@SETTINGS
@given(
    text=st.one_of(fsoups, any_text, st.text(max_size=60)),
    flushes=st.lists(st.integers(min_value=0), max_size=6),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
)
def test_native_equals_pure_with_flushes(text: str, flushes: list[int], cuts: list[int]) -> None:
    assert NativeScanner is not None
    pieces = with_flushes(text, flushes, cuts)
    pairs = [(NativeScanner, PureScanner), (_forced(NativeScanner), _forced(PureScanner))]
    for native, pure in pairs:
        got = feed_pieces(pieces, native)
        assert signature(got) == signature(feed_pieces(pieces, pure))
        _check_flushed(text, got)


def test_seeded_flush_fuzz() -> None:
    """A fixed-seed sweep: random flush points in token soup, native == pure, split-invariant."""
    rng = random.Random(20261123)
    for _ in range(800):
        text = "".join(rng.choice(FSOUP) for _ in range(rng.randint(0, 50)))
        flushes = [rng.randint(0, 100) for _ in range(rng.randint(1, 5))]
        units = _units(text, flushes)
        cuts = [rng.randint(0, 100) for _ in range(rng.randint(0, 20))]
        pieces = with_flushes(text, flushes, cuts)
        whole = signature(feed_pieces(units, PureScanner))
        assert signature(feed_pieces(pieces, PureScanner)) == whole, (text, pieces)
        if NativeScanner is not None:
            assert signature(feed_pieces(pieces, NativeScanner)) == whole, (text, pieces)
