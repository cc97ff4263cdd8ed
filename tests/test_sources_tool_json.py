"""The streaming decoder of one string argument of a tool call's JSON arguments."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eager_rt.sources.boundary import is_boundary
from eager_rt.sources.tool_json import (
    ArgumentNotString,
    DuplicateArgument,
    IncompleteJSON,
    MalformedJSON,
    MissingArgument,
    StreamingArgumentDecoder,
    ToolArgumentsError,
    adecode_argument,
    decode_argument,
)


def decode(fragments: list[str], argument: str = "code", strict: bool = True) -> str:
    return "".join(decode_argument(fragments, argument, strict=strict))


def split_at(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c for c in cuts if 0 < c < len(text)})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


# -- any JSON encoding of any string -------------------------------------------------


def _escape_char(c: str, choice: int) -> str:
    """One of the valid JSON spellings of ``c`` (``choice`` picks which)."""
    cp = ord(c)
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
             "\t": "\\t", "/": "\\/"}
    options: list[str] = []
    if c in short:
        options.append(short[c])
    if cp >= 0x20 and c not in '"\\':
        options.append(c)
    if cp < 0x10000:
        options.append(f"\\u{cp:04x}")
        options.append(f"\\u{cp:04X}")
    else:
        v = cp - 0x10000
        high, low = 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)
        options.append(f"\\u{high:04x}\\u{low:04x}")
    return options[choice % len(options)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8,
)


@st.composite
def encodings(draw: st.DrawFn) -> tuple[str, str]:
    """(JSON arguments text, the string its "code" argument holds)."""
    value = draw(st.text(max_size=40))
    choices = draw(st.lists(st.integers(0, 3), min_size=len(value), max_size=len(value)))
    encoded = '"' + "".join(_escape_char(c, k) for c, k in zip(value, choices, strict=True)) + '"'
    others = draw(st.dictionaries(st.text(max_size=6).filter(lambda k: k != "code"), json_values,
                                  max_size=3))
    ws = st.sampled_from(["", " ", "\n", "\t ", "\r\n  "])
    members = [json.dumps(k) + draw(ws) + ":" + draw(ws) + json.dumps(v, ensure_ascii=draw(
        st.booleans())) for k, v in others.items()]
    position = draw(st.integers(0, len(members)))
    members.insert(position, '"code"' + draw(ws) + ":" + draw(ws) + encoded)
    sep = draw(ws)
    text = draw(ws) + "{" + draw(ws) + ("," + sep).join(members) + draw(ws) + "}" + draw(ws)
    return text, value


@settings(max_examples=400, deadline=None)
@given(enc=encodings(), cuts=st.lists(st.integers(0, 400), max_size=30))
def test_any_split_of_any_encoding_decodes_to_the_string(
    enc: tuple[str, str], cuts: list[int]
) -> None:
    text, value = enc
    assert json.loads(text)["code"] == value  # the generator makes valid JSON
    decoder = StreamingArgumentDecoder("code")
    got = ""
    for fragment in split_at(text, cuts):
        got += decoder.feed(fragment)
        assert value.startswith(got)  # never a character that is not certain
    decoder.close()
    assert got == value
    assert decoder.complete and decoder.found and decoder.value_done


@settings(max_examples=200, deadline=None)
@given(value=st.text(), ensure_ascii=st.booleans())
def test_one_character_at_a_time(value: str, ensure_ascii: bool) -> None:
    text = json.dumps({"code": value}, ensure_ascii=ensure_ascii)
    assert decode(list(text)) == value


# -- differential: against json.loads on corrupted documents -------------------------


def _reference(text: str) -> str | None:
    """What a strict, standard JSON reading makes of it: the code string, or None."""

    def no_constants(name: str) -> Any:
        raise ValueError(name)

    seen: list[list[tuple[str, Any]]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen.append(items)
        return dict(items)

    try:
        doc = json.loads(text, parse_constant=no_constants, object_pairs_hook=pairs)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("code"), str):
        return None
    if [k for k, _ in seen[-1]].count("code") > 1:
        return None  # we refuse duplicates; the reference keeps the last
    code: str = doc["code"]
    return code


@settings(max_examples=400, deadline=None)
@given(
    enc=encodings(),
    edits=st.lists(
        st.tuples(st.integers(0, 400), st.sampled_from(['"', "\\", "{", "}", ",", ":", "", "x",
                                                         "1", "]", "[", " ", "u", "\n", "-"])),
        min_size=1, max_size=3,
    ),
    cuts=st.lists(st.integers(0, 400), max_size=10),
)
def test_corrupted_documents_agree_with_json_loads(
    enc: tuple[str, str], edits: list[tuple[int, str]], cuts: list[int]
) -> None:
    text, _ = enc
    for pos, insert in edits:
        pos %= len(text) + 1
        tail = text[pos:] if insert else text[pos + 1 :]  # "" deletes a character
        text = text[:pos] + insert + tail
    expected = _reference(text)
    try:
        got = decode(split_at(text, cuts))
    except ToolArgumentsError as exc:
        assert expected is None, f"rejected valid JSON: {exc}"
        assert 0 <= exc.pos <= len(text)
        return
    assert got == expected


# -- escapes, surrogates, keys --------------------------------------------------------


def test_every_escape() -> None:
    text = r'{"code": "a\nb\tc\"d\\e\/f\bg\fh\ri\u00e9j"}'
    assert decode([text]) == 'a\nb\tc"d\\e/f\bg\fh\ri\u00e9j'


@pytest.mark.parametrize("cut", range(1, len(r'{"code":"\ud83d\ude00!"}')))
def test_surrogate_pair_split_anywhere(cut: int) -> None:
    text = r'{"code":"\ud83d\ude00!"}'
    assert decode([text[:cut], text[cut:]]) == "\U0001f600!"


def test_high_surrogate_is_held_until_its_partner_arrives() -> None:
    decoder = StreamingArgumentDecoder()
    assert decoder.feed('{"code": "a\\ud83d') == "a"
    assert decoder.feed("\\ude") == ""
    assert decoder.feed("00b") == "\U0001f600b"


def test_lone_surrogates_pass_through_like_json_loads() -> None:
    text = r'{"code": "\ud83d x \ude00"}'
    assert decode([text]) == json.loads(text)["code"]


def test_argument_after_other_keys_with_nested_values() -> None:
    text = json.dumps({"lang": "py", "opts": {"code": "decoy", "l": [1, {"code": 2}, "]}"]},
                      "n": -1.5e3, "t": True, "z": None, "code": "real"})
    assert decode(split_at(text, [5, 17, 30])) == "real"


def test_escaped_key_is_matched() -> None:
    assert decode(['{"\\u0063ode": "x"}']) == "x"


def test_other_argument_name() -> None:
    assert decode(['{"code": "no", "script": "yes"}'], argument="script") == "yes"


def test_lax_mode_accepts_raw_newlines() -> None:
    assert decode(['{"code": "a\nb"}'], strict=False) == "a\nb"
    with pytest.raises(MalformedJSON):
        decode(['{"code": "a\nb"}'])


def test_text_is_yielded_as_fragments_arrive() -> None:
    decoder = StreamingArgumentDecoder()
    assert decoder.feed('{"code": "impo') == "impo"
    assert decoder.feed("rt os\\") == "rt os"
    assert decoder.feed("n") == "\n"
    assert not decoder.value_done
    assert decoder.feed('"') == ""
    assert decoder.value_done and not decoder.complete
    decoder.feed("}")
    assert decoder.complete


# -- errors: precise type and position --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "error", "pos"),
    [
        ('{"code": 42}', ArgumentNotString, 9),
        ('{"code": ["x"]}', ArgumentNotString, 9),
        ("[1, 2]", MalformedJSON, 0),
        ('{"code": "x",}', MalformedJSON, 13),
        ('{"code": "x"} extra', MalformedJSON, 14),
        ('{"code" "x"}', MalformedJSON, 8),
        ('{"a": 01}', MalformedJSON, 7),
        ('{"a": 1.}', MalformedJSON, 8),
        ('{"a": tru}', MalformedJSON, 9),
        ('{"a": NaN}', MalformedJSON, 6),
        ('{"code": "\\x"}', MalformedJSON, 11),
        ('{"code": "\\u12G4"}', MalformedJSON, 14),
        ('{"code": "x", "code": "y"}', DuplicateArgument, 19),
        ('{"a": [1, 2}', MalformedJSON, 11),
    ],
)
def test_malformed_arguments_fail_at_the_right_offset(
    text: str, error: type[ToolArgumentsError], pos: int
) -> None:
    with pytest.raises(error) as info:
        decode(split_at(text, [3, 9]))
    assert info.value.pos == pos
    assert f"offset {pos}" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_incomplete_and_missing_are_reported_at_close() -> None:
    with pytest.raises(IncompleteJSON) as info:
        decode(['{"code": "print(1)'])
    assert info.value.pos == len('{"code": "print(1)')
    with pytest.raises(IncompleteJSON):
        decode([])
    with pytest.raises(MissingArgument):
        decode(['{"other": "x"}'])


def test_code_before_the_error_was_already_yielded() -> None:
    got: list[str] = []
    with pytest.raises(MalformedJSON):
        for piece in decode_argument(['{"code": "a = 1\\n', 'b"', " oops"]):
            got.append(piece)
    assert "".join(got) == "a = 1\nb"


def test_closing_early_closes_the_fragment_source() -> None:
    closed: list[bool] = []

    def fragments() -> Iterator[str]:
        try:
            yield '{"code": "a'
            yield "b"
            raise AssertionError("pulled after close")
        finally:
            closed.append(True)

    gen = decode_argument(fragments())
    assert next(gen) == "a"
    gen.close()
    assert closed == [True]


@pytest.mark.anyio
async def test_async_twin() -> None:
    async def fragments() -> AsyncIterator[str]:
        for f in ['{"x": [1, {"y": "}"}], "co', 'de": "print(\\"', 'hi\\")"}']:
            yield f

    assert "".join([p async for p in adecode_argument(fragments())]) == 'print("hi")'


_CALL = ['{"code": "for i in x:\\n', '    y\\n"', ', "note": "a long', ' explanation"}']


def test_boundary_right_after_the_closing_quote() -> None:
    log: list[str] = []

    def fragments() -> Iterator[str]:
        for f in _CALL:
            log.append(f"in {f}")
            yield f

    for piece in decode_argument(fragments()):
        log.append("BOUNDARY" if is_boundary(piece) else f"out {piece}")
    assert log == [
        f"in {_CALL[0]}",
        "out for i in x:\n",
        f"in {_CALL[1]}",
        "out     y\n",
        "BOUNDARY",  # before the rest of the object is pulled
        f"in {_CALL[2]}",
        f"in {_CALL[3]}",
    ]


def test_one_boundary_even_when_the_value_ends_in_the_first_fragment() -> None:
    got = list(decode_argument(['{"code": "x = 1", "a": "b"}', "  "]))
    assert got == ["x = 1", ""] and [is_boundary(p) for p in got] == [False, True]


@pytest.mark.anyio
async def test_async_twin_yields_the_boundary() -> None:
    async def fragments() -> AsyncIterator[str]:
        for f in _CALL:
            yield f

    got = [p async for p in adecode_argument(fragments())]
    assert [is_boundary(p) for p in got] == [False, False, True]


def test_code_before_broken_json_is_returned_and_the_error_follows() -> None:
    """``x)\\n", oops}``: the code ends, then the JSON breaks, in one fragment."""
    decoder = StreamingArgumentDecoder("code")
    assert decoder.feed('{"code": "print(') == "print("
    assert decoder.feed('x)\\n", oops}') == "x)\n"
    assert decoder.value_done
    with pytest.raises(MalformedJSON):
        decoder.close()


def test_broken_json_with_nothing_decoded_raises_at_once() -> None:
    decoder = StreamingArgumentDecoder("code")
    assert decoder.feed('{"code": "a = 1\\n"') == "a = 1\n"
    with pytest.raises(MalformedJSON):
        decoder.feed(" oops")
