"""Code out of markdown fences, as a prose stream arrives: the first stage for chatty models.

A model asked for Python usually answers in markdown: a sentence, a fenced block,
more prose, maybe another block. The runtime's chunker wants only the code, and
wants it *now*, so this module splits the stream incrementally. Text inside a
Python block is released the moment it cannot be a closing fence any more; the
only thing ever held back is the start of a line that still looks like one
(a few backticks and spaces), or, inside a block that runs, a line's leading
whitespace and REPL prompt until its first visible character. Prose, fence
lines and blocks in other languages come out separately so a front end can
print them live.

Fences follow CommonMark where it matters for model output: a fence line is up
to three spaces (more inside a list item: up to three past the item's content
column), then three or more backticks or tildes; a backtick fence's info string
holds no backtick (so inline ```` ``` ```` in prose is not a fence); a block
is closed only by the same character, at least as many times, followed by
nothing but blanks (a ``\\r\\n`` line end included); the indentation of an
indented opening fence is removed from the block's lines.  An unclosed block
runs to the end of the stream.  The closing fence of a block that runs is
marked (``Segment.closes``): the source generators yield
:data:`~eager_rt.sources.boundary.BOUNDARY` there.

What real models write, and how a block that runs is read:

* the language is the info string's first word as renderers read it:
  ``python title=x``, ``python:squares.py`` (a file name after a colon),
  ``{python}`` and ``{.python}`` (attribute braces) all mean ``python``;
* code indented as a whole inside a column-0 fence is dedented: the first code
  line's indentation is removed from every line (as much of it as a line has);
* a ``>>>``/``...`` REPL transcript (a block whose first line starts with
  ``>>> ``) runs its statements with the prompts removed; the echoed output
  lines between them are not code (they come out as ``other``).

Each call to :meth:`FenceExtractor.feed` costs time proportional to the new text.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from eager_rt.sources._close import aclose_quietly, close_quietly
from eager_rt.sources.boundary import BOUNDARY

__all__ = [
    "PYTHON_LANGUAGES",
    "FenceExtractor",
    "Segment",
    "SegmentKind",
    "acode_from_fences",
    "code_from_fences",
    "info_language",
]

#: info-string languages whose blocks are run (compared lowercased); "" is a bare fence;
#: ``pycon`` is the name renderers give a Python console transcript
PYTHON_LANGUAGES: frozenset[str] = frozenset({"python", "py", "python3", "py3", "pycon", ""})

#: ``prose``: text outside any block; ``fence``: an opening or closing fence line;
#: ``code``: content of a block that runs; ``other``: content of a block in another
#: language, or the echoed output of a REPL transcript
SegmentKind = Literal["prose", "fence", "code", "other"]


@dataclass(frozen=True, slots=True)
class Segment:
    kind: SegmentKind
    text: str
    block: int | None = None  #: 0-based index of the fenced block (any language), None for prose
    #: the closing fence of a block that runs: its code unit is over (not part of equality)
    closes: bool = field(default=False, compare=False)


# the language word of an info string: after optional attribute braces and a class dot,
# up to a blank, a brace, a colon (``python:file.py``) or a comma (``{python, echo=F}``)
_LANGUAGE = re.compile(r"\{?[ \t]*\.?([^\s{}:,]*)")
# a list item's start: indentation, marker, and the blanks before its content
_LIST_ITEM = re.compile(r"( *)([-+*]|[0-9]{1,9}[.)])(?:( +)(\S?)|$)")
_HEAD_MAX = 64  # characters of a prose line kept to recognise a list item


def info_language(info: str) -> str:
    """The language an info string names, lowercased, the way common renderers read it."""
    match = _LANGUAGE.match(info.strip())
    return match.group(1).lower() if match else ""


# line-start phases: leading whitespace, a fence marker, what follows a marker, a REPL prompt
_WS, _MARKER, _REST, _PROMPT = 0, 1, 2, 3
_UNDECIDED, _CONTENT = 0, 1
_PS1, _PS2 = ">>>", "..."


class FenceExtractor:
    """Incremental splitter of a markdown stream into prose, fences and code.

    ``feed`` returns the segments that became certain; ``close`` flushes the
    rest at the end of the stream. Concatenating every segment's text gives back
    the input, except what is removed from the lines of a block: its fence's
    indentation, the code's own common indentation, and REPL prompts.
    """

    def __init__(self, languages: Iterable[str] = PYTHON_LANGUAGES) -> None:
        self._languages = frozenset(lang.lower() for lang in languages)
        # the open block
        self._in_block = False
        self._run = False  # the open block is one we run
        self._fence_char = ""
        self._fence_len = 0
        self._fence_indent = 0  # spaces removed from each of its lines (CommonMark)
        self._fence_base = 0  # content column of the list item the block sits in
        self._dedent: str | None = None  # the first code line's own indentation
        self._repl: bool | None = None  # a REPL transcript (None: no code line yet)
        self._blocks = 0  # blocks opened so far
        self._code_blocks = 0
        # list items open in the prose (content columns, innermost last)
        self._lists: list[int] = []
        self._after_blank = False
        self._head: str | None = ""  # start of the current prose line (None: not a prose line)
        # the current line
        self._line_start = True
        self._line_kind: SegmentKind = "prose"  # where the rest of the line goes
        self._held: list[str] = []  # start of the line, while undecided
        self._phase = _WS
        self._indent = 0  # leading spaces
        self._ws = ""  # leading whitespace
        self._fence_ok = True  # the leading whitespace still allows a fence line
        self._mchar = ""
        self._mlen = 0
        self._prompt = ""
        self._out: list[Segment] = []
        self._closed = False
        self.unclosed = False  #: the stream ended inside a block

    @property
    def in_block(self) -> bool:
        return self._in_block

    @property
    def code_blocks(self) -> int:
        """How many runnable blocks were opened so far."""
        return self._code_blocks

    def feed(self, text: str) -> list[Segment]:
        if self._closed:
            raise ValueError("feed() after close()")
        i, n = 0, len(text)
        while i < n:
            if not self._line_start:
                j = text.find("\n", i)
                end = n if j < 0 else j + 1
                self._emit(self._line_kind, text[i:end])
                i = end
                if j >= 0:
                    self._line_done()
                continue
            i = self._scan_line_start(text, i)
        return self._take()

    def close(self) -> list[Segment]:
        """End of stream: settle the held line, note an unclosed block."""
        if self._closed:
            return []
        self._closed = True
        if self._held:
            self._settle_line()
        if self._in_block:
            self.unclosed = True
        return self._take()

    # -- line-start scanning -------------------------------------------------

    def _scan_line_start(self, text: str, i: int) -> int:
        """Advance over the held line start; return where scanning stopped."""
        n = len(text)
        start = i
        while i < n:
            c = text[i]
            if c == "\n":
                self._held.append(text[start : i + 1])
                self._settle_line()
                self._line_done()
                return i + 1
            if self._step(c) == _CONTENT:
                self._held.append(text[start : i + 1])
                self._release()
                self._line_start = False
                return i + 1
            if self._phase == _REST and not self._in_block:
                # an opening fence's info string: nothing in it can change the verdict
                # except a backtick (for backtick fences) or the newline; jump ahead
                j = text.find("\n", i + 1)
                stop = n if j < 0 else j
                if self._mchar == "`" and "`" in text[i + 1 : stop]:
                    self._held.append(text[start:stop])
                    self._line_kind = "prose"
                    self._release()
                    self._line_start = False
                    return stop
                i = stop
                continue
            i += 1
        self._held.append(text[start:n])
        return n

    def _step(self, c: str) -> int:
        """Feed one character of an undecided line start (not the newline)."""
        if self._phase == _WS:
            if c == " " or c == "\t":
                self._ws += c
                if c == "\t":
                    self._fence_ok = False  # a tab is four columns: past any fence indent
                else:
                    self._indent += 1
                    self._fence_ok = self._fence_ok and self._indent <= self._max_indent()
                # inside a block that runs, a line's indentation waits for its first character
                return _UNDECIDED if self._fence_ok or self._run_block() else self._content(c)
            if c in "`~" and self._fence_ok and (not self._in_block or c == self._fence_char):
                self._phase, self._mchar, self._mlen = _MARKER, c, 1
                return _UNDECIDED
            return self._content(c)
        if self._phase == _MARKER:
            if c == self._mchar:
                self._mlen += 1
                return _UNDECIDED
            if self._mlen < self._min_len():
                return self._content(self._mchar)
            self._phase = _REST
        if self._phase == _REST:
            if self._in_block:
                return _UNDECIDED if c in " \t\r" else self._content(self._mchar)
            if self._mchar == "`" and c == "`":
                self._line_kind = "prose"
                return _CONTENT
            return _UNDECIDED
        return self._prompt_step(c)

    def _content(self, first: str) -> int:
        """The line is not a fence line; ``first`` is its first visible character."""
        if not self._in_block:
            self._line_kind = "prose"
            return _CONTENT
        if not self._run:
            self._line_kind = "other"
            return _CONTENT
        if first in "\r\n":  # a blank line: it says nothing about indentation or prompts
            self._line_kind = "code" if not self._repl else "other"
            return _CONTENT
        if self._dedent is None:
            self._dedent = self._line_indent()
        if self._repl is not False and first in (">" if self._repl is None else ">."):
            self._phase, self._prompt = _PROMPT, ""
            return self._prompt_step(first)
        self._repl = False if self._repl is None else self._repl
        self._line_kind = "other" if self._repl else "code"
        return _CONTENT

    def _prompt_step(self, c: str) -> int:
        """A REPL prompt, character by character: ``>>>`` or ``...``, then a blank or the end."""
        if len(self._prompt) < 3:
            prompt = self._prompt + c
            if _PS1.startswith(prompt) or (self._repl and _PS2.startswith(prompt)):
                self._prompt = prompt
                return _UNDECIDED
        elif c in " \r":
            self._repl = True
            self._line_kind = "code"
            return _CONTENT
        return self._not_a_prompt()

    def _not_a_prompt(self) -> int:
        if self._repl is None:
            self._repl = False  # the first code line has no prompt: plain code
        self._prompt = ""
        self._line_kind = "other" if self._repl else "code"
        return _CONTENT

    def _run_block(self) -> bool:
        return self._in_block and self._run

    def _max_indent(self) -> int:
        if self._in_block:
            return self._fence_base + 3
        return (self._lists[-1] if self._lists else 0) + 3

    def _min_len(self) -> int:
        return self._fence_len if self._in_block else 3

    def _line_indent(self) -> str:
        """The line's indentation, less the fence's."""
        return self._ws[self._strip_fence_indent(self._ws) :]

    def _strip_fence_indent(self, held: str) -> int:
        k = 0
        while k < self._fence_indent and k < len(held) and held[k] == " ":
            k += 1
        return k

    def _settle_line(self) -> None:
        """The held line ended (newline or end of stream) before it was decided."""
        phase = self._phase
        if (phase == _MARKER and self._mlen >= self._min_len()) or phase == _REST:
            self._fence_line("".join(self._held))
            return
        if phase == _PROMPT:
            if self._prompt == _PS1 or (self._repl and self._prompt == _PS2):
                self._repl, self._line_kind = True, "code"  # an empty prompt line
            else:
                self._not_a_prompt()
        elif phase == _MARKER:
            self._content(self._mchar)
        else:
            self._content("\n")
        self._release()

    # -- transitions and output ------------------------------------------------

    def _fence_line(self, line: str) -> None:
        if self._in_block:
            self._push("fence", line, self._blocks - 1, closes=self._run)
            self._in_block = False
            self._head = None
            return
        while self._lists and self._lists[-1] > self._indent:
            self._lists.pop()  # a fence left of a list item's content closes the item
        info = line.strip().lstrip(self._mchar)
        language = info_language(info)
        self._in_block = True
        self._run = language in self._languages
        self._fence_char, self._fence_len = self._mchar, self._mlen
        self._fence_indent = self._indent
        self._fence_base = self._lists[-1] if self._lists else 0
        self._dedent = None
        self._repl = None
        self._blocks += 1
        if self._run:
            self._code_blocks += 1
        self._push("fence", line, self._blocks - 1)
        self._head = None

    def _release(self) -> None:
        """Emit the held line start, less what a block removes from its lines."""
        held = "".join(self._held)
        self._held = []
        if self._in_block:
            k = self._strip_fence_indent(held)
            if self._run and self._dedent:
                j = 0
                while j < len(self._dedent) and k < len(held) and held[k] == self._dedent[j]:
                    j += 1
                    k += 1
            if self._prompt:  # '>>> ' / '... ': the prompt and its blank
                k += len(self._prompt)
                if held.startswith(" ", k):
                    k += 1
            held = held[k:]
        self._prompt = ""
        self._emit(self._line_kind, held)

    def _emit(self, kind: SegmentKind, text: str) -> None:
        if not text:
            return
        if self._in_block:
            self._push(kind, text, self._blocks - 1)
            return
        if self._head is not None and len(self._head) < _HEAD_MAX:
            self._head += text[: _HEAD_MAX - len(self._head)]
        self._push("prose", text, None)

    def _line_done(self) -> None:
        """A line ended: follow the list items it opens or closes, start the next line."""
        head = self._head
        if head is not None and not self._in_block:
            self._follow_lists(head.rstrip("\r\n"))
        self._reset_line()

    def _follow_lists(self, line: str) -> None:
        if not line.strip():
            self._after_blank = True
            return
        indent = len(line) - len(line.lstrip(" "))
        item = _LIST_ITEM.match(line)
        if item and indent <= self._max_indent():
            while self._lists and self._lists[-1] > indent:
                self._lists.pop()
            marker_end = indent + len(item.group(2))
            blanks = len(item.group(3) or "")
            content = marker_end + (blanks if 1 <= blanks <= 4 and item.group(4) else 1)
            self._lists.append(content)
        elif self._after_blank:
            # after a blank line, a line left of an item's content column closes the item
            while self._lists and self._lists[-1] > indent:
                self._lists.pop()
        self._after_blank = False

    def _reset_line(self) -> None:
        self._held = []
        self._phase, self._indent, self._ws, self._fence_ok = _WS, 0, "", True
        self._mchar, self._mlen, self._prompt = "", 0, ""
        self._line_start = True
        self._head = None if self._in_block else ""
        self._line_kind = "prose"

    def _push(self, kind: SegmentKind, text: str, block: int | None, closes: bool = False) -> None:
        out = self._out
        if out and out[-1].kind == kind and out[-1].block == block:
            out[-1] = Segment(kind, out[-1].text + text, block, closes)
        else:
            out.append(Segment(kind, text, block, closes))

    def _take(self) -> list[Segment]:
        out, self._out = self._out, []
        return out


def code_from_fences(
    pieces: Iterable[str],
    *,
    on_segment: Callable[[Segment], None] | None = None,
    languages: Iterable[str] = PYTHON_LANGUAGES,
) -> Generator[str, None, None]:
    """The code of every runnable block of a markdown stream, as it becomes certain.

    :data:`~eager_rt.sources.boundary.BOUNDARY` follows each closing fence of
    a runnable block, so the runtime runs the block's last statement at once
    instead of after the prose that follows.  Every segment (prose
    included) goes to ``on_segment`` in stream order.
    Closing this generator early closes ``pieces`` too, so an HTTP stream
    behind it stops.
    """
    extractor = FenceExtractor(languages)
    iterator = iter(pieces)
    try:
        for piece in iterator:
            yield from _runnable(extractor.feed(piece), on_segment)
        yield from _runnable(extractor.close(), on_segment)
    finally:
        close_quietly(iterator)


def _runnable(
    segments: Iterable[Segment], on_segment: Callable[[Segment], None] | None
) -> Iterator[str]:
    """What the runtime gets from a batch of segments: code text, and BOUNDARY at a block's end."""
    for seg in segments:
        if on_segment is not None:
            on_segment(seg)
        if seg.kind == "code":
            yield seg.text
        elif seg.closes:
            yield BOUNDARY


async def acode_from_fences(
    pieces: AsyncIterable[str],
    *,
    on_segment: Callable[[Segment], None] | None = None,
    languages: Iterable[str] = PYTHON_LANGUAGES,
) -> AsyncGenerator[str, None]:
    """Async twin of :func:`code_from_fences`."""
    extractor = FenceExtractor(languages)
    iterator = aiter(pieces)
    try:
        async for piece in iterator:
            for out in _runnable(extractor.feed(piece), on_segment):
                yield out
        for out in _runnable(extractor.close(), on_segment):
            yield out
    finally:
        await aclose_quietly(iterator)
