"""The tag extractor (``<code>…</code>``) and the tags-or-fences reader smolagents' output needs.

The reference is smolagents' own parser (``extract_code_from_text``): whatever
way the stream is cut, the code blocks read incrementally are the blocks its
regular expression finds in the finished text.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smolagents.utils import extract_code_from_text

from eager_rt.sources.fences import Segment
from eager_rt.sources.tags import CodeBlockExtractor, TagExtractor


def feed_all(extractor: TagExtractor | CodeBlockExtractor, pieces: list[str]) -> list[Segment]:
    segs: list[Segment] = []
    for piece in pieces:
        segs += extractor.feed(piece)
    return segs + extractor.close()


def blocks(segs: list[Segment]) -> list[str]:
    out: dict[int, str] = {}
    for seg in segs:
        if seg.kind == "code" and seg.block is not None:
            out[seg.block] = out.get(seg.block, "") + seg.text
    return [out[k] for k in sorted(out)]


def every_cut(text: str) -> list[str]:
    return list(text)


TEXT = "Thought: add.\n<code>\nx = 1\nprint(x)\n</code>\nObservation: fine\n<code>y = 2</code>done"


@pytest.mark.parametrize("cut", [lambda t: [t], every_cut])
def test_tags_split_prose_tags_and_code(cut: object) -> None:
    segs = feed_all(TagExtractor(), cut(TEXT))  # type: ignore[operator]
    assert blocks(segs) == ["x = 1\nprint(x)\n", "y = 2\n"]
    assert "".join(s.text for s in segs if s.kind == "prose") == (
        "Thought: add.\n\nObservation: fine\ndone"
    )
    closes = [s for s in segs if s.closes]
    assert [s.text for s in closes] == ["</code>", "</code>"]


def test_only_a_possible_tag_is_held_back() -> None:
    extractor = TagExtractor()
    assert extractor.feed("Thought <co") == [Segment("prose", "Thought ")]
    assert extractor.feed("de>\nprint(1)\n</") == [
        Segment("fence", "<code>", 0),
        Segment("code", "print(1)\n", 0),
    ]
    assert extractor.feed("cod") == []
    assert extractor.feed("x") == [Segment("code", "</codx", 0)]
    assert extractor.close() == [Segment("code", "\n", 0)]
    assert extractor.unclosed


def test_leading_whitespace_of_a_block_is_dropped_across_pieces() -> None:
    segs = feed_all(TagExtractor(), ["<code>", " \n", "  \n", "x = 1\n", "</code>"])
    assert blocks(segs) == ["x = 1\n"]


def test_unclosed_block_runs_to_the_end() -> None:
    extractor = TagExtractor()
    segs = feed_all(extractor, ["<code>\nx = 1\ny = 2"])
    assert blocks(segs) == ["x = 1\ny = 2\n"]
    assert extractor.unclosed


def test_custom_literal_tags() -> None:
    segs = feed_all(TagExtractor("[py]", "[/py]"), ["a [py]x=1[/p", "y] b"])
    assert blocks(segs) == ["x=1\n"]


def test_feed_after_close_is_refused() -> None:
    extractor = TagExtractor()
    extractor.close()
    with pytest.raises(ValueError):
        extractor.feed("x")
    with pytest.raises(ValueError):
        TagExtractor("", "</code>")


FRAGMENTS = ["<code>", "</code>", "<", "</", "code>", "x = 1\n", "print(x)", " ", "\n", "Thought"]


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.sampled_from(FRAGMENTS), max_size=14),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_blocks_equal_smolagents_parser_however_the_stream_is_cut(
    parts: list[str], cuts: list[int]
) -> None:
    text = "".join(parts)
    points = sorted({c for c in cuts if 0 < c < len(text)})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    extractor = TagExtractor()
    segs = feed_all(extractor, pieces)
    # the agent appends the closing tag to an output that does not end with it
    finished = text if not extractor.unclosed else text + "</code>"
    expected = extract_code_from_text(finished, ("<code>", "</code>"))
    code = {seg.block: "" for seg in segs if seg.kind == "fence" and not seg.closes}
    for seg in segs:
        if seg.kind == "code":
            code[seg.block] += seg.text
    assert extractor.code_blocks == len(code)
    ours = "\n\n".join(code[k].strip() for k in sorted(code))  # type: ignore[type-var]
    assert ours == (expected or "")
    # nothing but a block's leading whitespace and its closing newline is lost or invented
    assert "".join(s.text for s in segs).replace("\n", "").replace(" ", "") == text.replace(
        "\n", ""
    ).replace(" ", "")


def test_reader_takes_fences_when_they_come_first() -> None:
    reader = CodeBlockExtractor()
    segs = feed_all(reader, list("Sure.\n```python\nx = 1\n```\nthen <code>y</code>"))
    assert reader.convention == "fences"
    assert blocks(segs) == ["x = 1\n"]


def test_reader_takes_tags_when_they_come_first() -> None:
    reader = CodeBlockExtractor()
    segs = feed_all(reader, ["Sure.\n<code>\nx = 1\n</code>\n```python\ny = 2\n```\n"])
    assert reader.convention == "tags"
    assert blocks(segs) == ["x = 1\n"]


def test_reader_ignores_fences_in_other_languages_and_prose_only_streams() -> None:
    reader = CodeBlockExtractor()
    segs = feed_all(reader, ["```bash\nls\n```\n", "<code>z = 3</code>"])
    assert reader.convention == "tags"
    assert blocks(segs) == ["z = 3\n"]
    prose_only = CodeBlockExtractor()
    segs = feed_all(prose_only, ["no code ", "at all"])
    assert prose_only.convention is None
    assert "".join(s.text for s in segs) == "no code at all"
