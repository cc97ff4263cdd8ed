"""Code out of markdown fences, as a prose stream arrives: the first stage for chatty models.

A model asked for Python usually answers in markdown: a sentence, a fenced block,
more prose, maybe another block. The runtime's chunker wants only the code, and
wants it *now*, so this module splits the stream incrementally. Text inside a
Python block is released the moment it cannot be a closing fence any more; the
only thing ever held back is the start of a line that still looks like one
(at most a few backticks and spaces). Prose, fence lines and blocks in other
languages come out separately so a front end can print them live.

Fences follow CommonMark where it matters for model output: a fence line is up
to three spaces, then three or more backticks or tildes; a backtick fence's
info string holds no backtick (so inline ```` ``` ```` in prose is not a
fence); a block is closed only by the same character, at least as many times,
followed by nothing but blanks; the indentation of an indented opening fence is
removed from the block's lines. An unclosed block runs to the end of the stream.
The closing fence of a block that runs is marked (``Segment.closes``): the
source generators yield :data:`~eager_rt.sources.boundary.BOUNDARY` there.

Each call to :meth:`FenceExtractor.feed` costs time proportional to the new text.
"""

from __future__ import annotations

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
]

#: info-string languages whose blocks are run (compared lowercased); "" is a bare fence
PYTHON_LANGUAGES: frozenset[str] = frozenset({"python", "py", "python3", "py3", ""})

#: ``prose``: text outside any block; ``fence``: an opening or closing fence line;
#: ``code``: content of a block that runs; ``other``: content of a block in another language
SegmentKind = Literal["prose", "fence", "code", "other"]


@dataclass(frozen=True, slots=True)
class Segment:
    kind: SegmentKind
    text: str
    block: int | None = None  #: 0-based index of the fenced block (any language), None for prose
    #: the closing fence of a block that runs: its code unit is over (not part of equality)
    closes: bool = field(default=False, compare=False)


# per-line candidate phases: still reading the indentation, the fence marker, or what follows it
_INDENT, _MARKER, _REST = 0, 1, 2
_UNDECIDED, _NOT_FENCE, _FENCE = 0, 1, 2


class FenceExtractor:
    """Incremental splitter of a markdown stream into prose, fences and code.

    ``feed`` returns the segments that became certain; ``close`` flushes the
    rest at the end of the stream. Concatenating every segment's text gives back
    the input, except the indentation removed inside indented blocks.
    """

    def __init__(self, languages: Iterable[str] = PYTHON_LANGUAGES) -> None:
        self._languages = frozenset(lang.lower() for lang in languages)
        self._in_block = False
        self._run = False  # the open block is one we run
        self._fence_char = ""
        self._fence_len = 0
        self._fence_indent = 0
        self._blocks = 0  # blocks opened so far
        self._code_blocks = 0
        self._line_start = True
        self._held: list[str] = []  # start of the current line, while it may be a fence line
        self._phase = _INDENT
        self._indent = 0
        self._mchar = ""
        self._mlen = 0
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
                self._emit_content(text[i:end])
                i = end
                self._line_start = j >= 0
                continue
            i = self._scan_line_start(text, i)
        return self._take()

    def close(self) -> list[Segment]:
        """End of stream: settle the held line, note an unclosed block."""
        if self._closed:
            return []
        self._closed = True
        if self._held:
            if self._verdict_at_line_end() == _FENCE:
                self._fence_line("".join(self._held))
            else:
                self._flush_held_as_content()
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
                if self._verdict_at_line_end() == _FENCE:
                    self._fence_line("".join(self._held))
                else:
                    self._flush_held_as_content()
                self._reset_line()
                return i + 1
            verdict = self._step(c)
            if verdict == _NOT_FENCE:
                self._held.append(text[start : i + 1])
                self._flush_held_as_content()
                self._line_start = False
                self._reset_candidate()
                return i + 1
            if self._phase == _REST and not self._in_block:
                # an opening fence's info string: nothing in it can change the verdict
                # except a backtick (for backtick fences) or the newline; jump ahead
                j = text.find("\n", i + 1)
                stop = n if j < 0 else j
                if self._mchar == "`" and "`" in text[i + 1 : stop]:
                    self._held.append(text[start:stop])
                    self._flush_held_as_content()
                    self._line_start = False
                    self._reset_candidate()
                    return stop
                i = stop
                continue
            i += 1
        self._held.append(text[start:n])
        return n

    def _step(self, c: str) -> int:
        """Feed one character of a candidate fence line (not the newline)."""
        if self._phase == _INDENT:
            if c == " " and self._indent < 3:
                self._indent += 1
                return _UNDECIDED
            if c in "`~" and (not self._in_block or c == self._fence_char):
                self._phase, self._mchar, self._mlen = _MARKER, c, 1
                return _UNDECIDED
            return _NOT_FENCE
        if self._phase == _MARKER:
            if c == self._mchar:
                self._mlen += 1
                return _UNDECIDED
            if self._mlen < self._min_len():
                return _NOT_FENCE
            self._phase = _REST
        # _REST
        if self._in_block:
            return _UNDECIDED if c in " \t" else _NOT_FENCE
        if self._mchar == "`" and c == "`":
            return _NOT_FENCE
        return _UNDECIDED

    def _min_len(self) -> int:
        return self._fence_len if self._in_block else 3

    def _verdict_at_line_end(self) -> int:
        if self._phase == _MARKER:
            return _FENCE if self._mlen >= self._min_len() else _NOT_FENCE
        return _FENCE if self._phase == _REST else _NOT_FENCE

    def _reset_candidate(self) -> None:
        self._held = []
        self._phase, self._indent, self._mchar, self._mlen = _INDENT, 0, "", 0

    def _reset_line(self) -> None:
        self._reset_candidate()
        self._line_start = True

    # -- transitions and output ------------------------------------------------

    def _fence_line(self, line: str) -> None:
        if self._in_block:
            self._push("fence", line, self._blocks - 1, closes=self._run)
            self._in_block = False
            return
        info = line.strip().lstrip(self._mchar).strip()
        language = info.split(None, 1)[0].lower() if info else ""
        self._in_block = True
        self._run = language in self._languages
        self._fence_char, self._fence_len = self._mchar, self._mlen
        self._fence_indent = self._indent
        self._blocks += 1
        if self._run:
            self._code_blocks += 1
        self._push("fence", line, self._blocks - 1)

    def _flush_held_as_content(self) -> None:
        held = "".join(self._held)
        self._held = []
        if self._in_block and self._fence_indent:
            k = 0
            while k < self._fence_indent and k < len(held) and held[k] == " ":
                k += 1
            held = held[k:]
        self._emit_content(held)

    def _emit_content(self, text: str) -> None:
        if not text:
            return
        if not self._in_block:
            self._push("prose", text, None)
        else:
            self._push("code" if self._run else "other", text, self._blocks - 1)

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
