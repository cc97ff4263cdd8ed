"""What the chunker emits: one complete top-level statement and the text around it.

Chunks are the unit the runtime schedules. Their ``code`` fields, concatenated
in order (including what ``Chunker.close()`` returns), reproduce the token
stream character for character. A chunk ends with the newline of its
statement's last line (a same-line comment included); blank lines and comment
lines after it open the *next* chunk, and whatever is left at the end of the
stream is a ``trivia`` chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Chunk", "ChunkKind", "SyntaxErrorInfo"]

#: ``statement``: compiles on its own and can run.
#: ``syntax_error``: the pending text can no longer become valid Python.
#: ``trivia``: only whitespace/comments (a stream's head or tail); nothing to run.
ChunkKind = Literal["statement", "syntax_error", "trivia"]


@dataclass(frozen=True, slots=True)
class SyntaxErrorInfo:
    """The interpreter's own verdict on an invalid chunk (lines are stream lines)."""

    msg: str
    lineno: int | None
    offset: int | None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    """One top-level statement (``kind="statement"``), an invalid one, or trailing trivia."""

    code: str
    index: int  #: 0-based position among the chunks of one stream
    start: int  #: offset of ``code[0]`` in the stream (characters)
    end: int  #: offset just past ``code[-1]``
    #: offset just past the statement's last significant character (before trailing trivia)
    body_end: int
    lineno: int  #: 1-based stream line where the chunk starts
    kind: ChunkKind
    declaration: bool = False  #: only def/class (with decorators): deferrable by gating
    error: SyntaxErrorInfo | None = None

    @property
    def runnable(self) -> bool:
        """A statement to execute (not a syntax error, not trivia)."""
        return self.kind == "statement"
