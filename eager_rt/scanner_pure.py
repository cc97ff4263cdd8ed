"""The incremental statement scanner in plain Python: the readable specification.

Pipeline position: ``Chunker.feed`` hands every new piece of the token stream
to a scanner; the scanner answers with *events* saying where a top-level
statement can no longer grow (``EV_CUT``) or where a bracketed statement may
already be dead (``EV_PROBE``).  The chunker turns cuts into
:class:`~eager_rt.chunk.Chunk` objects after one ``compile()`` confirmation.

``native/_native.pyx`` implements exactly the same state machine in Cython;
the two are held to identical event sequences by the differential tests.
Any change here must be made there too.

How it works (one pass, each character looked at once, state kept between
feeds so a token may end anywhere):

* A lexer tracks what the interpreter's tokenizer would: strings, single
  and triple quotes with backslash escapes, comments, bracket depth,
  backslash continuations and the three newline spellings (``\\n``,
  ``\\r\\n``, ``\\r``; a trailing ``\\r`` waits for the next character).
  Up to 3.11 an f-string is one string token, so a prefix is just a name
  before the quote.  From 3.12 (PEP 701, ``pep701=True``) an f-string is
  nested code: the scanner keeps a stack of f-strings and replacement
  fields, so ``f"{"a"}"``, comments and newlines inside fields, ``{{``,
  ``\\N{...}`` and format specs with fields all scan as the 3.12 tokenizer
  reads them.
* At depth 0 a newline ends a *logical line* (NEWLINE) unless the line held
  only whitespace and comments (NL).  The first significant character of a
  logical line decides whether it starts at column 0: only form feeds may
  precede it, exactly as the tokenizer computes indentation.
* A statement state machine groups logical lines.  A simple statement is cut
  at its NEWLINE.  A compound header (``if while for try with def class async``,
  ``match ...:``, a stray ``else``-like keyword) or a decorator waits: the
  first token of the next column-0 logical line decides.  ``else elif except
  finally`` continue a compound statement, ``def class async @`` continue a
  decorator list; anything else cuts the statement before the blank lines and
  comments that precede that line.  The decision is taken as soon as the
  word typed so far cannot become a continuing keyword any more (``p`` cuts
  at once, ``els`` waits, ``else:`` continues, ``elsewhere`` cuts), following
  the tokenizer's NAME rule: ASCII letters, digits, ``_`` and every
  non-ASCII character extend a name.
* An indented logical line with no statement open is an error in progress
  (unexpected indent); it is cut at the next column-0 line.
* Inside brackets, a column-0 line starting with a name is where a missing
  closing bracket usually shows.  At the end of such a line the scanner
  stops with ``EV_PROBE`` so the chunker can ask the parser whether the
  statement can still be completed.  The first probe of a statement is
  always made; later ones only once the pending text has doubled since the
  previous probe, so a flush-left literal never makes scanning quadratic.

Events are tuples ``(kind, a, b, c, d)`` in absolute stream offsets:
``(EV_CUT, end, body_end, stmt_start, first_word_kind)`` — the candidate is
the text between the previous cut and ``end``; ``(EV_PROBE, line_start,
line_end, 0, 0)`` — ask whether ``text[last_cut:line_end]`` is dead; if so
the statement is cut at ``line_start`` and scanning restarts there;
``(EV_SPEC, end, body_end, blanks, 0)`` — the first or second blank line
(``blanks``: 1 or 2) follows a compound statement's line, so the statement
*may* end at ``end``: a hint that lets the chunker confirm it early (while
the model is still writing), leaving almost nothing to do when the deciding
token arrives.
"""

from __future__ import annotations

import re
import sys
from typing import Any

__all__ = [
    "EV_CUT",
    "EV_PROBE",
    "EV_SPEC",
    "W_ASYNC",
    "W_AT",
    "W_COMPOUND",
    "W_CONT",
    "W_DEF",
    "W_MATCH",
    "W_OTHER",
    "Event",
    "Scanner",
]

Event = tuple[int, int, int, int, int]

EV_CUT = 1
EV_PROBE = 2
EV_SPEC = 3

# Kinds of the first token of a logical line.
W_OTHER = 0
W_COMPOUND = 1  # if while for try with
W_DEF = 2  # def class
W_ASYNC = 3
W_CONT = 4  # else elif except finally
W_MATCH = 5
W_AT = 6  # a decorator line

WORDS: dict[str, int] = {
    "if": W_COMPOUND,
    "while": W_COMPOUND,
    "for": W_COMPOUND,
    "try": W_COMPOUND,
    "with": W_COMPOUND,
    "def": W_DEF,
    "class": W_DEF,
    "async": W_ASYNC,
    "else": W_CONT,
    "elif": W_CONT,
    "except": W_CONT,
    "finally": W_CONT,
    "match": W_MATCH,
}
#: Longest word that matters; longer first words are only tracked to their end.
MAX_WORD = 8


def _prefixes(*words: str) -> frozenset[str]:
    return frozenset(w[:i] for w in words for i in range(1, len(w) + 1))


CONT_PREFIXES = _prefixes("else", "elif", "except", "finally")
DECO_PREFIXES = _prefixes("def", "class", "async")

# Lexer modes.
M_INDENT = 0  # start of a physical line at depth 0, inside its indentation
M_CODE = 1
M_COMMENT = 2
M_Q1 = 3  # one opening quote seen
M_Q2 = 4  # two opening quotes seen: empty string or triple quote
M_STR = 5
M_STR3 = 6
M_BINDENT = 7  # start of a physical line inside brackets
M_FSTR = 8  # literal part of an f-string (3.12+ tokenization)
M_FLBRACE = 9  # '{' in an f-string literal: '{{' or a replacement field?
M_FSPEC = 10  # format spec of a replacement field

# f-string frames (3.12+): [F_STR, quote, triple, raw, depth at start] and
# [F_FIELD, depth inside its '{', in format spec, raw]
F_STR = 0
F_FIELD = 1
PREFIX_LETTERS = frozenset("rRbBuUfF")
#: PEP 701 (3.12) made f-strings nested code the tokenizer must follow.
PEP701 = sys.version_info >= (3, 12)

# Statement states.
S_IDLE = 0  # no statement open (only trivia pending)
S_COMPOUND = 1  # waiting for the next column-0 line
S_DECO = 2  # decorators so far
S_ANY = 3  # an error in progress: any column-0 line cuts it

_PLAIN = re.compile(r"[^#'\"\\()\[\]{}\r\n \t\x0c]+")
_PLAIN_FIELD = re.compile(r"[^#'\"\\()\[\]{}\r\n \t\x0c:]+")  # ':' may start a format spec
_SPACE = re.compile(r"[ \t\x0c]+")
_NAME = re.compile(r"[0-9A-Za-z_\x80-\U0010ffff]+")
_COMMENT = re.compile(r"[^\r\n]+")
_STR_BODY = {"'": re.compile(r"[^'\\\r\n]+"), '"': re.compile(r"[^\"\\\r\n]+")}
_STR3_BODY = {"'": re.compile(r"[^'\\]+"), '"': re.compile(r"[^\"\\]+")}


def is_name_start(c: str) -> bool:
    """The C tokenizer's ``is_potential_identifier_start``."""
    return (c.isascii() and (c.isalpha() or c == "_")) or c >= "\x80"


def is_name_char(c: str) -> bool:
    """The C tokenizer's ``is_potential_identifier_char``."""
    return (c.isascii() and (c.isalnum() or c == "_")) or c >= "\x80"


class Scanner:
    """Incremental lexer + top-level statement state machine (pure Python).

    ``feed(text, begin)`` scans ``text[begin:]``, appended to the stream, and
    returns the events it produced; it stops early only after an
    ``EV_PROBE`` event, leaving ``stop`` at the first unscanned index.
    ``close()`` flushes at end of stream; ``flush()`` does the same at the
    end of a code unit and keeps scanning.  ``restart(pos)`` forgets
    everything and starts a fresh line at absolute offset ``pos`` (used after
    a probe found a dead statement).
    """

    def __init__(self, probe: bool = True, pep701: bool = PEP701) -> None:
        self.probe = probe
        self.pep701 = pep701
        self.stop = 0
        self.restart(0)

    def restart(self, pos: int) -> None:
        self.pos = pos  # absolute offset of the next character
        self.mode = M_INDENT
        self.depth = 0
        self.quote = ""
        self.count = 0  # consecutive closing quotes in a triple-quoted string
        self.esc = False  # a backslash waits for its character
        self.cr = False  # a newline '\r' waits to see whether '\n' follows
        self.lfskip = False  # an escaped '\r': a following '\n' belongs to it
        self.indented = False
        self.bind = False  # indentation seen on a line inside brackets
        self.in_line = False  # the current logical line has significant text
        self.line_start = pos
        self.body_end = pos
        self.last_sig = ""
        self.word = ""
        self.word_on = False
        self.pline = False  # this line inside brackets started at column 0 with a name
        self.decided = True
        self.new_stmt = False
        self.state = S_IDLE
        self.stmt_start = pos
        self.stmt_kind = W_OTHER
        self.stmt_end = pos
        self.stmt_body = pos
        self.last_cut = pos
        self.probe_min = 0
        self.trivia = 0  # blank lines in a row since the last logical line
        self.bline_start = pos
        self.halt = False
        self.closing = False
        self.events: list[Event] = []
        # f-strings as nested code (pep701 only)
        self.tail = ""  # the name just before this point, up to 3 characters
        self.fq = False  # the open quote starts an f-string
        self.fraw = False
        self.fstack: list[list[Any]] = []
        self.fesc = 0  # 1 after '\', 2 after '\' CR, 3 after '\N', 4 inside '\N{...}'

    # -- statement state machine -------------------------------------------

    def _cut(self) -> None:
        self.events.append((EV_CUT, self.stmt_end, self.stmt_body, self.stmt_start, self.stmt_kind))
        self.last_cut = self.stmt_end
        self.state = S_IDLE
        self.probe_min = 0

    def _start_stmt(self, kind: int) -> None:
        self.decided = True
        self.new_stmt = True
        self.stmt_start = self.line_start
        self.stmt_kind = kind

    def _decide(self, kind: int) -> None:
        """The first token of a column-0 logical line is known: cut or continue."""
        self.decided = True
        st = self.state
        if st == S_COMPOUND and kind == W_CONT:
            return
        if st == S_DECO:
            if kind == W_AT:
                return
            if kind in (W_DEF, W_ASYNC):
                self.state = S_COMPOUND
                return
        if st != S_IDLE:
            self._cut()
        self._start_stmt(kind)

    def _check_prefix(self) -> None:
        """Decide early once the word so far cannot become a continuing keyword."""
        st = self.state
        w = self.word
        if (
            st in (S_IDLE, S_ANY)
            or (st == S_COMPOUND and w not in CONT_PREFIXES)
            or (st == S_DECO and w not in DECO_PREFIXES)
        ):
            if st != S_IDLE:
                self._cut()
            self._start_stmt(W_OTHER)  # the kind is filled in when the word ends

    def _word_done(self) -> None:
        self.word_on = False
        kind = WORDS.get(self.word, W_OTHER)
        if not self.decided:
            self._decide(kind)
        elif self.new_stmt:
            self.stmt_kind = kind

    def _line_begin(self, p: int, c: str) -> None:
        """First significant character of a logical line, at offset ``p``."""
        self.in_line = True
        self.line_start = p
        self.mode = M_CODE
        if self.indented:
            if self.state == S_IDLE:
                self.state = S_ANY
                self.stmt_start = p
                self.stmt_kind = W_OTHER
            self.decided = True
            self.new_stmt = False
        elif is_name_start(c):
            self.decided = False
            self.word_on = True
            self.word = ""
        else:
            self._decide(W_AT if c == "@" else W_OTHER)

    def _line_end(self, end: int) -> None:
        self.in_line = False
        self.trivia = 0
        self.stmt_end = end
        self.stmt_body = self.body_end
        if self.new_stmt:
            self.new_stmt = False
            k = self.stmt_kind
            if k in (W_COMPOUND, W_DEF, W_ASYNC, W_CONT) or (k == W_MATCH and self.last_sig == ":"):
                self.state = S_COMPOUND
            elif k == W_AT:
                self.state = S_DECO
            else:
                self._cut()

    def _newline(self, end: int) -> None:
        """A newline that is not inside a string or a continuation ends at ``end``."""
        pline = self.pline  # only the line that ends here may be probed
        self.pline = False
        if self.depth > 0:
            self.mode = M_BINDENT
            self.bind = False
            if pline:
                size = end - self.last_cut
                if size >= self.probe_min and not self.closing:
                    self.probe_min = 2 * size
                    self.events.append((EV_PROBE, self.bline_start, end, 0, 0))
                    self.halt = True
            return
        if self.in_line:
            self._line_end(end)
        elif self.mode != M_INDENT:  # a comment line
            self.trivia = 0
        else:  # a blank line
            self.trivia += 1
            if self.trivia <= 2 and self.state == S_COMPOUND and not self.closing:
                # A blank line after a block's line: the block may be over
                # (two in a row are PEP 8's gap after a top-level definition,
                # never found inside one); the chunker decides whether to act.
                self.events.append((EV_SPEC, self.stmt_end, self.stmt_body, self.trivia, 0))
        self.mode = M_INDENT
        self.indented = False

    # -- f-strings as nested code (3.12+) ---------------------------------------

    def _tail_is_fprefix(self) -> bool:
        t = self.tail
        return 0 < len(t) <= 2 and all(ch in PREFIX_LETTERS for ch in t) and ("f" in t or "F" in t)

    def _plain_tail(self, run: str) -> None:
        """Track the name that ends a run of plain characters (a string prefix?)."""
        t = run[-3:]
        k = len(t)
        while k > 0 and is_name_char(t[k - 1]):
            k -= 1
        if k == 0 and len(run) <= 3:
            self.tail = (self.tail + run)[-3:]
        else:
            self.tail = t[k:]

    def _open_field(self, raw: bool) -> None:
        self.depth += 1
        self.fstack.append([F_FIELD, self.depth, False, raw])
        self.mode = M_CODE

    def _close_field(self) -> None:
        self.fstack.pop()
        self.depth -= 1
        self.mode = M_FSTR if self.fstack[-1][0] == F_STR else M_FSPEC

    def _close_fstring(self, body_end: int) -> None:
        """End the innermost f-string (and any field left open in it)."""
        while self.fstack[-1][0] != F_STR:
            self.fstack.pop()
        frame = self.fstack.pop()
        self.depth = frame[4]
        self.mode = M_CODE
        self.fesc = 0
        self.body_end = body_end
        self.last_sig = frame[1]

    def _fstring_char(self, c: str, p: int) -> bool:
        """One character of an f-string's literal part or format spec.

        Follows the 3.12 tokenizer: a backslash takes the next character
        except a brace; ``\\N{...}`` is an escape, not a field; ``{{`` is a
        literal brace but ``{`` in a format spec always opens a field.
        Returns False when ``c`` must be scanned again in the new mode.
        """
        spec = self.mode == M_FSPEC
        k = len(self.fstack) - 1
        while self.fstack[k][0] != F_STR:
            k -= 1
        _, quote, triple, raw, _ = self.fstack[k]
        fe = self.fesc
        if fe:
            if fe == 4:  # inside \N{...}
                if c == "}":
                    self.fesc = 0
                return True
            self.fesc = 0
            if fe == 3:  # after \N: a '{' makes it a named escape
                if c == "{":
                    self.fesc = 4
                    return True
            elif c != "{" and c != "}":  # a brace is never escaped
                if fe == 1 and c == "\r":
                    self.fesc = 2
                elif c == "N" and not raw:
                    self.fesc = 3
                self.count = 0
                return True
        if c == "\\":
            self.fesc = 1
            self.count = 0
            return True
        if c == quote:
            if triple:
                self.count += 1
                if self.count < 3:
                    return True
            self._close_fstring(p + 1)
            return True
        self.count = 0
        if c == "{":
            if spec:
                self._open_field(raw)
            else:
                self.mode = M_FLBRACE
            return True
        if c == "}":
            if spec:
                self._close_field()
            return True  # '}}', or a lone '}' the compiler will reject
        if (c == "\n" or c == "\r") and not triple and not spec:
            self._close_fstring(p)  # unterminated, as the tokenizer says
            return False
        return True

    # -- lexer ----------------------------------------------------------------

    def feed(self, text: str, begin: int = 0) -> list[Event]:
        events: list[Event] = []
        self.events = events
        self.halt = False
        n = len(text)
        i = begin
        base = self.pos - begin  # absolute offset of text[0]
        while i < n:
            c = text[i]
            p = base + i
            if self.cr:
                self.cr = False
                if c == "\n":
                    self._newline(p + 1)
                    i += 1
                    if self.halt:
                        break
                    continue
                self._newline(p)
                if self.halt:
                    break
            elif self.lfskip:
                self.lfskip = False
                if c == "\n":
                    i += 1
                    continue
            mode = self.mode
            if mode == M_CODE:
                if self.word_on:
                    if is_name_char(c):
                        m = _NAME.match(text, i)
                        assert m is not None
                        j = m.end()
                        if len(self.word) <= MAX_WORD:
                            self.word += text[i:j]
                        if self.pep701:
                            self.tail = (self.tail + text[i:j])[-3:]
                        if not self.decided:
                            self._check_prefix()
                        self.body_end = base + j
                        self.last_sig = text[j - 1]
                        i = j
                        continue
                    self._word_done()
                if self.esc:
                    self.esc = False
                    if c == "\n":
                        i += 1
                        continue
                    if c == "\r":
                        self.lfskip = True
                        i += 1
                        continue
                if c == " " or c == "\t" or c == "\x0c":
                    m = _SPACE.match(text, i)
                    assert m is not None
                    i = m.end()
                    self.tail = ""
                    continue
                if c == "\n":
                    self.tail = ""
                    self._newline(p + 1)
                    i += 1
                    if self.halt:
                        break
                    continue
                fstack = self.fstack
                if fstack and (c == "}" or c == ":"):
                    top = fstack[-1]
                    if top[0] == F_FIELD and top[1] == self.depth:
                        self.tail = ""
                        if c == "}":
                            self._close_field()
                            i += 1
                            continue
                        if not top[2]:
                            top[2] = True
                            self.mode = M_FSPEC
                            i += 1
                            continue
                if c == "\r":
                    self.cr = True
                    self.tail = ""
                elif c == "#":
                    self.mode = M_COMMENT
                    self.tail = ""
                elif c == "(" or c == "[" or c == "{":
                    self.tail = ""
                    self.depth += 1
                    self.body_end = p + 1
                    self.last_sig = c
                elif c == ")" or c == "]" or c == "}":
                    self.tail = ""
                    if self.depth > 0:
                        self.depth -= 1
                    self.body_end = p + 1
                    self.last_sig = c
                elif c == "'" or c == '"':
                    if self.pep701 and self._tail_is_fprefix():
                        self.fq = True
                        self.fraw = "r" in self.tail or "R" in self.tail
                    self.tail = ""
                    self.quote = c
                    self.mode = M_Q1
                    self.body_end = p + 1
                    self.last_sig = c
                elif c == "\\":
                    self.tail = ""
                    self.esc = True
                    self.body_end = p + 1
                    self.last_sig = c
                elif c == ":" and fstack:  # in a field, not at its top level
                    self.tail = ""
                    self.body_end = p + 1
                    self.last_sig = c
                else:
                    m = (_PLAIN_FIELD if fstack else _PLAIN).match(text, i)
                    assert m is not None
                    j = m.end()
                    self.body_end = base + j
                    self.last_sig = text[j - 1]
                    if self.pep701:
                        self._plain_tail(text[i:j])
                    i = j
                    continue
                i += 1
            elif mode in (M_FSTR, M_FSPEC):
                if self._fstring_char(c, p):
                    i += 1
            elif mode == M_FLBRACE:
                if c == "{":  # '{{': a literal brace
                    self.mode = M_FSTR
                    i += 1
                else:
                    k = len(self.fstack) - 1
                    self._open_field(self.fstack[k][3])  # scan c again as code
            elif mode == M_STR:
                if self.esc:
                    self.esc = False
                    if c == "\r":
                        self.lfskip = True
                    i += 1
                    continue
                if c == "\\":
                    self.esc = True
                elif c == self.quote:
                    self.mode = M_CODE
                    self.body_end = p + 1
                    self.last_sig = c
                elif c == "\n":  # unterminated: the tokenizer gives up here too
                    self.mode = M_CODE
                    self.body_end = p
                    self._newline(p + 1)
                    i += 1
                    if self.halt:
                        break
                    continue
                elif c == "\r":
                    self.mode = M_CODE
                    self.body_end = p
                    self.cr = True
                else:
                    m = _STR_BODY[self.quote].match(text, i)
                    assert m is not None
                    i = m.end()
                    continue
                i += 1
            elif mode == M_STR3:
                if self.esc:
                    self.esc = False
                    self.count = 0
                    i += 1
                    continue
                if c == "\\":
                    self.esc = True
                    self.count = 0
                elif c == self.quote:
                    self.count += 1
                    if self.count == 3:
                        self.mode = M_CODE
                        self.body_end = p + 1
                        self.last_sig = c
                else:
                    self.count = 0
                    m = _STR3_BODY[self.quote].match(text, i)
                    assert m is not None
                    i = m.end()
                    continue
                i += 1
            elif mode == M_COMMENT:
                if c == "\n":
                    self._newline(p + 1)
                    i += 1
                    if self.halt:
                        break
                    continue
                if c == "\r":
                    self.cr = True
                else:
                    m = _COMMENT.match(text, i)
                    assert m is not None
                    i = m.end()
                    continue
                i += 1
            elif mode == M_INDENT:
                if c == " " or c == "\t":
                    self.indented = True
                elif c == "\x0c" or (c == "\ufeff" and p == 0):  # a BOM is not code
                    self.indented = False
                elif c == "\n":
                    self._newline(p + 1)
                elif c == "\r":
                    self.cr = True
                elif c == "#":
                    self.mode = M_COMMENT
                else:
                    self._line_begin(p, c)
                    continue  # scan c again as code
                i += 1
            elif mode == M_BINDENT:
                if c == " " or c == "\t":
                    self.bind = True
                elif c == "\x0c":
                    self.bind = False
                elif c == "\n":
                    self._newline(p + 1)
                elif c == "\r":
                    self.cr = True
                elif c == "#":
                    self.mode = M_COMMENT
                else:
                    self.mode = M_CODE
                    if not self.bind and self.probe and is_name_start(c):
                        self.pline = True
                        self.bline_start = p
                    continue  # scan c again as code
                i += 1
            elif mode == M_Q1:
                if c == self.quote:
                    self.mode = M_Q2
                    self.body_end = p + 1
                    i += 1
                elif self.fq:
                    self.fq = False
                    self.fstack.append([F_STR, self.quote, False, self.fraw, self.depth])
                    self.mode = M_FSTR  # scan c again in the f-string
                else:
                    self.mode = M_STR  # scan c again as string content
            else:  # M_Q2
                if c == self.quote:
                    self.count = 0
                    self.body_end = p + 1
                    i += 1
                    if self.fq:
                        self.fq = False
                        self.fstack.append([F_STR, self.quote, True, self.fraw, self.depth])
                        self.mode = M_FSTR
                    else:
                        self.mode = M_STR3
                else:
                    self.fq = False
                    self.mode = M_CODE  # an empty string; scan c again as code
        self.pos = base + i
        self.stop = i
        return events

    def close(self) -> list[Event]:
        """End of stream: cut whatever statement is still open."""
        events: list[Event] = []
        self.events = events
        self.closing = True
        p = self.pos
        self.lfskip = False
        if self.cr:
            self.cr = False
            self._newline(p)
        if self.word_on:
            self._word_done()
        if self.mode in (M_STR, M_STR3, M_Q1, M_FSTR, M_FSPEC, M_FLBRACE):
            self.body_end = p
        if self.in_line:
            self.in_line = False
            self.new_stmt = False
            self.stmt_end = p
            self.stmt_body = self.body_end
            self._cut()
        elif self.state != S_IDLE:
            self._cut()
        return events

    def flush(self, held: bool = False) -> list[Event]:
        """End of a code unit: cut the open statement as ``close`` does, then go on.

        The scanner restarts at the current offset as at the start of a
        stream, so the next text is read from a fresh line.  A trailing
        ``\r`` is held back (a ``\n`` may follow it): the cut goes before
        it and it is read again as the first character of the next unit, so
        a flush never splits a ``\r\n`` between two chunks.  The scanner
        knows a newline ``\r``; ``held`` says the last character is a
        ``\r`` it took as string content (the caller has the text).
        """
        p = self.pos
        held = held or self.cr or self.lfskip
        if held:
            self.cr = False
            self.lfskip = False
            self.pos = p - 1
        events = self.close()
        self.restart(p)
        self.cr = held
        return events
