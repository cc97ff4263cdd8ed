"""Rules that span statements: eager reports what serial reports, at that statement.

Each chunk compiles on its own, so a late ``from __future__`` import or a
module-level ``global x`` after ``x`` was used passed in eager mode while serial
execution rejects the whole program. Eager now reports the interpreter's own
error at the statement that breaks the rule, with what ran before it.
"""

from __future__ import annotations

import pytest

from eager_rt.chunker import Chunker
from eager_rt.runtime import run_stream
from eager_rt.scanner_pure import Scanner as ScannerType
from tests.chunker_helpers import SCANNERS

BROKEN = {
    "late future import": "x = 1\nprint(x)\nfrom __future__ import annotations\nprint('after')\n",
    "global after assignment": "x = 1\nprint(x)\nglobal x\nprint('after')\n",
    "global after use, nested": "print(len('ab'))\nif True:\n    global len\nprint('after')\n",
}
FINE = {
    "future import after docstring": (
        '"""doc"""\n# note\nfrom __future__ import annotations\nx = 1\n'
    ),
    "global inside a function": "def f():\n    global y\n    y = 1\n\nf()\nprint(y)\n",
    "global before use": "global z\nz = 3\nprint(z)\n",
    "the words in strings": "s = 'global x'\nt = '__future__'\nprint(s, t)\n",
}


def _serial_error(src: str) -> SyntaxError:
    with pytest.raises(SyntaxError) as info:
        compile(src, "<program>", "exec")
    return info.value


@pytest.mark.parametrize("scanner_cls", SCANNERS)
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_the_breaking_statement_is_a_syntax_error_chunk(
    name: str, scanner_cls: type[ScannerType]
) -> None:
    src = BROKEN[name]
    expected = _serial_error(src)
    for step in (1, 3, len(src)):
        chunker = Chunker(scanner_cls=scanner_cls)
        chunks = []
        for i in range(0, len(src), step):
            chunks += chunker.feed(src[i : i + step])
        chunks += chunker.close()
        errors = [c for c in chunks if c.kind == "syntax_error"]
        assert errors, f"{name}: no syntax error in {chunks}"
        first = errors[0]
        assert first.error is not None
        assert (first.error.msg, first.error.lineno) == (expected.msg, expected.lineno)
        assert all(c.kind == "statement" for c in chunks[: first.index])


@pytest.mark.parametrize("scanner_cls", SCANNERS)
@pytest.mark.parametrize("name", sorted(FINE))
def test_programs_serial_accepts_stay_valid(name: str, scanner_cls: type[ScannerType]) -> None:
    src = FINE[name]
    compile(src, "<program>", "exec")
    chunker = Chunker(scanner_cls=scanner_cls)
    chunks = chunker.feed(src) + chunker.close()
    assert all(c.kind in ("statement", "trivia") for c in chunks)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_eager_reports_what_serial_reports(name: str) -> None:
    src = BROKEN[name]
    serial = run_stream([src], backend="local", mode="serial", timeout=60)
    eager = run_stream(list(src), backend="local", mode="eager", timeout=60)
    expected = _serial_error(src)
    assert eager.status == "syntax_error"
    assert serial.error is not None and eager.error is not None
    assert serial.error.ename == eager.error.ename == "SyntaxError"
    assert eager.error.lineno == serial.error.lineno == expected.lineno
    assert expected.msg in eager.error.evalue and expected.msg in serial.error.evalue
    assert serial.stdout == ""  # serial rejects the program before running any of it
    assert "after" not in eager.stdout  # nothing from the breaking statement on ran
    assert eager.error.statement == serial.error.statement
    assert eager.error.statement is not None
    assert eager.error.code_before == src[: src.index(eager.error.statement)]
