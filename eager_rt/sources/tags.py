"""Code between literal tags (``<code>…</code>``), as a stream arrives: the fences' sibling.

Agent frameworks such as smolagents ask the model to wrap each action in tags
instead of markdown fences. :class:`TagExtractor` splits such a stream
incrementally into the same :class:`~eager_rt.sources.fences.Segment` values
the fence extractor yields: ``prose`` outside, ``fence`` for a tag itself (the
delimiter, whatever it looks like), ``code`` between an opening and a closing
tag. The only text ever held back is a suffix that could still become a tag.

It follows the regular expression such frameworks parse the finished text with
(``<open>(.*?)<close>``, dot matches newline, then ``strip()``): a tag counts
anywhere, mid-line included; a block's leading whitespace is dropped; an
unclosed block runs to the end of the stream. A block's code always ends with a
newline, so the next block's first statement starts on a line of its own.

:class:`CodeBlockExtractor` accepts either convention: tags, or markdown fences
(the fallback smolagents applies when no tag is found). The first runnable
block that opens decides which one the rest of the stream is read with.

Each call to ``feed`` costs time proportional to the new text (plus the tag's
length).
"""

from __future__ import annotations

from collections.abc import Iterable

from eager_rt.sources.fences import FenceExtractor, Segment, SegmentKind

__all__ = ["SMOLAGENTS_FENCE_LANGUAGES", "CodeBlockExtractor", "TagExtractor"]

#: info strings smolagents' markdown fallback (```` ```(?:python|py) ````) treats as code
SMOLAGENTS_FENCE_LANGUAGES: frozenset[str] = frozenset({"python", "py"})


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:k]):
            return k
    return 0


class TagExtractor:
    """Incremental splitter of a stream into prose, tags and the code between them.

    ``feed`` returns the segments that became certain; ``close`` flushes the
    rest. Concatenating every segment's text gives back the input, except a
    block's leading whitespace and the newline added at the end of a block
    whose code did not end with one.
    """

    def __init__(self, open_tag: str = "<code>", close_tag: str = "</code>") -> None:
        if not open_tag or not close_tag:
            raise ValueError("tags must not be empty")
        self.open_tag = open_tag
        self.close_tag = close_tag
        self._in_block = False
        self._strip = False  # still dropping the open block's leading whitespace
        self._ends_line = True  # the open block's code so far ends with a newline
        self._held = ""
        self._blocks = 0
        self._out: list[Segment] = []
        self._closed = False
        self.unclosed = False  #: the stream ended inside a block

    @property
    def in_block(self) -> bool:
        return self._in_block

    @property
    def code_blocks(self) -> int:
        """How many blocks were opened so far."""
        return self._blocks

    def feed(self, text: str) -> list[Segment]:
        if self._closed:
            raise ValueError("feed() after close()")
        s = self._held + text
        self._held = ""
        while s:
            tag = self.close_tag if self._in_block else self.open_tag
            at = s.find(tag)
            if at < 0:
                keep = _partial_suffix(s, tag)
                self._content(s[: len(s) - keep])
                self._held = s[len(s) - keep :]
                break
            self._content(s[:at])
            self._tag(tag)
            s = s[at + len(tag) :]
        return self._take()

    def close(self) -> list[Segment]:
        """End of stream: the held text is content; note an unclosed block."""
        if self._closed:
            return []
        self._closed = True
        self._content(self._held)
        self._held = ""
        if self._in_block:
            self.unclosed = True
            if not self._ends_line:
                self._push("code", "\n")
        return self._take()

    def _tag(self, tag: str) -> None:
        if self._in_block:
            if not self._ends_line:
                self._push("code", "\n")
            self._push("fence", tag, closes=True)
            self._in_block = False
            return
        self._blocks += 1
        self._push("fence", tag)
        self._in_block, self._strip, self._ends_line = True, True, True

    def _content(self, text: str) -> None:
        if not self._in_block:
            self._push("prose", text)
            return
        if self._strip:
            text = text.lstrip()
            self._strip = not text
        if text:
            self._push("code", text)
            self._ends_line = text.endswith("\n")

    def _push(self, kind: SegmentKind, text: str, closes: bool = False) -> None:
        if not text:
            return
        block = None if kind == "prose" else self._blocks - 1
        out = self._out
        if out and kind != "fence" and out[-1].kind == kind and out[-1].block == block:
            out[-1] = Segment(kind, out[-1].text + text, block, closes)
        else:
            out.append(Segment(kind, text, block, closes))

    def _take(self) -> list[Segment]:
        out, self._out = self._out, []
        return out


class CodeBlockExtractor:
    """Code in tags or in markdown fences, whichever opens a runnable block first.

    Until a block opens both readers see the text; the first runnable block
    picks the reader, whose held-back segments (prose) are then released and
    which reads the rest of the stream alone. A stream with no block at all is
    prose.
    """

    def __init__(
        self,
        open_tag: str = "<code>",
        close_tag: str = "</code>",
        *,
        languages: Iterable[str] = SMOLAGENTS_FENCE_LANGUAGES,
    ) -> None:
        self._tags = TagExtractor(open_tag, close_tag)
        self._fences = FenceExtractor(languages)
        self._chosen: TagExtractor | FenceExtractor | None = None
        self._tag_out: list[Segment] = []
        self._fence_out: list[Segment] = []

    @property
    def convention(self) -> str | None:
        """``"tags"`` or ``"fences"`` once a runnable block opened, else None."""
        if self._chosen is None:
            return None
        return "tags" if self._chosen is self._tags else "fences"

    @property
    def unclosed(self) -> bool:
        return self._chosen is not None and self._chosen.unclosed

    def feed(self, text: str) -> list[Segment]:
        if self._chosen is not None:
            return self._chosen.feed(text)
        self._tag_out += self._tags.feed(text)
        self._fence_out += self._fences.feed(text)
        return self._decide(final=False)

    def close(self) -> list[Segment]:
        if self._chosen is not None:
            return self._chosen.close()
        self._tag_out += self._tags.close()
        self._fence_out += self._fences.close()
        return self._decide(final=True)

    def _decide(self, *, final: bool) -> list[Segment]:
        tag_at = _runnable_start(self._tag_out)
        fence_at = _runnable_start(self._fence_out)
        if tag_at is None and fence_at is None:
            if not final:
                return []
            out, self._tag_out, self._fence_out = self._tag_out, [], []
            return out  # prose only
        if fence_at is None or (tag_at is not None and tag_at <= fence_at):
            self._chosen, out = self._tags, self._tag_out
        else:
            self._chosen, out = self._fences, self._fence_out
        self._tag_out, self._fence_out = [], []
        return out


def _runnable_start(segments: list[Segment]) -> int | None:
    """Stream offset where the first runnable block's code starts, if one opened."""
    offset = 0
    for seg in segments:
        if seg.kind == "code":
            return offset
        offset += len(seg.text)
    return None
