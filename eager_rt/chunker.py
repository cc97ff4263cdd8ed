"""Cut a stream of LLM tokens into complete top-level statements, as they complete.

Pipeline position: the runtime calls ``Chunker.feed(token)`` for every token
and ``close()`` at the end (``flush()`` where a source says a code unit
ended); each returned :class:`~eager_rt.chunk.Chunk` is
ready to schedule.  The scanner (``eager_rt.scanner``: Cython, or its pure
twin) does the character work in one pass and says where a statement can no
longer grow; this module slices the text, asks ``compile()`` once per
candidate (the interpreter is the judge: a candidate that does not compile
becomes a ``syntax_error`` chunk carrying the interpreter's own message), and
keeps line numbers in stream coordinates.

Trivia placement (deterministic, the same for both scanners): a chunk ends
with the newline of its statement's last logical line, so a statement's
same-line comment is in it, while blank lines and comment lines after it
open the *next* chunk.  Whatever trivia is left at ``close()`` becomes a
``trivia`` chunk (a ``syntax_error`` one if the interpreter rejects it: a NUL
byte is invalid even in a comment).  A stream that starts with a BOM keeps it in the first
chunk's ``code``; the BOM is skipped for compiling (as the tokenizer does for
files), so a runner should strip a leading U+FEFF before executing.
"""

from __future__ import annotations

import ast
import re
import sys
import warnings

from eager_rt.chunk import Chunk, ChunkKind, SyntaxErrorInfo
from eager_rt.scanner import EV_CUT, EV_PROBE, EV_SPEC, Scanner
from eager_rt.scanner_pure import W_ASYNC, W_AT, W_DEF
from eager_rt.scanner_pure import Scanner as _ScannerType

__all__ = ["Chunker"]

#: The parser flags ``codeop`` uses (3.11+): report "incomplete input"
#: instead of an error while the text could still be completed.
_ALLOW_INCOMPLETE = 0x4000
_DONT_IMPLY_DEDENT = 0x200
_HAS_INCOMPLETE = sys.version_info >= (3, 11)
#: Token pieces are joined in blocks of this many (never re-joined until the
#: cut), so pending text costs O(1) per character however long a statement grows.
_BLOCK = 64
#: Early confirmation (see ``Chunker._speculate``): blocks shorter than this
#: many characters compile in about 0.1 ms at the cut, so they are left alone
_SPEC_MIN = 800
#: ... and speculative compiles may cover this many times the characters
#: received, plus the reserve, which only the PEP 8 two-blank-line gap may use
_SPEC_BUDGET = 8
_SPEC_RESERVE = 2
#: Words of the only rules that span statements (see ``Chunker._compile_program``)
_WHOLE_PROGRAM = re.compile(r"\bglobal\b|\b__future__\b")
_ASYNC_DEF = re.compile(r"async(?:[ \t\x0c]|\\(?:\r\n|\r|\n))+def(?![0-9A-Za-z_\x80-\U0010ffff])")


def _count_lines(text: str) -> int:
    """Newlines in ``text`` the way the tokenizer counts them (CRLF, CR, LF)."""
    crlf = text.count("\r\n")
    return text.count("\n") + text.count("\r") - crlf


class Chunker:
    """Incremental chunker: ``feed`` pieces of source, get finished statements.

    ``scanner_cls`` picks the scanner implementation (tests force each one);
    ``top_level_await`` compiles candidates with
    ``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT`` for runners that await at top level.
    """

    def __init__(
        self,
        *,
        scanner_cls: type[_ScannerType] | None = None,
        top_level_await: bool = False,
    ) -> None:
        self._scanner = (scanner_cls or Scanner)(_HAS_INCOMPLETE)
        self._flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if top_level_await else 0
        self._pieces: list[str] = []  # text from self._start on, not yet emitted
        self._loose = 0  # pieces fed since the last block was joined
        self._start = 0  # stream offset of the first pending character
        self._size = 0  # characters received
        self._lineno = 1  # stream line of self._start
        self._index = 0
        self._closed = False
        #: an early confirmation: (start, end, verdict) of a candidate compiled
        #: before its deciding token arrived
        self._spec: tuple[int, int, SyntaxErrorInfo | None] | None = None
        self._spent = 0  # characters compiled speculatively so far
        self._history: list[str] = []  # every chunk emitted, for whole-program rules

    @property
    def offset(self) -> int:
        """Characters consumed so far."""
        return self._size

    @property
    def pending(self) -> str:
        """Text received but not yet emitted in a chunk."""
        return "".join(self._pieces)

    def feed(self, text: str) -> list[Chunk]:
        """Take the next piece of the stream; return the chunks it completed."""
        if self._closed:
            raise ValueError("Chunker.feed() after close()")
        if not text:
            return []
        pieces = self._pieces
        pieces.append(text)
        self._loose += 1
        if self._loose >= _BLOCK:  # every character is joined once here, once at its cut
            pieces[-_BLOCK:] = ["".join(pieces[-_BLOCK:])]
            self._loose = 0
        self._size += len(text)
        out: list[Chunk] = []
        scanner = self._scanner
        src, i = text, 0
        n = len(src)
        spec: tuple[int, ...] | None = None  # acted on only if no cut follows in this feed
        while True:
            events = scanner.feed(src, i)
            for ev in events:
                if ev[0] == EV_CUT:
                    out.append(self._emit(ev[1], ev[2], ev[3], ev[4]))
                    spec = None
                elif ev[0] == EV_SPEC:
                    spec = ev
                else:  # EV_PROBE: always the last event of a feed
                    assert ev[0] == EV_PROBE
                    rest = self._probe(ev[1], ev[2], out)
                    if rest is not None:
                        src, n = rest, len(rest)
                        scanner.restart(ev[1])
                        i = 0
                        break
            else:
                i = scanner.stop
                if i >= n:
                    if spec is not None:
                        self._speculate(spec[1], spec[3])
                    return out

    def flush(self) -> list[Chunk]:
        """The current code unit is over (a closing fence, a tool call's end).

        The open statement is emitted as ``close()`` would emit it, at once,
        instead of waiting for the next column-0 line to show it cannot grow.
        The chunker stays usable: what is fed next starts on a fresh line,
        with offsets and line numbers continuing.  Trivia after the last
        statement stays pending and opens the next chunk, and a trailing
        ``\r`` is held back for it, since a ``\n`` may follow.
        """
        if self._closed:
            raise ValueError("Chunker.flush() after close()")
        pieces = self._pieces
        held = bool(pieces) and pieces[-1].endswith("\r")
        out = [self._emit(ev[1], ev[2], ev[3], ev[4]) for ev in self._scanner.flush(held)]
        self._spec = None
        return out

    def close(self) -> list[Chunk]:
        """End of stream: flush the open statement and any trailing trivia."""
        if self._closed:
            return []
        self._closed = True
        out = [self._emit(ev[1], ev[2], ev[3], ev[4]) for ev in self._scanner.close()]
        if self._size > self._start:
            start = self._start
            code = self._take(self._size)
            # only comments and blank lines, but the interpreter is still the
            # judge: a NUL byte, even in a comment, makes the source invalid
            error = self._compile(code, start)
            if error is not None:
                body_end = start + len(code.rstrip(" \t\x0c\r\n"))
                out.append(self._chunk(code, start, body_end, "syntax_error", error=error))
            else:
                out.append(self._chunk(code, start, start, "trivia"))
        return out

    # -- internals -------------------------------------------------------------

    def _take(self, end: int) -> str:
        """Remove and return the pending text up to stream offset ``end``."""
        pieces = self._pieces
        buf = pieces[0] if len(pieces) == 1 else "".join(pieces)
        k = end - self._start
        code, rest = buf[:k], buf[k:]
        self._pieces = [rest] if rest else []
        self._loose = 0
        self._start = end
        return code

    def _compile_program(self, code: str) -> SyntaxErrorInfo | None:
        """Judge a chunk as part of the whole program, as serial execution would.

        A few rules span statements: ``from __future__`` imports only at the
        top, and a module-level ``global x`` only before any use of ``x``.
        Each chunk compiles on its own, so a chunk that could break them is
        compiled once more after everything emitted before it.
        """
        history = "".join(self._history)
        error = self._compile(history + code, 0, first_line=1)
        if error is not None and error.lineno is not None and error.lineno < self._lineno:
            return None  # the earlier text alone decides it: not this chunk's doing
        return error

    def _chunk(
        self,
        code: str,
        start: int,
        body_end: int,
        kind: ChunkKind,
        declaration: bool = False,
        error: SyntaxErrorInfo | None = None,
    ) -> Chunk:
        chunk = Chunk(
            code=code,
            index=self._index,
            start=start,
            end=start + len(code),
            body_end=body_end,
            lineno=self._lineno,
            kind=kind,
            declaration=declaration,
            error=error,
        )
        self._index += 1
        self._lineno += _count_lines(code)
        self._history.append(code)
        return chunk

    def _emit(self, end: int, body_end: int, stmt_start: int, word: int) -> Chunk:
        start = self._start
        code = self._take(end)
        spec = self._spec
        if spec is not None and spec[0] == start and spec[1] == end:
            error = spec[2]
        else:
            error = self._compile(code, start)
        self._spec = None
        if error is None and _WHOLE_PROGRAM.search(code) is not None:
            error = self._compile_program(code)
        if error is not None:
            return self._chunk(code, start, body_end, "syntax_error", error=error)
        declaration = word in (W_DEF, W_AT)
        if word == W_ASYNC:
            declaration = _ASYNC_DEF.match(code, stmt_start - start) is not None
        return self._chunk(code, start, body_end, "statement", declaration)

    def _speculate(self, end: int, blanks: int) -> None:
        """Confirm a compound statement that *may* end at ``end``, ahead of time.

        A blank line after a long block is where the model often moves on
        (two are PEP 8's gap after a top-level definition); compiling now,
        between tokens, means the token that decides the cut only has to look
        the verdict up, instead of compiling a long body then.  In a live
        stream this costs no latency: inside a block nothing else can be cut,
        and a deciding token that arrives during the compile waits no longer
        than the compile it saves.  If the block goes on, the work is wasted
        (a class pays at every blank line between its methods), so
        speculation is capped at ``_SPEC_BUDGET`` times the characters
        received: total work stays linear in the stream, and the reserve
        keeps PEP 8 gaps confirmed when a long class has spent the rest.
        """
        size = end - self._start
        if self._spec is not None and self._spec[:2] == (self._start, end):
            return  # the second blank line after the first: already confirmed
        limit = _SPEC_BUDGET + (_SPEC_RESERVE if blanks >= 2 else 0)
        if size < _SPEC_MIN or self._spent + size > limit * self._size:
            return
        self._spent += size
        buf = "".join(self._pieces)
        self._pieces = [buf]
        self._loose = 0
        self._spec = (self._start, end, self._compile(buf[:size], self._start))

    def _compile(
        self, code: str, start: int, first_line: int | None = None
    ) -> SyntaxErrorInfo | None:
        """The one confirmation: does this candidate compile on its own?"""
        src = code[1:] if start == 0 and code.startswith("\ufeff") else code
        first = self._lineno if first_line is None else first_line
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compile(src, "<eager_rt>", "exec", self._flags, dont_inherit=True)
        except SyntaxError as exc:
            lineno = None if exc.lineno is None else exc.lineno + first - 1
            return SyntaxErrorInfo(exc.msg, lineno, exc.offset, exc.text)
        except (ValueError, RecursionError, MemoryError) as exc:
            return SyntaxErrorInfo(str(exc) or type(exc).__name__, None, None, None)
        return None

    def _probe(self, line_start: int, word_end: int, out: list[Chunk]) -> str | None:
        """A column-0 name inside brackets: is the open statement already dead?

        Returns None when the parser says it can still be completed (scanning
        resumes), else emits the statement before that line as a
        ``syntax_error`` chunk and returns the text from ``line_start`` on,
        which the restarted scanner reads again as a fresh line.
        """
        buf = "".join(self._pieces)
        self._pieces = [buf]
        self._loose = 0
        src = buf[: word_end - self._start]
        if self._start == 0 and src.startswith("\ufeff"):
            src = src[1:]
        flags = self._flags | _ALLOW_INCOMPLETE | _DONT_IMPLY_DEDENT
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compile(src, "<eager_rt>", "exec", flags, dont_inherit=True)
        except SyntaxError as exc:
            if exc.msg == "incomplete input":
                return None
        except (ValueError, RecursionError, MemoryError):
            pass
        else:  # cannot happen with an open bracket; keep scanning to be safe
            return None
        start = self._start
        code = self._take(line_start)
        error = self._compile(code, start) or SyntaxErrorInfo("invalid syntax", None, None)
        body_end = start + len(code.rstrip(" \t\x0c\r\n"))
        out.append(self._chunk(code, start, body_end, "syntax_error", error=error))
        return "".join(self._pieces)
