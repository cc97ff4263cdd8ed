"""Conformance of the chunker: every construct of issue 2, on both scanners.

Each case states the exact chunks a stream must give.  Every case is fed
whole, one character at a time and in random pieces: the chunks must not
depend on where the token boundaries fall.  ``TIMING`` cases also pin down
*when* a chunk comes out: never before it is final, and no later than the
token that makes it final.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tokenize
from io import StringIO

import pytest

from eager_rt.chunk import Chunk
from eager_rt.chunker import Chunker
from eager_rt.scanner_pure import Scanner as ScannerType
from tests.chunker_helpers import (
    FLUSH,
    SCANNERS,
    NativeScanner,
    compile_chunk,
    feed_pieces,
    random_pieces,
    signature,
)

S = "statement"
E = "syntax_error"
T = "trivia"

#: name -> (stream, [(code, kind), ...])
CASES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "simple": ("x = 1\ny = 2\n", [("x = 1\n", S), ("y = 2\n", S)]),
    "semicolons": (
        "a = 1; b = 2; c = 3\nd = 4;\n",
        [("a = 1; b = 2; c = 3\n", S), ("d = 4;\n", S)],
    ),
    "no final newline": ("x = 1\ny = 2", [("x = 1\n", S), ("y = 2", S)]),
    "crlf": (
        "x = 1\r\nif x:\r\n    y\r\nz\r\n",
        [("x = 1\r\n", S), ("if x:\r\n    y\r\n", S), ("z\r\n", S)],
    ),
    "cr": (
        "x = 1\rif x:\r    y\relse:\r    w\rz\r",
        [("x = 1\r", S), ("if x:\r    y\relse:\r    w\r", S), ("z\r", S)],
    ),
    "mixed newlines": ("a\r\nb\nc\rd", [("a\r\n", S), ("b\n", S), ("c\r", S), ("d", S)]),
    "tabs": (
        "if x:\n\ty = 1\n\tz = 2\nw = 3\n",
        [("if x:\n\ty = 1\n\tz = 2\n", S), ("w = 3\n", S)],
    ),
    "form feed at column 0": (
        "def f():\n    pass\n\x0c\ndef g():\n    pass\n\x0cx = 1\n",
        [("def f():\n    pass\n", S), ("\x0c\ndef g():\n    pass\n", S), ("\x0cx = 1\n", S)],
    ),
    "form feed then indent": ("if x:\n\x0c    y\nz\n", [("if x:\n\x0c    y\n", S), ("z\n", S)]),
    "bom": ("\ufeffimport os\nx = 1\n", [("\ufeffimport os\n", S), ("x = 1\n", S)]),
    "bom alone": ("\ufeff# hi\n", [("\ufeff# hi\n", T)]),
    "bom before a block": ("\ufeffif x:\n    y\nz\n", [("\ufeffif x:\n    y\n", S), ("z\n", S)]),
    "bom later is not a bom": ("x\n\ufeffy\n", [("x\n", S), ("\ufeffy\n", E)]),
    "non-ascii identifiers": (
        "π = 3.14\nif π:\n    ñ = 1\nélan = 2\n",
        [("π = 3.14\n", S), ("if π:\n    ñ = 1\n", S), ("élan = 2\n", S)],
    ),
    "non-ascii after else": (
        "if x:\n    y\nelseé = 1\nif z:\n    w\nelse\u00b7x = 2\n",
        [
            ("if x:\n    y\n", S),
            ("elseé = 1\n", S),
            ("if z:\n    w\n", S),
            ("else\u00b7x = 2\n", S),
        ],
    ),
    "string prefixes": (
        "a = r'\\'#(' + R\"[\" + u'{' + U\"#\"\n"
        "b = b'(' + B\"[\" + br'\\'' + rb\"#\" + Rb'(' + bR\"[\" + BR'x' + rB\"y\"\n"
        "c = f'{a}(' + F\"{b}[\" + fr'{a}\\'' + rf\"{b}#\" + Rf'{a}' + fR\"{b}\" + FR'' + rF\"\"\n"
        "d = 1\n",
        [
            ("a = r'\\'#(' + R\"[\" + u'{' + U\"#\"\n", S),
            ("b = b'(' + B\"[\" + br'\\'' + rb\"#\" + Rb'(' + bR\"[\" + BR'x' + rB\"y\"\n", S),
            (
                "c = f'{a}(' + F\"{b}[\" + fr'{a}\\'' + rf\"{b}#\" + Rf'{a}'"
                ' + fR"{b}" + FR\'\' + rF""\n',
                S,
            ),
            ("d = 1\n", S),
        ],
    ),
    "empty strings": ("a = '' + \"\"\nb = ''''''\n", [("a = '' + \"\"\n", S), ("b = ''''''\n", S)]),
    "triple-quoted": (
        'doc = """\nelse:\n# not a comment\ndef f(\n"""\nx = \'\'\'a\'\'\' + """b\\""""\ny = 1\n',
        [
            ('doc = """\nelse:\n# not a comment\ndef f(\n"""\n', S),
            ('x = \'\'\'a\'\'\' + """b\\""""\n', S),
            ("y = 1\n", S),
        ],
    ),
    "triple quote with inner quotes": (
        "s = '''it''s '' here'''\nt = 2\n",
        [("s = '''it''s '' here'''\n", S), ("t = 2\n", S)],
    ),
    "nested f-strings": (
        "w = 10\ns = f\"{w!r:>{w}} {f'{w}'} {'#'} {w:{'>'}{w}}\"\nt = f'''{\n'(' }'''\nu = 1\n",
        [
            ("w = 10\n", S),
            ("s = f\"{w!r:>{w}} {f'{w}'} {'#'} {w:{'>'}{w}}\"\n", S),
            ("t = f'''{\n'(' }'''\n", S),
            ("u = 1\n", S),
        ],
    ),
    "continuation inside strings": (
        "s = 'abc\\\ndef'\nt = \"x\\\r\ny\"\nu = 1\n",
        [("s = 'abc\\\ndef'\n", S), ('t = "x\\\r\ny"\n', S), ("u = 1\n", S)],
    ),
    "backslash continuation": (
        "x = 1 + \\\n2\nif a and \\\n   b:\n    pass\ny = \\\r\n3\n",
        [("x = 1 + \\\n2\n", S), ("if a and \\\n   b:\n    pass\n", S), ("y = \\\r\n3\n", S)],
    ),
    "brackets across lines": (
        "x = [\n1,\n# else:\n2,\n]\nd = {'a': (1,\n  2)}\n",
        [("x = [\n1,\n# else:\n2,\n]\n", S), ("d = {'a': (1,\n  2)}\n", S)],
    ),
    "if else trap": (
        "if x:\n    a\nelse:\n    b\nc\n",
        [("if x:\n    a\nelse:\n    b\n", S), ("c\n", S)],
    ),
    "elif chain": (
        "if x:\n    a\nelif y:\n    b\nelif z: c\nelse: d\ne\n",
        [("if x:\n    a\nelif y:\n    b\nelif z: c\nelse: d\n", S), ("e\n", S)],
    ),
    "try except trap": (
        "try:\n    a\nexcept ValueError:\n    b\nexcept:\n    c\n"
        "else:\n    d\nfinally:\n    e\nf\n",
        [
            (
                "try:\n    a\nexcept ValueError:\n    b\nexcept:\n    c\n"
                "else:\n    d\nfinally:\n    e\n",
                S,
            ),
            ("f\n", S),
        ],
    ),
    "except star": (
        "try:\n    a\nexcept* ValueError:\n    b\nexcept *TypeError:\n    c\nd\n",
        [("try:\n    a\nexcept* ValueError:\n    b\nexcept *TypeError:\n    c\n", S), ("d\n", S)],
    ),
    "for while else": (
        "for i in x:\n    a\nelse:\n    b\nwhile y:\n    c\nelse:\n    d\ne\n",
        [
            ("for i in x:\n    a\nelse:\n    b\n", S),
            ("while y:\n    c\nelse:\n    d\n", S),
            ("e\n", S),
        ],
    ),
    "elsewhere releases": (
        "if x:\n    a\nelsewhere = 1\nelif_ = 2\nexcepted = 3\nfinally_ = 4\n",
        [
            ("if x:\n    a\n", S),
            ("elsewhere = 1\n", S),
            ("elif_ = 2\n", S),
            ("excepted = 3\n", S),
            ("finally_ = 4\n", S),
        ],
    ),
    "one-line compound": ("if x: y\nz\n", [("if x: y\n", S), ("z\n", S)]),
    "one-line compound with else": (
        "if x: y\nelse: w\nz\n",
        [("if x: y\nelse: w\n", S), ("z\n", S)],
    ),
    "with and class": (
        "with open(p) as f:\n    f.read()\nclass A(B):\n    x = 1\n    def m(self): pass\ny\n",
        [
            ("with open(p) as f:\n    f.read()\n", S),
            ("class A(B):\n    x = 1\n    def m(self): pass\n", S),
            ("y\n", S),
        ],
    ),
    "decorators": (
        "@a\n@b(1,\n2)\n\n# c\n@c\ndef f():\n    pass\n"
        "@d\nclass K: pass\n@e\nasync def g(): pass\nx\n",
        [
            ("@a\n@b(1,\n2)\n\n# c\n@c\ndef f():\n    pass\n", S),
            ("@d\nclass K: pass\n", S),
            ("@e\nasync def g(): pass\n", S),
            ("x\n", S),
        ],
    ),
    "async compounds": (
        "async def f():\n    async for a in b:\n        pass\n    async with c:\n        pass\nx\n",
        [
            (
                "async def f():\n    async for a in b:\n        pass\n"
                "    async with c:\n        pass\n",
                S,
            ),
            ("x\n", S),
        ],
    ),
    "comments and blank lines never end a block": (
        "def f():\n    a = 1\n\n# column-0 comment\n\n    return a\n   # odd comment\n\nx = f()\n",
        [
            ("def f():\n    a = 1\n\n# column-0 comment\n\n    return a\n", S),
            ("   # odd comment\n\nx = f()\n", S),
        ],
    ),
    "match statement": (
        "match p:\n    case 1:\n        a\n    case _:\n        b\nmatch = 3\nmatch(x)\nmatch[0]\n",
        [
            ("match p:\n    case 1:\n        a\n    case _:\n        b\n", S),
            ("match = 3\n", S),
            ("match(x)\n", S),
            ("match[0]\n", S),
        ],
    ),
    "soft keywords as names": (
        "case = 1\ntype = 2\n_ = 3\n",
        [("case = 1\n", S), ("type = 2\n", S), ("_ = 3\n", S)],
    ),
    "comment on statement line": (
        "x = 1  # note\n# next\ny = 2\n",
        [("x = 1  # note\n", S), ("# next\ny = 2\n", S)],
    ),
    "head and tail trivia": (
        "#!/usr/bin/env python\n\n# hi\nx = 1\n\n# bye\n   \n",
        [("#!/usr/bin/env python\n\n# hi\nx = 1\n", S), ("\n# bye\n   \n", T)],
    ),
    "only trivia": ("# a\n\n  # b\n", [("# a\n\n  # b\n", T)]),
    "empty stream": ("", []),
    "docstring and future import": (
        '"""Doc."""\nfrom __future__ import annotations\nx: int = 1\n',
        [('"""Doc."""\n', S), ("from __future__ import annotations\n", S), ("x: int = 1\n", S)],
    ),
    # -- invalid code ---------------------------------------------------------
    "syntax error in a simple statement": (
        "x = = 1\ny = 2\n",
        [("x = = 1\n", E), ("y = 2\n", S)],
    ),
    "syntax error in a block": (
        "def f():\n    return )\nx = 1\n",
        [("def f():\n    return )\n", E), ("x = 1\n", S)],
    ),
    "missing colon": ("if x\n    y\nz = 1\n", [("if x\n    y\n", E), ("z = 1\n", S)]),
    "unexpected indent": (
        "x = 1\n    y = 2\nz = 3\n",
        [("x = 1\n", S), ("    y = 2\n", E), ("z = 3\n", S)],
    ),
    "decorator without def": ("@d\nx = 1\ny = 2\n", [("@d\n", E), ("x = 1\n", S), ("y = 2\n", S)]),
    "still a valid prefix, not an error": (
        "x = f(1,\nprint(2)\n)\n",
        [("x = f(1,\nprint(2)\n)\n", S)],
    ),
    "unclosed bracket, next statement": (
        "x = foo(1, 2\nprint(x)\ny = 3\n",
        [("x = foo(1, 2\n", E), ("print(x)\n", S), ("y = 3\n", S)],
    ),
    "unclosed bracket, next def": (
        "x = [1,\ndef f():\n    pass\ny\n",
        [("x = [1,\n", E), ("def f():\n    pass\n", S), ("y\n", S)],
    ),
    "unterminated single-quoted string": ("s = 'abc\nt = 1\n", [("s = 'abc\n", E), ("t = 1\n", S)]),
    "unterminated triple-quoted string": ("s = '''abc\nt = 1\n", [("s = '''abc\nt = 1\n", E)]),
    "unclosed bracket at close": ("x = (1,\n2,\n", [("x = (1,\n2,\n", E)]),
    "stray else": ("else:\n    x\ny = 1\n", [("else:\n    x\n", E), ("y = 1\n", S)]),
    "return outside function": ("return 1\nx = 2\n", [("return 1\n", E), ("x = 2\n", S)]),
    "null byte": ("x = 1\0\ny = 2\n", [("x = 1\0\n", E), ("y = 2\n", S)]),
}


def _expect(chunks: list[Chunk], expected: list[tuple[str, str]], src: str) -> None:
    assert [(c.code, c.kind) for c in chunks] == expected
    assert "".join(c.code for c in chunks) == src
    offset, lineno = 0, 1
    for i, c in enumerate(chunks):
        assert (c.index, c.start, c.end, c.lineno) == (i, offset, offset + len(c.code), lineno)
        assert c.start <= c.body_end <= c.end
        offset = c.end
        lineno += _lines(c.code)
        if c.kind == S:
            compile_chunk(c)
            assert c.code[c.body_end - c.start - 1] not in " \t\r\n"
        elif c.kind == E:
            assert c.error is not None and c.error.msg
            with pytest.raises((SyntaxError, ValueError)):
                compile_chunk(c)
        else:
            assert not c.code.strip(" \t\x0c\r\n").replace("\n", "").startswith(("x", "y"))


def _lines(code: str) -> int:
    return len(code.replace("\r\n", "\n").replace("\r", "\n").split("\n")) - 1


@pytest.mark.parametrize("scanner_cls", SCANNERS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_case(name: str, scanner_cls: type[ScannerType]) -> None:
    src, expected = CASES[name]
    whole = feed_pieces([src], scanner_cls)
    _expect(whole, expected, src)
    by_char = feed_pieces(list(src), scanner_cls)
    assert signature(by_char) == signature(whole)
    for seed in range(5):
        pieces = random_pieces(src, random.Random(seed), 1, 7)
        assert signature(feed_pieces(pieces, scanner_cls)) == signature(whole)


@pytest.mark.parametrize("scanner_cls", SCANNERS)
def test_linenos_are_stream_lines(scanner_cls: type[ScannerType]) -> None:
    src = "a = 1\r\n\r\nif x:\r    b = (\n1 +\n)\nc = 2\n"
    chunks = feed_pieces([src], scanner_cls)
    assert [(c.lineno, c.kind) for c in chunks] == [(1, S), (2, E), (7, S)]
    err = chunks[1].error
    assert err is not None and err.lineno == 6  # the ')' on stream line 6
    assert chunks[1].lineno + _lines(chunks[1].code) == 7


@pytest.mark.parametrize("scanner_cls", SCANNERS)
def test_declaration_flag(scanner_cls: type[ScannerType]) -> None:
    src = (
        "def f(): pass\nclass A: pass\n@d\ndef g(): pass\nasync def h(): pass\n"
        "async \\\n  def k(): pass\nx = 1\nif x:\n    def m(): pass\nimport os\n"
    )
    chunks = feed_pieces([src], scanner_cls)
    flags = [c.declaration for c in chunks if c.kind == S]
    assert flags == [True, True, True, True, True, False, False, False]
    with_await = Chunker(scanner_cls=scanner_cls, top_level_await=True)
    got = (
        with_await.feed("async with a: pass\nasync for b in c: pass\nawait d\n")
        + with_await.close()
    )
    assert [(c.kind, c.declaration) for c in got] == [(S, False)] * 3


# -- when chunks come out ------------------------------------------------------

#: (pieces, number of chunks each feed must return; the last entry is close())
TIMING: dict[str, tuple[list[str], list[int]]] = {
    "simple statement at its newline": (["x = ", "1", "\n", "y"], [0, 0, 1, 0, 1]),
    "compound waits for the next column-0 line": (
        ["if x:", "\n", "    a\n", "\n", "# c\n", "p"],
        [0, 0, 0, 0, 0, 1, 1],
    ),
    "else keeps the block open": (
        ["if x:\n    a\n", "e", "l", "s", "e", ":", "\n  b\n", "z"],
        [0, 0, 0, 0, 0, 0, 0, 1, 1],
    ),
    "elsewhere releases at the w": (["if x:\n    a\n", "else", "w", "here = 1\n"], [0, 0, 1, 1, 0]),
    "one-line compound waits": (["if x: y\n", "z"], [0, 1, 1]),
    "decorator never alone": (["@d\n", "\n", "def", " f(): pass\n", "x"], [0, 0, 0, 0, 1, 1]),
    "decorator: del is not def": (["@d\n", "de", "l x\n"], [0, 0, 2, 0]),
    "indented line is not a boundary": (["def f():\n", "    a\n", "    b\n", "c"], [0, 0, 0, 1, 1]),
    "cr waits for a possible lf": (["x = 1\r", "\n", "y"], [0, 1, 0, 1]),
    "continuation is not a newline": (["x = 1 + \\\n", "2\n"], [0, 1, 0]),
    "string newline is not a newline": (["s = '''\n", "'''\n"], [0, 1, 0]),
    "error no later than next column-0 line": (["def f(x:\n    pass\n", "x", "\n"], [0, 0, 2, 0]),
    "error in a block at the next column-0 line": (["def f():\n    x x\n", "y"], [0, 1, 1]),
    "missing bracket found at the end of the next line": (
        ["x = f(1\n", "print", "(1)", "\n"],
        [0, 0, 0, 2, 0],
    ),
}


@pytest.mark.parametrize("scanner_cls", SCANNERS)
@pytest.mark.parametrize("name", sorted(TIMING))
def test_timing(name: str, scanner_cls: type[ScannerType]) -> None:
    pieces, counts = TIMING[name]
    chunker = Chunker(scanner_cls=scanner_cls)
    got = [len(chunker.feed(p)) for p in pieces] + [len(chunker.close())]
    assert got == counts


@pytest.mark.parametrize("scanner_cls", SCANNERS)
def test_pending_and_offset(scanner_cls: type[ScannerType]) -> None:
    chunker = Chunker(scanner_cls=scanner_cls)
    assert (chunker.pending, chunker.offset) == ("", 0)
    assert chunker.feed("x = 1\nif y:\n  z") != []
    assert (chunker.pending, chunker.offset) == ("if y:\n  z", 15)
    assert chunker.feed("\nw") != []
    assert (chunker.pending, chunker.offset) == ("w", 17)
    assert [c.code for c in chunker.close()] == ["w"]
    assert (chunker.pending, chunker.offset) == ("", 17)
    assert chunker.close() == []
    with pytest.raises(ValueError):
        chunker.feed("more")


@pytest.mark.parametrize("scanner_cls", SCANNERS)
def test_keeps_working_after_errors(scanner_cls: type[ScannerType]) -> None:
    src = "".join(f"x{i} = (\n" if i % 3 == 0 else f"y{i} = {i}\n" for i in range(30))
    chunks = feed_pieces(list(src), scanner_cls)
    assert "".join(c.code for c in chunks) == src
    assert [c.kind for c in chunks] == [E if i % 3 == 0 else S for i in range(30)]


# -- flush: the source says the code unit ended ---------------------------------

#: name -> (units and FLUSH markers, [(code, kind), ...], what each FLUSH returns)
FLUSH_CASES: dict[str, tuple[list[str], list[tuple[str, str]], list[int]]] = {
    "for loop flushed at once": (
        ["x = 1\nfor i in range(3):\n    print(i)\n", FLUSH],
        [("x = 1\n", S), ("for i in range(3):\n    print(i)\n", S)],
        [1],
    ),
    "if flushed before its else": (
        ["if x:\n    a = 1\n", FLUSH, "else:\n    a = 2\n"],
        [("if x:\n    a = 1\n", S), ("else:\n    a = 2\n", E)],
        [1],
    ),
    "open bracket": (
        ["y = f(1,\n", FLUSH, "z = 2\n"],
        [("y = f(1,\n", E), ("z = 2\n", S)],
        [1],
    ),
    "open bracket mid line": (["y = [1, 2", FLUSH], [("y = [1, 2", E)], [1]),
    "open triple-quoted string": (
        ["s = '''abc\n", FLUSH, "x = 1\n"],
        [("s = '''abc\n", E), ("x = 1\n", S)],
        [1],
    ),
    "open string mid line": (
        ["s = 'abc", FLUSH, "x = 1\n"],
        [("s = 'abc", E), ("x = 1\n", S)],
        [1],
    ),
    "flush twice": (
        ["if x:\n    a\n", FLUSH, FLUSH, "b = 1\n", FLUSH, FLUSH],
        [("if x:\n    a\n", S), ("b = 1\n", S)],
        [1, 0, 0, 0],
    ),
    "flush then more code": (
        ["def f():\n    return 1\n", FLUSH, "\n\nprint(f())\nfor i in x:\n    y\n", FLUSH],
        [("def f():\n    return 1\n", S), ("\n\nprint(f())\n", S), ("for i in x:\n    y\n", S)],
        [1, 1],
    ),
    "flush at start": ([FLUSH, "x = 1\n"], [("x = 1\n", S)], [0]),
    "flush of trivia only": (["# a note\n\n", FLUSH, "x = 1\n"], [("# a note\n\nx = 1\n", S)], [0]),
    "trailing trivia stays pending": (
        ["for i in a:\n    b\n\n# note\n", FLUSH, "c\n"],
        [("for i in a:\n    b\n", S), ("\n# note\nc\n", S)],
        [1],
    ),
    "trailing trivia at the end": (
        ["x = 1\nif x:\n    y\n# tail\n", FLUSH],
        [("x = 1\n", S), ("if x:\n    y\n", S), ("# tail\n", T)],
        [1],
    ),
    "statement without its newline": (
        ["print(1)", FLUSH, "print(2)\n"],
        [("print(1)", S), ("print(2)\n", S)],
        [1],
    ),
    "a unit starts on a fresh line": (
        ["x = (1 +", FLUSH, "    2)\n"],
        [("x = (1 +", E), ("    2)\n", E)],
        [1],
    ),
    "decorator without its def": (
        ["@dec\n", FLUSH, "def f(): pass\n"],
        [("@dec\n", E), ("def f(): pass\n", S)],
        [1],
    ),
    "cr is held back for a possible lf": (
        ["if x:\r    a\r", FLUSH, "\nb\r\n"],
        [("if x:\r    a", S), ("\r\nb\r\n", S)],
        [1],
    ),
    "cr in an open string is held back too": (
        ["s = '''a\r", FLUSH, "\nb = 1\n"],
        [("s = '''a", E), ("\r\nb = 1\n", S)],
        [1],
    ),
    "escaped cr is held back": (
        ["x = 1 + \\\r", FLUSH, "\ny = 2\n"],
        [("x = 1 + \\", E), ("\r\ny = 2\n", S)],
        [1],
    ),
}


def _flush_splits(units: list[str], rng: random.Random) -> list[str]:
    """The same stream with each unit fed in random pieces, the markers kept."""
    out: list[str] = []
    for u in units:
        out += [u] if u is FLUSH else random_pieces(u, rng, 1, 5)
    return out


@pytest.mark.parametrize("scanner_cls", SCANNERS)
@pytest.mark.parametrize("name", sorted(FLUSH_CASES))
def test_flush(name: str, scanner_cls: type[ScannerType]) -> None:
    units, expected, returned = FLUSH_CASES[name]
    src = "".join(units)
    whole = feed_pieces(units, scanner_cls)
    _expect(whole, expected, src)
    chunker = Chunker(scanner_cls=scanner_cls)
    flushed = []
    for u in units:
        if u is FLUSH:
            flushed.append(len(chunker.flush()))
        else:
            chunker.feed(u)
    assert flushed == returned
    by_char = [p for u in units for p in ([u] if u is FLUSH else list(u))]
    assert signature(feed_pieces(by_char, scanner_cls)) == signature(whole)
    for seed in range(5):
        pieces = _flush_splits(units, random.Random(seed))
        assert signature(feed_pieces(pieces, scanner_cls)) == signature(whole)


@pytest.mark.parametrize("scanner_cls", SCANNERS)
def test_flush_keeps_offsets_lines_and_flags(scanner_cls: type[ScannerType]) -> None:
    chunker = Chunker(scanner_cls=scanner_cls)
    assert [c.code for c in chunker.feed("a = 1\n\ndef f():\n    return (\n        2)\n")] == [
        "a = 1\n"
    ]
    [decl] = chunker.flush()
    assert (decl.kind, decl.declaration, decl.lineno, decl.start) == (S, True, 2, 6)
    assert (chunker.pending, chunker.offset) == ("", decl.end)
    assert chunker.feed("\nx = f(\n") == []
    [err] = chunker.flush()
    assert (err.kind, err.lineno, err.start) == (E, 6, decl.end)
    assert err.error is not None and err.error.lineno == 7  # stream lines, not chunk lines
    assert [(c.kind, c.lineno) for c in chunker.feed("y = 3\n")] == [(S, 8)]
    assert chunker.close() == []
    with pytest.raises(ValueError):
        chunker.flush()


def test_first_word_rule_matches_tokenize() -> None:
    """The scanner's NAME rule is tokenize's: where the first token of a line ends."""
    from eager_rt.scanner_pure import is_name_char, is_name_start

    for line in ["else:", "elsewhere", "elseé", "else1", "else_", "else(", "else.x", "é = 1"]:
        tok = next(tokenize.generate_tokens(StringIO(line + "\n").readline))
        n = 0
        if is_name_start(line[0]):
            while n < len(line) and is_name_char(line[n]):
                n += 1
        assert tok.type == tokenize.NAME and tok.string == line[:n]


@pytest.mark.parametrize("scanner_cls", SCANNERS)
def test_nul_byte_in_a_trailing_comment_is_a_syntax_error(scanner_cls: type[ScannerType]) -> None:
    chunker = Chunker(scanner_cls=scanner_cls)
    assert [c.kind for c in chunker.feed("x = 1\n# a comment \x00 with a NUL\n")] == [S]
    (tail,) = chunker.close()
    assert tail.kind == "syntax_error" and tail.code == "# a comment \x00 with a NUL\n"
    assert tail.error is not None and "null" in tail.error.msg
    chunker = Chunker(scanner_cls=scanner_cls)
    chunker.feed("x = 1\n# only a comment\n")
    assert [c.kind for c in chunker.close()] == ["trivia"]


def _count_compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import eager_rt.chunker as chunker_module

    calls: list[str] = []

    def counting_compile(src: str, *args: object, **kwargs: object) -> object:
        calls.append(src)
        return compile(src, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(chunker_module, "compile", counting_compile, raising=False)
    return calls


@pytest.mark.parametrize("scanner_cls", SCANNERS)
def test_blank_line_confirms_a_long_block_ahead_of_time(
    scanner_cls: type[ScannerType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long block is compiled at the blank line after it, not at the deciding token."""
    calls = _count_compiles(monkeypatch)
    body = "def f():\n" + "    x = 1\n" * 100
    chunker = Chunker(scanner_cls=scanner_cls)
    assert chunker.feed(body) == []
    assert calls == []
    assert chunker.feed("\n") == []
    assert calls == [body]
    assert chunker.feed("\n") == []  # the second blank line: already confirmed
    assert calls == [body]
    (chunk,) = chunker.feed("x")  # the deciding token: only a lookup left
    assert chunk.code == body and chunk.kind == S
    assert len(calls) == 1
    # A guess that turns out wrong costs one more compile, never a wrong chunk.
    assert chunker.feed(" = 1\n" + body + "\n") != []
    assert calls[-2:] == ["\n\nx = 1\n", body]
    assert chunker.feed("    y = 2\n") == []
    (chunk,) = chunker.feed("z")
    assert chunk.code == body + "\n    y = 2\n" and chunk.kind == S
    assert calls[-1] == chunk.code
    # Within one feed the cut itself decides: no early work.
    n = len(calls)
    assert [c.kind for c in chunker.feed(" = 3\n" + body + "\n\nw = 1\n")] == [S, S, S]
    assert calls[n:] == ["z = 3\n", body, "\n\nw = 1\n"]


@pytest.mark.parametrize("scanner_cls", SCANNERS)
def test_short_blocks_are_confirmed_at_the_cut(
    scanner_cls: type[ScannerType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short block compiles in about the time speculation would take: no early work."""
    calls = _count_compiles(monkeypatch)
    chunker = Chunker(scanner_cls=scanner_cls)
    for piece in ("def f():\n    return 1\n", "\n", "\n"):
        assert chunker.feed(piece) == []
    assert calls == []
    (chunk,) = chunker.feed("x")
    assert chunk.code == "def f():\n    return 1\n"
    assert calls == [chunk.code]


@pytest.mark.parametrize("scanner_cls", SCANNERS)
def test_early_confirmation_work_stays_linear(
    scanner_cls: type[ScannerType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blank lines inside a long block: speculation is capped, chunks stay exact."""
    import eager_rt.chunker as chunker_module

    calls = _count_compiles(monkeypatch)
    for gap in ("\n", "\n\n"):
        src = "class C:\n" + ("    x = 1\n" * 10 + gap) * 400 + "y = 2\n"
        n = len(calls)
        chunks = feed_pieces(list(src), scanner_cls)
        assert [c.kind for c in chunks] == [S, S]
        assert "".join(c.code for c in chunks) == src
        limit = chunker_module._SPEC_BUDGET + chunker_module._SPEC_RESERVE + 1
        assert sum(len(c) for c in calls[n:]) <= limit * len(src)
        assert len(calls) - n > 3  # it did speculate, until the budget ran out


@pytest.mark.parametrize("scanner_cls", SCANNERS)
def test_pep8_gap_after_a_long_class_is_confirmed_ahead(
    scanner_cls: type[ScannerType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guesses at the blank lines between methods spend the budget; the reserve still pays."""
    calls = _count_compiles(monkeypatch)
    methods = "".join(f"    def m{i}(self):\n" + "        x = 1\n" * 12 + "\n" for i in range(60))
    src = "class C:\n" + methods.rstrip("\n") + "\n"
    chunker = Chunker(scanner_cls=scanner_cls)
    for i in range(0, len(src), 4):
        assert chunker.feed(src[i : i + 4]) == []
    assert chunker.feed("\n") == []
    assert calls[-1] != src  # the budget is spent: no guess at one blank line
    assert chunker.feed("\n") == []
    assert calls[-1] == src  # PEP 8's two: the reserve pays
    n = len(calls)
    (chunk,) = chunker.feed("w")
    assert chunk.code == src and chunk.kind == S
    assert len(calls) == n  # nothing left to compile at the deciding token


# -- f-strings as nested code (PEP 701, Python 3.12+) ------------------------------


def _pep701(cls: type[ScannerType]) -> type[ScannerType]:
    """The same scanner with 3.12 f-string tokenization forced on (or off)."""

    class Forced(cls):  # type: ignore[valid-type,misc]
        def __init__(self, probe: bool = True) -> None:
            super().__init__(probe, True)

    return Forced


PEP701_CASES: dict[str, tuple[str, list[str]]] = {
    "same quotes nested": ('s = f"{"a"}"\nt = 1\n', ['s = f"{"a"}"\n', "t = 1\n"]),
    "nested f-strings": (
        "s = f'{f'{f'{x}'}'}'\nt = 1\n",
        ["s = f'{f'{f'{x}'}'}'\n", "t = 1\n"],
    ),
    "quote inside a field": ('s = f"{\'"\'}"\nt\n', ['s = f"{\'"\'}"\n', "t\n"]),
    "comment and newline in a field": (
        's = f"{x  # not the end"\n}"\nt\n',
        ['s = f"{x  # not the end"\n}"\n', "t\n"],
    ),
    "multi-line field": ('s = f"{1 +\n2}"\nt\n', ['s = f"{1 +\n2}"\n', "t\n"]),
    "format spec with fields": (
        's = f"{x!r:>{w}.{p}}{y:{"#"}}"\nt\n',
        ['s = f"{x!r:>{w}.{p}}{y:{"#"}}"\n', "t\n"],
    ),
    "doubled braces": ('s = f"{{x}} {{" + f"}}"\nt\n', ['s = f"{{x}} {{" + f"}}"\n', "t\n"]),
    "named escape is not a field": (
        's = f"\\N{DIGIT ONE}{x}"\nt\n',
        ['s = f"\\N{DIGIT ONE}{x}"\n', "t\n"],
    ),
    "raw f-string backslash": (
        's = rf"\\{x}\\"" + Rf"{x}"\nt\n',
        ['s = rf"\\{x}\\"" + Rf"{x}"\n', "t\n"],
    ),
    "triple-quoted f-string": (
        's = f"""{x}\n{"""\n"""}"""\nt\n',
        ['s = f"""{x}\n{"""\n"""}"""\n', "t\n"],
    ),
    "f-string in a block": (
        'if x:\n    s = f"{"else:"}"\nelse:\n    s = f"{y!r}"\nt\n',
        ['if x:\n    s = f"{"else:"}"\nelse:\n    s = f"{y!r}"\n', "t\n"],
    ),
    "a name that is not a prefix": ('s = 1 if"{"else 2\nt\n', ['s = 1 if"{"else 2\n', "t\n"]),
    "unterminated f-string": ('s = f"{x}\nt = 1\n', ['s = f"{x}\n', "t = 1\n"]),
}


@pytest.mark.parametrize("scanner_cls", SCANNERS)
@pytest.mark.parametrize("name", sorted(PEP701_CASES))
def test_pep701_fstrings(name: str, scanner_cls: type[ScannerType]) -> None:
    src, expected = PEP701_CASES[name]
    forced = _pep701(scanner_cls)
    whole = feed_pieces([src], forced)
    assert [c.code for c in whole] == expected
    assert signature(feed_pieces(list(src), forced)) == signature(whole)
    if sys.version_info >= (3, 12):
        kinds = [c.kind for c in whole]
        assert kinds == [E if name == "unterminated f-string" else S, S]


@pytest.mark.parametrize("scanner_cls", SCANNERS)
def test_probe_only_for_the_line_that_ends_inside_brackets(scanner_cls: type[ScannerType]) -> None:
    """A column-0 line that closes its bracket is never probed later (a fuzz find)."""
    src = "x = {'a\r\nabc}\r    \r][\rdef'\n"
    whole = feed_pieces([src], scanner_cls)
    assert [c.code for c in whole] == ["x = {'a\r\nabc}\r", "    \r][\r", "def'\n"]
    for cut in range(1, len(src)):
        assert signature(feed_pieces([src[:cut], src[cut:]], scanner_cls)) == signature(whole)


# -- which scanner runs ------------------------------------------------------------

_PROBE_IMPORT = """
import sys, warnings
{block}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import eager_rt
    from eager_rt.scanner import Scanner, PureScanner
    native = eager_rt.NATIVE
chunks = eager_rt.Chunker().feed("if x:\\n    y\\nz\\n")
warned = sum("native scanner" in str(w.message) for w in caught)
print(native, Scanner is PureScanner, len(chunks), warned)
"""

_BLOCK_NATIVE = """
import importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "eager_rt._native":
            raise ImportError("blocked for the test")
        return None
sys.meta_path.insert(0, Block())
"""


def _import_report(block: str, env_pure: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != "EAGER_RT_PURE"}
    if env_pure:
        env["EAGER_RT_PURE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE_IMPORT.format(block=block)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def test_pure_forced_by_environment() -> None:
    assert _import_report("", env_pure=True) == "False True 2 0"


def test_fallback_warns_without_the_extension() -> None:
    assert _import_report(_BLOCK_NATIVE, env_pure=False) == "False True 2 1"


@pytest.mark.skipif(NativeScanner is None, reason="eager_rt._native not built")
def test_native_chosen_when_built() -> None:
    assert _import_report("", env_pure=False) == "True False 2 0"
