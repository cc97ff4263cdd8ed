# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The incremental statement scanner, compiled: the hot loop of eager_rt.

Same state machine, same events, same method names as
``eager_rt/scanner_pure.py``, which is the specification (read it for the
why).  Only the representation differs: typed integers for every piece of
state and a character-by-character loop over the ``str`` buffer instead of
regular-expression skips.  Any change must be made in both files; the
differential tests compare them on every input they have.
"""

from eager_rt.scanner_pure import (
    PEP701,
    CONT_PREFIXES,
    DECO_PREFIXES,
    EV_CUT,
    EV_PROBE,
    EV_SPEC,
    MAX_WORD,
    WORDS,
)

cdef enum:
    W_OTHER = 0
    W_COMPOUND = 1
    W_DEF = 2
    W_ASYNC = 3
    W_CONT = 4
    W_MATCH = 5
    W_AT = 6

cdef enum:
    M_INDENT = 0
    M_CODE = 1
    M_COMMENT = 2
    M_Q1 = 3
    M_Q2 = 4
    M_STR = 5
    M_STR3 = 6
    M_BINDENT = 7
    M_FSTR = 8
    M_FLBRACE = 9
    M_FSPEC = 10

cdef enum:
    F_STR = 0
    F_FIELD = 1

cdef enum:
    S_IDLE = 0
    S_COMPOUND = 1
    S_DECO = 2
    S_ANY = 3

cdef Py_ssize_t C_MAX_WORD = MAX_WORD
cdef object _WORDS = WORDS
cdef object _CONT_PREFIXES = CONT_PREFIXES
cdef object _DECO_PREFIXES = DECO_PREFIXES
cdef int C_EV_CUT = EV_CUT
cdef int C_EV_PROBE = EV_PROBE
cdef int C_EV_SPEC = EV_SPEC


cdef inline bint is_name_start(Py_UCS4 c) noexcept:
    return (c >= 97 and c <= 122) or (c >= 65 and c <= 90) or c == 95 or c >= 128


cdef inline bint is_prefix_letter(Py_UCS4 c) noexcept:
    return (c == u'r' or c == u'R' or c == u'b' or c == u'B' or c == u'u' or c == u'U'
            or c == u'f' or c == u'F')


cdef inline bint is_name_char(Py_UCS4 c) noexcept:
    return ((c >= 97 and c <= 122) or (c >= 65 and c <= 90) or (c >= 48 and c <= 57)
            or c == 95 or c >= 128)


cdef class Scanner:
    """Incremental lexer + top-level statement state machine (Cython)."""

    cdef public bint probe
    cdef public Py_ssize_t stop
    cdef Py_ssize_t pos
    cdef int mode
    cdef Py_ssize_t depth
    cdef Py_UCS4 quote
    cdef int count
    cdef bint esc
    cdef bint cr
    cdef bint lfskip
    cdef bint indented
    cdef bint bind
    cdef bint in_line
    cdef Py_ssize_t line_start
    cdef Py_ssize_t body_end
    cdef Py_UCS4 last_sig
    cdef str word
    cdef bint word_on
    cdef bint pline
    cdef bint decided
    cdef bint new_stmt
    cdef int state
    cdef Py_ssize_t stmt_start
    cdef int stmt_kind
    cdef Py_ssize_t stmt_end
    cdef Py_ssize_t stmt_body
    cdef Py_ssize_t last_cut
    cdef Py_ssize_t probe_min
    cdef Py_ssize_t trivia
    cdef Py_ssize_t bline_start
    cdef bint halt
    cdef bint closing
    cdef list events
    cdef public bint pep701
    cdef int tail_len
    cdef bint tail_ok
    cdef bint tail_f
    cdef bint tail_r
    cdef bint fq
    cdef bint fraw
    cdef list fstack
    cdef int fesc

    def __init__(self, bint probe=True, bint pep701=PEP701):
        self.probe = probe
        self.pep701 = pep701
        self.stop = 0
        self.restart(0)

    cpdef restart(self, Py_ssize_t pos):
        self.pos = pos
        self.mode = M_INDENT
        self.depth = 0
        self.quote = 0
        self.count = 0
        self.esc = False
        self.cr = False
        self.lfskip = False
        self.indented = False
        self.bind = False
        self.in_line = False
        self.line_start = pos
        self.body_end = pos
        self.last_sig = 0
        self.word = ""
        self.word_on = False
        self.pline = False
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
        self.events = []
        self._tail_reset()
        self.fq = False
        self.fraw = False
        self.fstack = []
        self.fesc = 0

    # -- statement state machine -------------------------------------------

    cdef void _cut(self) except *:
        self.events.append((C_EV_CUT, self.stmt_end, self.stmt_body, self.stmt_start,
                            self.stmt_kind))
        self.last_cut = self.stmt_end
        self.state = S_IDLE
        self.probe_min = 0

    cdef inline void _start_stmt(self, int kind) noexcept:
        self.decided = True
        self.new_stmt = True
        self.stmt_start = self.line_start
        self.stmt_kind = kind

    cdef void _decide(self, int kind) except *:
        cdef int st = self.state
        self.decided = True
        if st == S_COMPOUND and kind == W_CONT:
            return
        if st == S_DECO:
            if kind == W_AT:
                return
            if kind == W_DEF or kind == W_ASYNC:
                self.state = S_COMPOUND
                return
        if st != S_IDLE:
            self._cut()
        self._start_stmt(kind)

    cdef void _check_prefix(self) except *:
        cdef int st = self.state
        if (st == S_IDLE or st == S_ANY
                or (st == S_COMPOUND and self.word not in _CONT_PREFIXES)
                or (st == S_DECO and self.word not in _DECO_PREFIXES)):
            if st != S_IDLE:
                self._cut()
            self._start_stmt(W_OTHER)

    cdef void _word_done(self) except *:
        cdef int kind
        self.word_on = False
        kind = _WORDS.get(self.word, W_OTHER)
        if not self.decided:
            self._decide(kind)
        elif self.new_stmt:
            self.stmt_kind = kind

    cdef void _line_begin(self, Py_ssize_t p, Py_UCS4 c) except *:
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
            self._decide(W_AT if c == u'@' else W_OTHER)

    cdef void _line_end(self, Py_ssize_t end) except *:
        cdef int k
        self.in_line = False
        self.trivia = 0
        self.stmt_end = end
        self.stmt_body = self.body_end
        if self.new_stmt:
            self.new_stmt = False
            k = self.stmt_kind
            if (k == W_COMPOUND or k == W_DEF or k == W_ASYNC or k == W_CONT
                    or (k == W_MATCH and self.last_sig == u':')):
                self.state = S_COMPOUND
            elif k == W_AT:
                self.state = S_DECO
            else:
                self._cut()

    cdef void _newline(self, Py_ssize_t end) except *:
        cdef Py_ssize_t size
        cdef bint pline = self.pline
        self.pline = False
        if self.depth > 0:
            self.mode = M_BINDENT
            self.bind = False
            if pline:
                size = end - self.last_cut
                if size >= self.probe_min and not self.closing:
                    self.probe_min = 2 * size
                    self.events.append((C_EV_PROBE, self.bline_start, end, 0, 0))
                    self.halt = True
            return
        if self.in_line:
            self._line_end(end)
        elif self.mode != M_INDENT:  # a comment line
            self.trivia = 0
        else:  # a blank line
            self.trivia += 1
            if self.trivia <= 2 and self.state == S_COMPOUND and not self.closing:
                self.events.append((C_EV_SPEC, self.stmt_end, self.stmt_body, self.trivia, 0))
        self.mode = M_INDENT
        self.indented = False

    # -- f-strings as nested code (3.12+) ---------------------------------------

    cdef inline void _tail_reset(self) noexcept:
        self.tail_len = 0
        self.tail_ok = True
        self.tail_f = False
        self.tail_r = False

    cdef inline void _tail_add(self, Py_UCS4 c) noexcept:
        if self.tail_len < 3:
            self.tail_len += 1
            if self.tail_len <= 2:
                if not is_prefix_letter(c):
                    self.tail_ok = False
                if c == u'f' or c == u'F':
                    self.tail_f = True
                if c == u'r' or c == u'R':
                    self.tail_r = True

    cdef void _open_field(self, object raw) except *:
        self.depth += 1
        self.fstack.append([F_FIELD, self.depth, False, raw])
        self.mode = M_CODE

    cdef void _close_field(self) except *:
        self.fstack.pop()
        self.depth -= 1
        self.mode = M_FSTR if self.fstack[len(self.fstack) - 1][0] == F_STR else M_FSPEC

    cdef void _close_fstring(self, Py_ssize_t body_end) except *:
        cdef list frame
        while self.fstack[len(self.fstack) - 1][0] != F_STR:
            self.fstack.pop()
        frame = self.fstack.pop()
        self.depth = frame[4]
        self.mode = M_CODE
        self.fesc = 0
        self.body_end = body_end
        self.last_sig = frame[1]

    cdef bint _fstring_char(self, Py_UCS4 c, Py_ssize_t p) except -1:
        cdef bint spec = self.mode == M_FSPEC
        cdef Py_ssize_t k = len(self.fstack) - 1
        cdef list frame
        cdef Py_UCS4 quote
        cdef bint triple, raw
        cdef int fe = self.fesc
        while self.fstack[k][0] != F_STR:
            k -= 1
        frame = self.fstack[k]
        quote = frame[1]
        triple = frame[2]
        raw = frame[3]
        if fe:
            if fe == 4:
                if c == u'}':
                    self.fesc = 0
                return True
            self.fesc = 0
            if fe == 3:
                if c == u'{':
                    self.fesc = 4
                    return True
            elif c != u'{' and c != u'}':
                if fe == 1 and c == u'\r':
                    self.fesc = 2
                elif c == u'N' and not raw:
                    self.fesc = 3
                self.count = 0
                return True
        if c == u'\\':
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
        if c == u'{':
            if spec:
                self._open_field(raw)
            else:
                self.mode = M_FLBRACE
            return True
        if c == u'}':
            if spec:
                self._close_field()
            return True
        if (c == u'\n' or c == u'\r') and not triple and not spec:
            self._close_fstring(p)
            return False
        return True

    # -- lexer ----------------------------------------------------------------

    def feed(self, str text, Py_ssize_t begin=0):
        cdef Py_ssize_t n = len(text)
        cdef Py_ssize_t i = begin
        cdef Py_ssize_t base = self.pos - begin
        cdef Py_ssize_t p
        cdef Py_UCS4 c
        cdef int mode
        cdef list events = []
        self.events = events
        self.halt = False
        while i < n:
            c = text[i]
            p = base + i
            if self.cr:
                self.cr = False
                if c == u'\n':
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
                if c == u'\n':
                    i += 1
                    continue
            mode = self.mode
            if mode == M_CODE:
                if self.word_on:
                    if is_name_char(c):
                        if len(self.word) <= C_MAX_WORD:
                            self.word += c
                        self._tail_add(c)
                        if not self.decided:
                            self._check_prefix()
                        self.body_end = p + 1
                        self.last_sig = c
                        i += 1
                        continue
                    self._word_done()
                if self.esc:
                    self.esc = False
                    if c == u'\n':
                        i += 1
                        continue
                    if c == u'\r':
                        self.lfskip = True
                        i += 1
                        continue
                if c == u' ' or c == u'\t' or c == u'\x0c':
                    self._tail_reset()
                    i += 1
                    continue
                if c == u'\n':
                    self._tail_reset()
                    self._newline(p + 1)
                    i += 1
                    if self.halt:
                        break
                    continue
                if self.fstack and (c == u'}' or c == u':'):
                    top = self.fstack[len(self.fstack) - 1]
                    if top[0] == F_FIELD and top[1] == self.depth:
                        self._tail_reset()
                        if c == u'}':
                            self._close_field()
                            i += 1
                            continue
                        if not top[2]:
                            top[2] = True
                            self.mode = M_FSPEC
                            i += 1
                            continue
                if c == u'\r':
                    self._tail_reset()
                    self.cr = True
                elif c == u'#':
                    self._tail_reset()
                    self.mode = M_COMMENT
                elif c == u'(' or c == u'[' or c == u'{':
                    self._tail_reset()
                    self.depth += 1
                    self.body_end = p + 1
                    self.last_sig = c
                elif c == u')' or c == u']' or c == u'}':
                    self._tail_reset()
                    if self.depth > 0:
                        self.depth -= 1
                    self.body_end = p + 1
                    self.last_sig = c
                elif c == u"'" or c == u'"':
                    if (self.pep701 and self.tail_len > 0 and self.tail_len <= 2 and self.tail_ok
                            and self.tail_f):
                        self.fq = True
                        self.fraw = self.tail_r
                    self._tail_reset()
                    self.quote = c
                    self.mode = M_Q1
                    self.body_end = p + 1
                    self.last_sig = c
                elif c == u'\\':
                    self._tail_reset()
                    self.esc = True
                    self.body_end = p + 1
                    self.last_sig = c
                else:
                    if is_name_char(c):
                        self._tail_add(c)
                    else:
                        self._tail_reset()
                    self.body_end = p + 1
                    self.last_sig = c
                i += 1
            elif mode == M_FSTR or mode == M_FSPEC:
                if self._fstring_char(c, p):
                    i += 1
            elif mode == M_FLBRACE:
                if c == u'{':
                    self.mode = M_FSTR
                    i += 1
                else:
                    self._open_field(self.fstack[len(self.fstack) - 1][3])
            elif mode == M_STR:
                if self.esc:
                    self.esc = False
                    if c == u'\r':
                        self.lfskip = True
                elif c == u'\\':
                    self.esc = True
                elif c == self.quote:
                    self.mode = M_CODE
                    self.body_end = p + 1
                    self.last_sig = c
                elif c == u'\n':
                    self.mode = M_CODE
                    self.body_end = p
                    self._newline(p + 1)
                    i += 1
                    if self.halt:
                        break
                    continue
                elif c == u'\r':
                    self.mode = M_CODE
                    self.body_end = p
                    self.cr = True
                i += 1
            elif mode == M_STR3:
                if self.esc:
                    self.esc = False
                    self.count = 0
                elif c == u'\\':
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
                i += 1
            elif mode == M_COMMENT:
                if c == u'\n':
                    self._newline(p + 1)
                    i += 1
                    if self.halt:
                        break
                    continue
                elif c == u'\r':
                    self.cr = True
                i += 1
            elif mode == M_INDENT:
                if c == u' ' or c == u'\t':
                    self.indented = True
                elif c == u'\x0c' or (c == 0xfeff and p == 0):
                    self.indented = False
                elif c == u'\n':
                    self._newline(p + 1)
                elif c == u'\r':
                    self.cr = True
                elif c == u'#':
                    self.mode = M_COMMENT
                else:
                    self._line_begin(p, c)
                    continue
                i += 1
            elif mode == M_BINDENT:
                if c == u' ' or c == u'\t':
                    self.bind = True
                elif c == u'\x0c':
                    self.bind = False
                elif c == u'\n':
                    self._newline(p + 1)
                elif c == u'\r':
                    self.cr = True
                elif c == u'#':
                    self.mode = M_COMMENT
                else:
                    self.mode = M_CODE
                    if not self.bind and self.probe and is_name_start(c):
                        self.pline = True
                        self.bline_start = p
                    continue
                i += 1
            elif mode == M_Q1:
                if c == self.quote:
                    self.mode = M_Q2
                    self.body_end = p + 1
                    i += 1
                elif self.fq:
                    self.fq = False
                    self.fstack.append([F_STR, self.quote, False, self.fraw, self.depth])
                    self.mode = M_FSTR
                else:
                    self.mode = M_STR
            else:
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
                    self.mode = M_CODE
        self.pos = base + i
        self.stop = i
        return events

    def close(self):
        cdef list events = []
        cdef Py_ssize_t p = self.pos
        self.events = events
        self.closing = True
        self.lfskip = False
        if self.cr:
            self.cr = False
            self._newline(p)
        if self.word_on:
            self._word_done()
        if (self.mode == M_STR or self.mode == M_STR3 or self.mode == M_Q1
                or self.mode == M_FSTR or self.mode == M_FSPEC or self.mode == M_FLBRACE):
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

    def flush(self, bint held=False):
        cdef Py_ssize_t p = self.pos
        cdef list events
        held = held or self.cr or self.lfskip
        if held:
            self.cr = False
            self.lfskip = False
            self.pos = p - 1
        events = self.close()
        self.restart(p)
        self.cr = held
        return events
