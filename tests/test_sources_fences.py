"""The markdown-fence extractor: what is code, what is prose, and how early code is released."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eager_rt.sources.boundary import BOUNDARY, is_boundary
from eager_rt.sources.fences import (
    FenceExtractor,
    Segment,
    acode_from_fences,
    code_from_fences,
)


def split_run(text: str, cuts: list[int] | None = None) -> tuple[list[Segment], FenceExtractor]:
    extractor = FenceExtractor()
    points = sorted(set(cuts or [])) if cuts is not None else list(range(1, len(text)))
    segs: list[Segment] = []
    prev = 0
    for p in [*points, len(text)]:
        if p <= prev or p > len(text):
            continue
        segs += extractor.feed(text[prev:p])
        prev = p
    segs += extractor.close()
    return segs, extractor


def kind_text(segs: list[Segment], kind: str) -> str:
    return "".join(s.text for s in segs if s.kind == kind)


DOC = (
    "Let me load the data first.\n"
    "```python\n"
    "import math\n"
    "x = math.sqrt(16)\n"
    "```\n"
    "Now print it:\n"
    "```py\n"
    "print(x)\n"
    "```\n"
    "And in a shell you would run:\n"
    "```bash\n"
    "python script.py\n"
    "```\n"
    "~~~\n"
    "y = x + 1\n"
    "~~~\n"
    "That's all.\n"
)


def test_prose_code_and_other_blocks_are_separated() -> None:
    segs, extractor = split_run(DOC, [])
    assert kind_text(segs, "code") == "import math\nx = math.sqrt(16)\nprint(x)\ny = x + 1\n"
    assert kind_text(segs, "other") == "python script.py\n"
    assert kind_text(segs, "prose") == (
        "Let me load the data first.\nNow print it:\nAnd in a shell you would run:\nThat's all.\n"
    )
    assert kind_text(segs, "fence").count("\n") == 8
    assert extractor.code_blocks == 3
    assert not extractor.unclosed
    # nothing is lost: the segments give the document back
    assert "".join(s.text for s in segs) == DOC


def test_one_character_at_a_time_gives_the_same_split() -> None:
    whole, _ = split_run(DOC, [])
    char_by_char, _ = split_run(DOC)
    for kind in ("code", "prose", "other", "fence"):
        assert kind_text(char_by_char, kind) == kind_text(whole, kind)


def test_block_indices_follow_the_document() -> None:
    segs, _ = split_run(DOC, [])
    code_blocks = [s.block for s in segs if s.kind == "code"]
    assert code_blocks == [0, 1, 3]
    assert {s.block for s in segs if s.kind == "other"} == {2}


@pytest.mark.parametrize(
    "pieces",
    [
        ["``", "`python\n", "a = 1\n", "``", "`\n"],
        ["`", "`", "`", "p", "y", "\n", "a = 1\n", "`", "``", "\n"],
        ["```pyt", "hon\na = ", "1\n`", "``"],
        ["```\na = 1\n```"],
    ],
)
def test_fence_markers_split_across_tokens(pieces: list[str]) -> None:
    assert "".join(code_from_fences(pieces)) == "a = 1\n"


def test_code_is_released_before_its_line_ends() -> None:
    extractor = FenceExtractor()
    assert [s.kind for s in extractor.feed("Intro\n```python\n")] == ["prose", "fence"]
    assert extractor.feed("x = ") == [Segment("code", "x = ", 0)]
    assert extractor.feed("1") == [Segment("code", "1", 0)]
    assert extractor.feed("\n") == [Segment("code", "\n", 0)]


def test_only_a_possible_closing_fence_is_held_back() -> None:
    extractor = FenceExtractor()
    extractor.feed("```python\n")
    assert extractor.feed("``") == []  # could still be the closing fence
    assert extractor.feed("x") == [Segment("code", "``x", 0)]  # no longer can
    assert extractor.feed("\n  ") == [Segment("code", "\n", 0)]
    assert extractor.feed("y") == [Segment("code", "  y", 0)]


def test_a_long_line_is_never_held() -> None:
    extractor = FenceExtractor()
    extractor.feed("```python\ns = '")
    for _ in range(2000):
        assert extractor.feed("a") == [Segment("code", "a", 0)]


def test_unclosed_fence_runs_to_the_end_of_the_stream() -> None:
    segs, extractor = split_run("Here:\n```python\nprint(1)\nprint(2)", [3, 9, 20])
    assert kind_text(segs, "code") == "print(1)\nprint(2)"
    assert extractor.unclosed


def test_unclosed_fence_with_a_held_partial_marker() -> None:
    segs, extractor = split_run("```python\nprint(1)\n``", [])
    assert kind_text(segs, "code") == "print(1)\n``"
    assert extractor.unclosed


def test_closing_fence_without_newline_at_end_of_stream() -> None:
    segs, extractor = split_run("```python\nprint(1)\n```", [])
    assert kind_text(segs, "code") == "print(1)\n"
    assert not extractor.unclosed


def test_longer_fence_protects_an_inner_shorter_one() -> None:
    doc = "````python\ns = '''\n```\n'''\n````\n"
    segs, _ = split_run(doc, [])
    assert kind_text(segs, "code") == "s = '''\n```\n'''\n"


def test_tilde_block_is_not_closed_by_backticks() -> None:
    doc = "~~~python\na = 1\n```\nb = 2\n~~~\n"
    segs, _ = split_run(doc, [])
    assert kind_text(segs, "code") == "a = 1\n```\nb = 2\n"


def test_closing_fence_may_have_trailing_blanks_but_no_text() -> None:
    doc = "```python\na = 1\n``` x\nb = 2\n```  \t\nprose\n"
    segs, _ = split_run(doc, [])
    assert kind_text(segs, "code") == "a = 1\n``` x\nb = 2\n"
    assert kind_text(segs, "prose") == "prose\n"


def test_inline_backticks_in_prose_are_not_a_fence() -> None:
    doc = "Use ```print()``` here.\n```print()``` too\nx = 1\n"
    segs, _ = split_run(doc, [])
    assert kind_text(segs, "code") == ""
    assert kind_text(segs, "prose") == doc


def test_four_space_indent_is_not_a_fence() -> None:
    segs, _ = split_run("    ```python\n    x = 1\n    ```\n", [])
    assert kind_text(segs, "code") == ""


def test_indented_fence_strips_its_indentation_from_the_block() -> None:
    doc = "1. Step one:\n   ```python\n   for i in range(2):\n       print(i)\n   ```\n"
    segs, _ = split_run(doc, [])
    assert kind_text(segs, "code") == "for i in range(2):\n    print(i)\n"


@pytest.mark.parametrize("info", ["python", "py", "Python3", "", "python title='x.py'"])
def test_python_info_strings_run(info: str) -> None:
    assert "".join(code_from_fences([f"```{info}\nz = 3\n```\n"])) == "z = 3\n"


@pytest.mark.parametrize("info", ["bash", "json", "text", "output", "{r}", "{=html}", "js:app.js"])
def test_other_languages_do_not_run(info: str) -> None:
    segs, _ = split_run(f"```{info}\nz = 3\n```\n", [])
    assert kind_text(segs, "code") == ""
    assert kind_text(segs, "other") == "z = 3\n"


def test_languages_are_configurable() -> None:
    extractor = FenceExtractor(languages={"python"})
    segs = extractor.feed("```\nbare\n```\n```python\nrun\n```\n") + extractor.close()
    assert kind_text(segs, "code") == "run\n"


def test_feed_after_close_is_refused() -> None:
    extractor = FenceExtractor()
    extractor.close()
    with pytest.raises(ValueError):
        extractor.feed("x")


def test_closing_the_generator_closes_the_upstream_source() -> None:
    closed: list[bool] = []

    def upstream() -> Iterator[str]:
        try:
            yield "```python\n"
            yield "a = 1\n"
            yield "b = 2\n"
            raise AssertionError("pulled after close")
        finally:
            closed.append(True)

    gen = code_from_fences(upstream())
    assert next(gen) == "a = 1\n"
    gen.close()
    assert closed == [True]


def test_prose_reaches_the_callback_in_order() -> None:
    seen: list[tuple[str, str]] = []
    code = "".join(
        code_from_fences(["Hi\n```py", "thon\nx=1\n```\nBye\n"],
                         on_segment=lambda s: seen.append((s.kind, s.text)))
    )
    assert code == "x=1\n"
    assert [k for k, _ in seen] == ["prose", "fence", "code", "fence", "prose"]


@pytest.mark.anyio
async def test_async_twin_matches_and_closes_upstream() -> None:
    closed: list[bool] = []

    async def upstream() -> AsyncIterator[str]:
        try:
            for piece in ["Intro\n", "```python\n", "a = 1\n", "```\n", "b\n", "```\nc = 2\n"]:
                yield piece
        finally:
            closed.append(True)

    got = [piece async for piece in acode_from_fences(upstream())]
    assert "".join(got) == "a = 1\nc = 2\n"
    assert closed == [True]


# -- where a code unit ends ----------------------------------------------------------

_UNITS = [
    "Intro\n```python\n",
    "for i in x:\n    y\n",
    "```",
    "\n",
    "Some prose.\n",
    "```bash\nls\n```\n",
    "Then:\n```\nz = 1\n```\n",
    "More prose.\n```py\nw = 2\n",
]


def test_boundary_follows_each_closing_fence_of_a_block_that_runs() -> None:
    log: list[tuple[str, str]] = []

    def upstream() -> Iterator[str]:
        for piece in _UNITS:
            log.append(("in", piece))
            yield piece

    for piece in code_from_fences(upstream()):
        log.append(("out", "BOUNDARY" if is_boundary(piece) else piece))
    outs = [p for k, p in log if k == "out"]
    # not after the bash block's fence, not at an opening fence, not at an unclosed block's end
    assert outs == ["for i in x:\n    y\n", "BOUNDARY", "z = 1\n", "BOUNDARY", "w = 2\n"]
    # the marker comes as soon as the closing fence line is certain: before the prose is pulled
    first = log.index(("out", "BOUNDARY"))
    assert log[first - 1] == ("in", "\n") and log[first + 1] == ("in", "Some prose.\n")


def test_closing_fence_segments_say_they_close_a_runnable_block() -> None:
    segs, _ = split_run("".join(_UNITS))
    closing = [(s.text, s.block) for s in segs if s.closes]
    assert closing == [("```\n", 0), ("```\n", 2)]
    assert Segment("fence", "```\n", 0, closes=True) == Segment("fence", "```\n", 0)


@pytest.mark.anyio
async def test_async_twin_yields_the_same_boundaries() -> None:
    async def upstream() -> AsyncIterator[str]:
        for piece in _UNITS:
            yield piece

    got = [piece async for piece in acode_from_fences(upstream())]
    want = list(code_from_fences(_UNITS))
    assert got == want and [is_boundary(p) for p in got] == [is_boundary(p) for p in want]
    assert got.count(BOUNDARY) == 2 and sum(map(is_boundary, got)) == 2


# -- property: against a line-based reference on generated documents ---------------

_SAFE_LINE = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\n\r`~"),
    max_size=12,
)
# a code line that starts visibly: leading blanks are dedented, a leading '>>> ' is a prompt
_CODE_LINE = st.builds(
    str.__add__,
    st.characters(codec="utf-8", exclude_characters="\n\r`~ \t>"),
    _SAFE_LINE,
)


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, str]:
    """A markdown document and the code of its runnable blocks, built side by side."""
    parts: list[str] = []
    code: list[str] = []
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            parts.append(draw(_SAFE_LINE) + "\n")
            continue
        char = draw(st.sampled_from("`~"))
        n = draw(st.integers(3, 5))
        lang = draw(st.sampled_from(["python", "py", "", "bash", "Python"]))
        indent = draw(st.integers(0, 3))
        parts.append(" " * indent + char * n + lang + "\n")
        lines = draw(st.lists(_CODE_LINE, max_size=4))
        # lines that look like shorter or other-char fences stay content
        if draw(st.booleans()):
            lines.append(("~" if char == "`" else "`") * 3)
        if n > 3 and draw(st.booleans()):
            lines.append(char * (n - 1))
        body = "".join(line + "\n" for line in lines)
        parts.append("".join(" " * indent + line + "\n" for line in lines))
        if lang.lower() in ("python", "py", ""):
            code.append(body)
        parts.append(" " * draw(st.integers(0, 3)) + char * draw(st.integers(n, n + 2)) + "\n")
    return "".join(parts), "".join(code)


@settings(max_examples=300, deadline=None)
@given(doc=documents(), data=st.data())
def test_any_split_of_any_document_gives_its_code(
    doc: tuple[str, str], data: st.DataObject
) -> None:
    text, expected = doc
    cuts = data.draw(st.lists(st.integers(0, max(len(text), 1)), max_size=25))
    segs, extractor = split_run(text, cuts)
    assert kind_text(segs, "code") == expected
    assert not extractor.unclosed


# -- property: messy documents split the same however the stream is cut -------------------

_MESSY_LINES = st.sampled_from([
    "Some prose.", "", "1. First step:", "- a bullet", "   - nested bullet", "10) ten",
    "```python", "```py title=x.py", "```{python}", "```python:a.py", "    ```python", "  ```",
    "```", "````", "~~~", "```bash", "      ```py",
    "x = 1", "    x = 1", "        y = x", "\tz = 2", ">>> a = 1", "... b", "...", ">>>", "3",
    "``not a fence", "``` trailing", "> quote",
])


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_MESSY_LINES, max_size=14), crlf=st.booleans(), data=st.data())
def test_any_cut_of_a_messy_document_gives_the_same_segments(
    lines: list[str], crlf: bool, data: st.DataObject
) -> None:
    end = "\r\n" if crlf else "\n"
    text = "".join(line + end for line in lines)
    whole, _ = split_run(text, [])
    cuts = data.draw(st.lists(st.integers(0, max(len(text), 1)), max_size=30))
    cut, _ = split_run(text, cuts)
    one_by_one, _ = split_run(text)
    for kind in ("code", "prose", "other", "fence"):
        assert kind_text(cut, kind) == kind_text(one_by_one, kind) == kind_text(whole, kind), kind
    # what is removed from a block's lines is only indentation and prompts
    kept = "".join(s.text for s in whole)
    assert len(kept) <= len(text)
