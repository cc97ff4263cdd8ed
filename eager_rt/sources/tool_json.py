"""One string argument out of a tool call's JSON arguments, decoded as the fragments stream in.

Tool-calling models send code as ``{"code": "import pandas as pd\\n..."}``, and the
providers stream that JSON text in arbitrary fragments (``{"co``, ``de": "imp``,
``ort pandas as pd\\``, ``n...``). Waiting for the whole object and calling
``json.loads`` would throw away the overlap eager execution exists for, so this
is a small push parser of the full JSON grammar that decodes the one string
value named ``argument`` at the top level and yields its text as soon as every
character is certain. An escape or a surrogate pair cut between fragments is
held only until its last character arrives.

Every other key, nested objects, arrays, numbers and literals included, is
parsed and checked but not kept, so a malformed object fails at the exact
offset where it stops being JSON, with a precise exception type, and not later
inside the code runner.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterable, Generator, Iterable

from eager_rt.sources._close import aclose_quietly, close_quietly
from eager_rt.sources.boundary import BOUNDARY

__all__ = [
    "ArgumentNotString",
    "DuplicateArgument",
    "IncompleteJSON",
    "MalformedJSON",
    "MissingArgument",
    "StreamingArgumentDecoder",
    "ToolArgumentsError",
    "adecode_argument",
    "decode_argument",
]


class ToolArgumentsError(ValueError):
    """The arguments are not a JSON object holding the wanted string; ``pos`` is the offset."""

    def __init__(self, msg: str, pos: int) -> None:
        super().__init__(f"{msg} (at offset {pos} of the tool-call arguments)")
        self.msg = msg
        self.pos = pos


class MalformedJSON(ToolArgumentsError):
    """The text stopped being JSON at ``pos``."""


class IncompleteJSON(ToolArgumentsError):
    """The arguments ended (``close()``) before the JSON object was complete."""


class ArgumentNotString(ToolArgumentsError):
    """The named argument holds a number, object, ... rather than a string."""


class MissingArgument(ToolArgumentsError):
    """A complete object without the named argument."""


class DuplicateArgument(ToolArgumentsError):
    """The named argument appears twice; its first value was already run."""


_WS = " \t\n\r"
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")
_PLAIN = re.compile(r'[^"\\\x00-\x1f]*')
_PLAIN_LAX = re.compile(r'[^"\\]*')
_DIGITS = re.compile(r"[0-9]*")

# parser states
(
    _START,
    _VALUE,
    _OBJ_FIRST,
    _OBJ_KEY,
    _COLON,
    _OBJ_NEXT,
    _ARR_FIRST,
    _ARR_NEXT,
    _STRING,
    _ESCAPE,
    _UNICODE,
    _NUMBER,
    _LITERAL,
    _END,
) = range(14)

# what a string is for
_SKIP, _KEY, _TARGET = 0, 1, 2

# number sub-states; the ones in _NUM_FINAL may end the number
_N_MINUS, _N_ZERO, _N_INT, _N_DOT, _N_FRAC, _N_E, _N_ESIGN, _N_EXP = range(8)
_NUM_FINAL = frozenset({_N_ZERO, _N_INT, _N_FRAC, _N_EXP})


class StreamingArgumentDecoder:
    """Push parser: ``feed`` JSON fragments, get the decoded text of ``argument`` back.

    ``strict=False`` accepts raw control characters (a literal newline) inside
    strings, as ``json.loads(strict=False)`` does; some local servers emit them.
    """

    def __init__(self, argument: str = "code", *, strict: bool = True) -> None:
        self.argument = argument
        self._plain = _PLAIN if strict else _PLAIN_LAX
        self._state = _START
        self._stack: list[str] = []  # "o" / "a" for each open container
        self._offset = 0  # stream offset of the current fragment's first character
        self._role = _SKIP
        self._key: list[str] = []
        self._next_is_target = False
        self._high: int | None = None  # a high surrogate waiting for its low half
        self._hex = ""
        self._num = _N_MINUS
        self._literal = ""  # the rest of true/false/null still expected
        self._out: list[str] = []
        self.found = False  #: the argument's key was seen
        self.value_done = False  #: the argument's string is fully decoded
        self._error: ToolArgumentsError | None = None  # raised by the next call (see feed)
        self.complete = False  #: the top-level object is closed

    def feed(self, fragment: str) -> str:
        """Parse ``fragment``; return the argument text it made certain (maybe "").

        If the fragment breaks the JSON after decoding some text, that text is
        returned first and the error is raised by the next ``feed`` or ``close``:
        code the model did write is never lost to what followed it.
        """
        if self._error is not None:
            raise self._error
        try:
            self._parse(fragment)
        except ToolArgumentsError as exc:
            if not self._out:
                raise
            self._error = exc
        out = "".join(self._out)
        self._out.clear()
        return out

    def _parse(self, fragment: str) -> None:
        i, n = 0, len(fragment)
        while i < n:
            state = self._state
            if state == _STRING:
                m = self._plain.match(fragment, i)
                j = m.end() if m is not None else i  # the pattern also matches ""
                if j > i:
                    self._string_text(fragment[i:j])
                    i = j
                    if i == n:
                        break
                c = fragment[i]
                if c == '"':
                    self._end_string(i)
                elif c == "\\":
                    self._state = _ESCAPE
                else:
                    self._fail(MalformedJSON, f"raw control character {c!r} inside a string", i)
                i += 1
                continue
            c = fragment[i]
            if state == _NUMBER:
                if self._number_char(c, i):
                    i += 1
                continue  # the delimiter is handled again in the container's state
            if c in _WS and state not in (_ESCAPE, _UNICODE, _LITERAL):
                i += 1
                continue
            self._char(c, i)
            i += 1
        self._offset += n

    def close(self) -> str:
        """End of the arguments: raise unless they made a complete object holding the argument."""
        if self._error is not None:
            raise self._error
        pos = self._offset
        if not self.complete:
            where = "nothing" if pos == 0 else "an unfinished JSON object"
            raise IncompleteJSON(f"the arguments ended with {where}", pos)
        if not self.found:
            raise MissingArgument(f"no {self.argument!r} argument in the tool call", pos)
        return ""

    # -- the grammar -------------------------------------------------------------

    def _fail(self, kind: type[ToolArgumentsError], msg: str, i: int) -> None:
        raise kind(msg, self._offset + i)

    def _char(self, c: str, i: int) -> None:
        state = self._state
        if state == _ESCAPE:
            if c == "u":
                self._hex = ""
                self._state = _UNICODE
            elif c in _ESCAPES:
                self._string_text(_ESCAPES[c])
                self._state = _STRING
            else:
                self._fail(MalformedJSON, f"invalid escape \\{c}", i)
        elif state == _UNICODE:
            if c not in _HEX:
                self._fail(MalformedJSON, f"invalid \\u escape: {c!r} is not a hex digit", i)
            self._hex += c
            if len(self._hex) == 4:
                self._state = _STRING
                self._code_point(int(self._hex, 16))
        elif state == _LITERAL:
            if c != self._literal[0]:
                self._fail(MalformedJSON, f"invalid literal: unexpected {c!r}", i)
            self._literal = self._literal[1:]
            if not self._literal:
                self._value_done()
        elif state == _START:
            if c != "{":
                msg = f"tool-call arguments must be a JSON object, got {c!r}"
                self._fail(MalformedJSON, msg, i)
            self._stack.append("o")
            self._state = _OBJ_FIRST
        elif state in (_OBJ_FIRST, _OBJ_KEY):
            if c == '"':
                self._begin_string(_KEY if len(self._stack) == 1 else _SKIP, key=True)
            elif c == "}" and state == _OBJ_FIRST:
                self._close_container(i)
            else:
                self._fail(MalformedJSON, f"expected a key string, got {c!r}", i)
        elif state == _COLON:
            if c != ":":
                self._fail(MalformedJSON, f"expected ':' after a key, got {c!r}", i)
            self._state = _VALUE
        elif state in (_OBJ_NEXT, _ARR_NEXT):
            closer = "}" if state == _OBJ_NEXT else "]"
            if c == ",":
                self._state = _OBJ_KEY if state == _OBJ_NEXT else _VALUE
            elif c == closer:
                self._close_container(i)
            else:
                self._fail(MalformedJSON, f"expected ',' or {closer!r}, got {c!r}", i)
        elif state in (_VALUE, _ARR_FIRST):
            if c == "]" and state == _ARR_FIRST:
                self._close_container(i)
            else:
                self._begin_value(c, i)
        elif state == _END:
            self._fail(MalformedJSON, f"unexpected {c!r} after the end of the arguments object", i)

    def _begin_value(self, c: str, i: int) -> None:
        target = self._next_is_target
        self._next_is_target = False
        if target and c != '"':
            self._fail(ArgumentNotString, f"argument {self.argument!r} is not a string", i)
        if c == '"':
            self._begin_string(_TARGET if target else _SKIP, key=False)
        elif c in "{[":
            self._stack.append("o" if c == "{" else "a")
            self._state = _OBJ_FIRST if c == "{" else _ARR_FIRST
        elif c == "-" or "0" <= c <= "9":
            self._num = _N_MINUS if c == "-" else (_N_ZERO if c == "0" else _N_INT)
            self._state = _NUMBER
        elif c in "tfn":
            self._literal = {"t": "rue", "f": "alse", "n": "ull"}[c]
            self._state = _LITERAL
        else:
            self._fail(MalformedJSON, f"expected a JSON value, got {c!r}", i)

    def _number_char(self, c: str, i: int) -> bool:
        """Advance the number; False when ``c`` ends it (and is not consumed)."""
        s = self._num
        digit = "0" <= c <= "9"
        if digit and s in (_N_MINUS, _N_INT, _N_DOT, _N_FRAC, _N_E, _N_ESIGN, _N_EXP):
            self._num = {
                _N_MINUS: _N_ZERO if c == "0" else _N_INT,
                _N_INT: _N_INT,
                _N_DOT: _N_FRAC,
                _N_FRAC: _N_FRAC,
                _N_E: _N_EXP,
                _N_ESIGN: _N_EXP,
                _N_EXP: _N_EXP,
            }[s]
            return True
        if c == "." and s in (_N_ZERO, _N_INT):
            self._num = _N_DOT
            return True
        if c in "eE" and s in (_N_ZERO, _N_INT, _N_FRAC):
            self._num = _N_E
            return True
        if c in "+-" and s == _N_E:
            self._num = _N_ESIGN
            return True
        if s not in _NUM_FINAL:
            self._fail(MalformedJSON, f"invalid number: unexpected {c!r}", i)
        self._value_done()
        return False

    def _begin_string(self, role: int, *, key: bool) -> None:
        self._role = role
        self._string_is_key = key
        self._key.clear()
        self._state = _STRING
        if role == _TARGET:
            self.found = True

    def _string_text(self, text: str) -> None:
        if self._high is not None:
            self._flush_high()
        if self._role == _TARGET:
            self._out.append(text)
        elif self._role == _KEY:
            self._key.append(text)

    def _flush_high(self) -> None:
        high, self._high = self._high, None
        assert high is not None
        if self._role == _TARGET:
            self._out.append(chr(high))
        elif self._role == _KEY:
            self._key.append(chr(high))

    def _code_point(self, cp: int) -> None:
        if self._high is not None and 0xDC00 <= cp <= 0xDFFF:
            joined = 0x10000 + ((self._high - 0xD800) << 10) + (cp - 0xDC00)
            self._high = None
            self._string_text(chr(joined))
        elif 0xD800 <= cp <= 0xDBFF:
            if self._high is not None:
                self._flush_high()
            self._high = cp  # held until we know whether a low half follows
        else:
            self._string_text(chr(cp))

    def _end_string(self, i: int) -> None:
        if self._high is not None:
            self._flush_high()
        role = self._role
        self._role = _SKIP
        if self._string_is_key:
            self._string_is_key = False
            if role == _KEY and "".join(self._key) == self.argument:
                if self.found:
                    self._fail(DuplicateArgument, f"argument {self.argument!r} given twice", i)
                self._next_is_target = True
            self._state = _COLON
            return
        if role == _TARGET:
            self.value_done = True
        self._value_done()

    def _value_done(self) -> None:
        if not self._stack:
            self._state = _END
        else:
            self._state = _OBJ_NEXT if self._stack[-1] == "o" else _ARR_NEXT

    def _close_container(self, i: int) -> None:
        self._stack.pop()
        if not self._stack:
            self.complete = True
        self._value_done()

    _string_is_key = False


def decode_argument(
    fragments: Iterable[str], argument: str = "code", *, strict: bool = True
) -> Generator[str, None, None]:
    """Decoded text of ``argument``, piece by piece, from streamed JSON fragments.

    :data:`~eager_rt.sources.boundary.BOUNDARY` follows the fragment that
    closes the argument's string: the code is complete there, whatever the
    rest of the object holds, so the runtime can run its last statement.
    Raises a :class:`ToolArgumentsError` subclass at the first malformed
    character, or at the end if the object is incomplete or lacks the argument.
    Closing this generator closes ``fragments``.
    """
    decoder = StreamingArgumentDecoder(argument, strict=strict)
    iterator = iter(fragments)
    done = False
    try:
        for fragment in iterator:
            text = decoder.feed(fragment)
            if text:
                yield text
            if decoder.value_done and not done:
                done = True
                yield BOUNDARY
        decoder.close()
    finally:
        close_quietly(iterator)


async def adecode_argument(
    fragments: AsyncIterable[str], argument: str = "code", *, strict: bool = True
) -> AsyncGenerator[str, None]:
    """Async twin of :func:`decode_argument`."""
    decoder = StreamingArgumentDecoder(argument, strict=strict)
    iterator = aiter(fragments)
    done = False
    try:
        async for fragment in iterator:
            text = decoder.feed(fragment)
            if text:
                yield text
            if decoder.value_done and not done:
                done = True
                yield BOUNDARY
        decoder.close()
    finally:
        await aclose_quietly(iterator)
