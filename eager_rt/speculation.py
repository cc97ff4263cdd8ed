"""Speculative tool calls: start read-only calls while the model is still writing them.

Where it sits: the runtime feeds every streamed piece of code to a
:class:`Speculator` *before* the chunker sees it. The speculator keeps an
incremental lexer over the code so far (strings with every prefix, f-string
fields, comments, brackets, continuation lines, indentation: one pass over
each character, resumable at any piece boundary, so unfinished strings and
blocks are never misread). Each time a ``)`` closes a call of a tool that may
be speculated, the call's text is parsed on its own (``ast.parse``: the
interpreter judges, we never guess) and its arguments are evaluated without
running any code:

* literals, and containers, f-strings and simple arithmetic of them;
* the loop variable of an enclosing ``for`` (or comprehension) over a literal,
  a ``range(...)`` or a session value: one call per element, while the loop's
  body is still streaming;
* names bound in the session to plain data (and constant subscripts of them),
  read with :meth:`~eager_rt.executor.Session.peek` between executions.

A call whose arguments are known is handed to
:meth:`~eager_rt.tools.ToolHost.speculate`, which binds them to the tool's
signature (defaults applied, as the generated stub sends them) and starts the
call; when the code later makes the same call, it gets that call's result.
Only tools declared ``read_only=True`` (and not requiring approval) are ever
speculated. A guess that turns out wrong (a name rebound before the call, a
branch not taken) costs one wasted read-only call, reported in the records.

Names bound inside an unfinished block (assignments, ``with ... as``,
function parameters, targets of loops we cannot expand) are never resolved
from the session: their session value, if any, is not the one the call will see.
"""

from __future__ import annotations

import ast
import itertools
import keyword
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from eager_rt.executor import Session
    from eager_rt.tools import Tool, ToolCall, ToolHost

__all__ = [
    "CallSite",
    "Origin",
    "Scanner",
    "SpeculationSummary",
    "Speculator",
    "eligible_tools",
    "expand",
    "summarize",
]

#: where a speculated call's arguments came from
Origin = Literal["literal", "session"]

#: calls one call site may expand to (a loop over a long list speculates its first elements)
MAX_EXPANSION = 64
#: the largest string or container an argument expression may build
_MAX_SIZE = 100_000


# --------------------------------------------------------------------------- options


def eligible_tools(tools: Mapping[str, Tool], speculate: bool | Iterable[str]) -> frozenset[str]:
    """The tools ``speculate=`` allows: read-only ones without approval, never another.

    ``True`` means every such tool; a list names them, and naming a tool that
    is unknown, not read-only or requires approval is an error (it would
    silently never be speculated otherwise).
    """
    if speculate is False:
        return frozenset()
    if speculate is True:
        return frozenset(
            name for name, t in tools.items() if t.read_only and not t.requires_approval
        )
    if isinstance(speculate, str):
        raise TypeError("speculate= takes True, False or a list of tool names, not a string")
    names = frozenset(speculate)
    for name in sorted(names):
        t = tools.get(name)
        if t is None:
            raise ValueError(f"speculate= names {name!r}, which is not one of the tools")
        if not t.read_only:
            raise ValueError(
                f"tool {name!r} is not declared read_only=True: it is never speculated"
            )
        if t.requires_approval:
            raise ValueError(f"tool {name!r} requires approval: it is never speculated")
    return names


# --------------------------------------------------------------------------- the lexer

_STRING_PREFIXES = frozenset({"r", "u", "b", "f", "br", "rb", "fr", "rf"})
#: first words of compound statements: a ``:`` at bracket depth 0 opens their block
_BLOCK_WORDS = frozenset(
    {"for", "async", "def", "class", "if", "elif", "else", "while", "with", "try", "except",
     "finally", "match", "case"}
)  # fmt: skip
_KEYWORDS = frozenset(keyword.kwlist)
_TOKEN = re.compile(
    r"(?P<ws>[ \t\f]+)"
    r"|(?P<nl>\r\n|\r|\n)"
    r"|(?P<cont>\\(?:\r\n|\r|\n)?)"
    r"|(?P<comment>\#[^\r\n]*)"
    r"|(?P<name>[^\W\d]\w*)"
    r"|(?P<number>(?:\d|\.\d)(?:[eE][+-]|[\w.])*)"
    r"|(?P<quote>['\"])"
    r"|(?P<op>.)",
    re.DOTALL,
)
#: the characters that matter inside a string, by (quote, is an f-string)
_STRING_STOPS = {
    (q, fmt): re.compile("[\\\\\r\n" + q + ("{}" if fmt else "") + "]")
    for q in "'\"" for fmt in (False, True)
}  # fmt: skip
#: token kinds that may grow with the next piece: wait for it before deciding
_GROWING = frozenset({"ws", "cont", "comment", "name", "number"})


@dataclass(slots=True)
class CallSite:
    """One complete call of a speculable tool found in the stream."""

    tool: str
    call: ast.Call
    offset: int  #: stream offset where the call's text starts
    #: enclosing ``for`` loops and comprehensions, outermost first: (target, iterable)
    loops: list[tuple[ast.expr, ast.expr]] = field(default_factory=list)
    #: names bound inside the unfinished blocks around the call: never read from the session
    local: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Bracket:
    """An open bracket, or an f-string replacement field (``kind == "f{"``)."""

    kind: str
    start: int
    callee: str | None  #: the speculable tool this ``(`` calls
    callee_start: int
    has_for: bool = False
    sites: list[CallSite] = field(default_factory=list)


@dataclass(slots=True)
class _String:
    quote: str  #: the closing quote: ``'``, ``"``, ``'''`` or ``\"\"\"``
    raw: bool
    fmt: bool


@dataclass(slots=True)
class _Block:
    """An unfinished compound statement (by indentation)."""

    indent: int
    loop: tuple[ast.expr, ast.expr] | None = None
    targets: frozenset[str] = frozenset()  #: the loop's variables
    assigned: set[str] = field(default_factory=set)  #: other names bound inside


class Scanner:
    """Incremental lexer over streamed code that reports complete calls of given tools.

    ``feed(piece)`` returns the call sites the piece completed, in order. Each
    character is looked at once (a token that may still grow at the end of
    the text waits for the next piece); nothing already reported is reported
    again. Calls nested in brackets come out when the outermost bracket
    closes, so a comprehension's ``for`` (which follows its body) is known.
    """

    def __init__(self, tools: Collection[str]) -> None:
        self.tools = frozenset(tools)
        self.text = ""
        self.pos = 0
        self.stack: list[_Bracket | _String] = []
        self.blocks: list[_Block] = []
        self.line_start: int | None = None  # first token of the current logical line
        self.line_word = ""  # its first word
        self.line_opened = False  # its block-opening ``:`` was seen
        self.phys_start = 0  # offset where the current physical line starts
        self.prev: tuple[str, str] = ("", "")  # last significant token (kind, text)
        self.prev2: tuple[str, str] = ("", "")
        self.prev_start = 0  # where the last significant token starts
        self.indent = 0  # indentation of the current logical line
        self.out: list[CallSite] = []

    # ------------------------------------------------------------------ driving
    def feed(self, piece: str) -> list[CallSite]:
        self.text += piece
        self.out = []
        while self.pos < len(self.text):
            top = self.stack[-1] if self.stack else None
            step = self._in_string(top) if isinstance(top, _String) else self._in_code()
            if step is None:
                break  # the rest needs the next piece
            self.pos = step
        return self.out

    # ------------------------------------------------------------------ strings
    def _in_string(self, s: _String) -> int | None:
        text, pos = self.text, self.pos
        n = len(text)
        m = _STRING_STOPS[s.quote[0], s.fmt].search(text, pos)
        if m is None:
            return n
        i = m.start()
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                return i if i > pos else None
            return i + 2
        if c in "\r\n":
            if len(s.quote) == 3:
                return i + 1
            self.stack.pop()  # an unterminated one-line string: the line ends it
            return i
        if c in "{}":
            if i + 1 >= n:
                return i if i > pos else None
            if text[i + 1] == c:
                return i + 2
            if c == "{":
                self.stack.append(_Bracket("f{", i, None, i))
            return i + 1
        # a quote
        if len(s.quote) == 3:
            if n - i < 3:
                return i if i > pos else None
            if text.startswith(s.quote, i):
                self.stack.pop()
                return i + 3
            return i + 1
        self.stack.pop()
        return i + 1

    def _open_string(self, start: int, prefix: str) -> int | None:
        """A string starts at ``start`` (its quote after ``prefix``); None: wait for text."""
        q = start + len(prefix)
        text = self.text
        quote = text[q]
        if len(text) - q < 3 and text[q:] == quote * (len(text) - q):
            return None  # '' or " at the end: maybe a triple quote
        triple = text.startswith(quote * 3, q)
        lower = prefix.lower()
        self.stack.append(_String(quote * 3 if triple else quote, "r" in lower, "f" in lower))
        self._token("string", "", start)
        return q + (3 if triple else 1)

    # ------------------------------------------------------------------ code
    def _in_code(self) -> int | None:
        text, pos = self.text, self.pos
        m = _TOKEN.match(text, pos)
        assert m is not None
        kind = m.lastgroup or "op"
        end = m.end()
        if end >= len(text) and kind in _GROWING:
            return None
        if kind == "ws" or kind == "comment":
            return end
        if kind == "cont":
            return end if end - pos > 1 else pos + 1
        if kind == "nl":
            self.phys_start = end
            if not self.stack and self.line_start is not None:
                self._line_end(pos)
            return end
        if kind == "name":
            word = m.group()
            if end < len(text) and text[end] in "'\"" and word.lower() in _STRING_PREFIXES:
                return self._open_string(pos, word)
            self._token("name", word, pos)
            top = self.stack[-1] if self.stack else None
            if word == "for" and isinstance(top, _Bracket) and top.kind != "f{":
                top.has_for = True
            return end
        if kind == "quote":
            return self._open_string(pos, "")
        if kind == "number":
            self._token("number", m.group(), pos)
            return end
        c = m.group()
        if c in "([{":
            callee, callee_start = None, pos
            name_kind, name = self.prev
            if (
                c == "("
                and name_kind == "name"
                and name in self.tools
                and self.prev2[1] not in (".", "def", "class")
            ):
                callee, callee_start = name, self.prev_start
            self._token("op", c, pos)
            self.stack.append(_Bracket(c, pos, callee, callee_start))
            return end
        if c in ")]}":
            self._token("op", c, pos)
            self._close(c, pos)
            return end
        self._token("op", c, pos)
        if c == ":" and not self.stack and not self.line_opened and self.line_word in _BLOCK_WORDS:
            self.line_opened = True
            self._open_block(pos)
        return end

    def _token(self, kind: str, text: str, start: int) -> None:
        if self.line_start is None and not self.stack:
            self._line_begins(start, text)
        self.prev2 = self.prev
        self.prev = (kind, text)
        self.prev_start = start

    def _line_begins(self, start: int, word: str) -> None:
        indent = start - self.phys_start
        while self.blocks and self.blocks[-1].indent >= indent:
            self.blocks.pop()
        self.line_start = start
        self.line_word = word
        self.line_opened = False
        self.indent = indent

    def _line_end(self, end: int) -> None:
        start = self.line_start
        self.line_start = None
        if start is None or not self.blocks:
            return
        try:
            tree = ast.parse(self.text[start:end])
        except SyntaxError:
            return  # a header without its body, or else:, except: ...
        self.blocks[-1].assigned.update(_stored_names(tree))

    def _open_block(self, colon: int) -> None:
        assert self.line_start is not None
        header = self.text[self.line_start : colon]
        block = _Block(self.indent)
        node: ast.stmt | None = None
        try:
            node = ast.parse(header + ":\n pass").body[0]
        except SyntaxError:
            node = None
        if isinstance(node, (ast.For, ast.AsyncFor)):
            block.loop = (node.target, node.iter)
            block.targets = frozenset(_stored_names(node.target))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            params = [*a.posonlyargs, *a.args, *a.kwonlyargs]
            params += [p for p in (a.vararg, a.kwarg) if p is not None]
            block.assigned.update(p.arg for p in params)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    block.assigned.update(_stored_names(item.optional_vars))
        elif self.line_word == "except":
            block.assigned.update(re.findall(r"\bas\s+([^\W\d]\w*)", header))
        elif self.line_word == "for":
            block.assigned.update(re.findall(r"[^\W\d]\w*", header.split(" in ", 1)[0]))
        self.blocks.append(block)

    def _close(self, c: str, pos: int) -> None:
        top = self.stack[-1] if self.stack else None
        if not isinstance(top, _Bracket):
            return  # a stray closer (invalid code): nothing to match
        if c == "}" and top.kind == "f{":
            self.stack.pop()
            self._bubble(top.sites)
            return
        if {"(": ")", "[": "]", "{": "}"}.get(top.kind) != c:
            return
        self.stack.pop()
        sites = top.sites
        if top.has_for:
            sites = _comprehension_loops(self.text[top.start : pos + 1], sites)
        if top.callee is not None:
            site = self._site(top.callee, top.callee_start, pos)
            if site is not None and not _arg_names(site.call):
                self.out.append(site)  # literal arguments: known now, whatever encloses it
            elif site is not None:
                sites = [*sites, site]
        self._bubble(sites)

    def _bubble(self, sites: list[CallSite]) -> None:
        """Hand finished sites to the enclosing bracket, or report them at depth 0."""
        if not sites:
            return
        for item in reversed(self.stack):
            if isinstance(item, _Bracket):
                item.sites.extend(sites)
                return
        self.out.extend(sites)

    def _site(self, tool: str, start: int, close: int) -> CallSite | None:
        try:
            node = ast.parse(self.text[start : close + 1].strip(), mode="eval").body
        except SyntaxError:
            return None
        if not isinstance(node, ast.Call):
            return None
        loops: list[tuple[ast.expr, ast.expr]] = []
        local: set[str] = set()
        rebound: set[str] = set()  # names assigned in a block or a block inside it
        for block in reversed(self.blocks):
            rebound |= block.assigned
            local |= block.assigned
            if block.loop is not None and not block.targets & rebound:
                loops.append(block.loop)
            else:
                local |= block.targets  # a loop variable the body rebinds: unknowable
        loops.reverse()
        return CallSite(tool, node, start, loops, frozenset(local))


def _stored_names(tree: ast.AST) -> set[str]:
    return {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }


def _comprehension_loops(text: str, sites: list[CallSite]) -> list[CallSite]:
    """Sites inside a comprehension get its generators as their innermost loops."""
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        return sites
    if not isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
        return sites
    generators = [(g.target, g.iter) for g in node.generators]
    filtered = any(g.ifs for g in node.generators)
    out = []
    for site in sites:
        if filtered:
            # an ``if`` we cannot evaluate: every name of the comprehension is unknowable
            names = set().union(*(_stored_names(t) for t, _ in generators))
            out.append(CallSite(site.tool, site.call, site.offset, site.loops, site.local | names))
        else:
            out.append(
                CallSite(site.tool, site.call, site.offset, site.loops + generators, site.local)
            )
    return out


# --------------------------------------------------------------------------- evaluation


class _Unknown(Exception):
    """The expression cannot be evaluated without running code."""


class _Missing(Exception):
    """Session names the expression needs and we do not have yet."""

    def __init__(self, names: set[str]) -> None:
        self.names = names


_SAFE_BUILTINS: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "len": len,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sum": sum,
    "sorted": sorted,
    "list": list,
    "tuple": tuple,
}
_SAFE_METHODS: dict[type, frozenset[str]] = {
    str: frozenset(
        {"lower", "upper", "strip", "lstrip", "rstrip", "title", "capitalize", "casefold",
         "replace", "join", "split", "startswith", "endswith"}
    ),
    dict: frozenset({"get", "keys", "values", "items"}),
}  # fmt: skip
_PLAIN_TYPES = (str, int, float, bool, type(None), bytes, list, tuple, dict)
#: functions an argument may call by name (``range`` and ``enumerate`` in loops)
_FUNCTIONS = frozenset({*_SAFE_BUILTINS, "range", "enumerate"})


def _bounded(value: Any) -> Any:
    if isinstance(value, (str, bytes, list, tuple, dict)) and len(value) > _MAX_SIZE:
        raise _Unknown
    return value


class _Evaluator:
    """Evaluates argument expressions over plain data: never runs code of the program."""

    def __init__(
        self, env: Mapping[str, Any], session: Mapping[str, Any], blocked: Collection[str]
    ):
        self.env = env
        self.session = session
        self.blocked = blocked
        self.used_session = False

    def name(self, name: str) -> Any:
        if name in self.env:
            return self.env[name]
        if name in self.blocked:
            raise _Unknown
        if name not in self.session:
            raise _Missing({name})
        self.used_session = True
        return self.session[name]

    def __call__(self, node: ast.expr) -> Any:  # noqa: C901 - one branch per node type
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (str, int, float, bool, bytes)) or node.value is None:
                return node.value
            raise _Unknown
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, (ast.List, ast.Tuple)):
            items: list[Any] = []
            for elt in node.elts:
                if isinstance(elt, ast.Starred):
                    items.extend(self.iterate(elt.value))
                else:
                    items.append(self(elt))
            return _bounded(items if isinstance(node, ast.List) else tuple(items))
        if isinstance(node, ast.Dict):
            out: dict[Any, Any] = {}
            for k, v in zip(node.keys, node.values, strict=True):
                if k is None:
                    spread = self(v)
                    if not isinstance(spread, dict):
                        raise _Unknown
                    out.update(spread)
                else:
                    key = self(k)
                    if not isinstance(key, (str, int, float, bool)) and key is not None:
                        raise _Unknown
                    out[key] = self(v)
            return _bounded(out)
        if isinstance(node, ast.Subscript):
            container = self(node.value)
            if isinstance(node.slice, ast.Slice):
                s = node.slice
                bounds = [None if b is None else self(b) for b in (s.lower, s.upper, s.step)]
                if not all(b is None or type(b) is int for b in bounds):
                    raise _Unknown
                if not isinstance(container, (str, bytes, list, tuple)):
                    raise _Unknown
                return container[slice(*bounds)]
            index = self(node.slice)
            try:
                return container[index]
            except (KeyError, IndexError, TypeError) as exc:
                raise _Unknown from exc
        if isinstance(node, ast.UnaryOp):
            operand = self(node.operand)
            if isinstance(node.op, ast.USub) and _number(operand):
                return -operand
            if isinstance(node.op, ast.UAdd) and _number(operand):
                return +operand
            if isinstance(node.op, ast.Not):
                return not operand
            raise _Unknown
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.JoinedStr):
            return _bounded("".join(self.fstring_part(v) for v in node.values))
        if isinstance(node, ast.Call):
            return self.call(node)
        raise _Unknown

    def binop(self, node: ast.BinOp) -> Any:
        left, right = self(node.left), self(node.right)
        op = node.op
        if _number(left) and _number(right):
            try:
                if isinstance(op, ast.Add):
                    return left + right
                if isinstance(op, ast.Sub):
                    return left - right
                if isinstance(op, ast.Mult):
                    return left * right
                if isinstance(op, ast.Div):
                    return left / right
                if isinstance(op, ast.FloorDiv):
                    return left // right
                if isinstance(op, ast.Mod):
                    return left % right
            except ArithmeticError as exc:
                raise _Unknown from exc
            raise _Unknown
        if isinstance(op, ast.Add) and type(left) is type(right) and isinstance(left, (str, list)):
            return _bounded(left + right)
        raise _Unknown

    def fstring_part(self, node: ast.expr) -> str:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if not isinstance(node, ast.FormattedValue):
            raise _Unknown
        value = self(node.value)
        if node.conversion == ord("r"):
            value = repr(value)
        elif node.conversion == ord("s"):
            value = str(value)
        elif node.conversion == ord("a"):
            value = ascii(value)
        spec = "" if node.format_spec is None else self(node.format_spec)
        if not isinstance(spec, str):
            raise _Unknown
        try:
            return format(value, spec)
        except (ValueError, TypeError) as exc:
            raise _Unknown from exc

    def call(self, node: ast.Call) -> Any:
        args = [self(a) for a in node.args if not isinstance(a, ast.Starred)]
        if len(args) != len(node.args) or node.keywords:
            raise _Unknown
        func = node.func
        if isinstance(func, ast.Name):
            if func.id == "range":
                if not args or not all(type(a) is int for a in args) or len(args) > 3:
                    raise _Unknown
                return range(*args)
            fn = _SAFE_BUILTINS.get(func.id)
            if fn is None or func.id in self.env or func.id in self.blocked:
                raise _Unknown
            if not all(isinstance(a, _PLAIN_TYPES) for a in args):
                raise _Unknown
            try:
                return _bounded(fn(*args))
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise _Unknown from exc
        if isinstance(func, ast.Attribute):
            owner = self(func.value)
            allowed = _SAFE_METHODS.get(type(owner), frozenset())
            if func.attr not in allowed:
                raise _Unknown
            if not all(isinstance(a, _PLAIN_TYPES) for a in args):
                raise _Unknown
            try:
                result = getattr(owner, func.attr)(*args)
            except (ValueError, TypeError) as exc:
                raise _Unknown from exc
            if func.attr in ("keys", "values", "items"):
                result = [list(p) if func.attr == "items" else p for p in result]
            return _bounded(result)
        raise _Unknown

    def iterate(self, node: ast.expr) -> Iterator[Any]:
        """The values a ``for`` over ``node`` would produce, as Python would produce them."""
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "enumerate"
            and node.func.id not in self.env
            and node.func.id not in self.blocked
            and not node.keywords
            and 1 <= len(node.args) <= 2
        ):
            start = self(node.args[1]) if len(node.args) == 2 else 0
            if type(start) is not int:
                raise _Unknown
            return ((start + i, v) for i, v in enumerate(self.iterate(node.args[0])))
        value = self(node)
        if isinstance(value, dict):
            return iter(list(value))
        if isinstance(value, (list, tuple, str, bytes, range)):
            return iter(value)
        raise _Unknown


def _number(value: Any) -> bool:
    return type(value) in (int, float, bool)


def _bind_target(target: ast.expr, value: Any, env: dict[str, Any]) -> None:
    if isinstance(target, ast.Name):
        env[target.id] = value
        return
    if isinstance(target, (ast.Tuple, ast.List)):
        if any(isinstance(t, ast.Starred) for t in target.elts):
            raise _Unknown
        if not isinstance(value, (list, tuple, str, bytes)) or len(value) != len(target.elts):
            raise _Unknown
        for sub, item in zip(target.elts, value, strict=True):
            _bind_target(sub, item, env)
        return
    raise _Unknown


def _loaded_names(node: ast.AST) -> set[str]:
    """Names ``node`` reads, except the known pure functions it calls by name."""
    skip = {
        id(n.func)
        for n in ast.walk(node)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in _FUNCTIONS
    }
    return {
        n.id
        for n in ast.walk(node)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and id(n) not in skip
    }


_METHOD_NAMES = frozenset().union(*_SAFE_METHODS.values())
#: expressions the evaluator never attempts (they run code or need control flow)
_NEVER = (
    ast.Lambda,
    ast.Await,
    ast.NamedExpr,
    ast.Yield,
    ast.YieldFrom,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.IfExp,
    ast.Compare,
    ast.BoolOp,
)


def _evaluable(node: ast.AST) -> bool:
    """Whether ``node`` could be evaluated without running code (calls only known functions)."""
    for n in ast.walk(node):
        if isinstance(n, _NEVER):
            return False
        if isinstance(n, ast.Call):
            func = n.func
            if isinstance(func, ast.Name) and func.id not in _FUNCTIONS:
                return False
            if isinstance(func, ast.Attribute) and func.attr not in _METHOD_NAMES:
                return False
            if not isinstance(func, (ast.Name, ast.Attribute)):
                return False
    return True


def _arg_names(call: ast.Call) -> set[str]:
    """The names a call's arguments read."""
    names: set[str] = set()
    for node in [*call.args, *(k.value for k in call.keywords)]:
        names |= _loaded_names(node)
    return names


@dataclass(slots=True)
class _Expansion:
    calls: list[tuple[list[Any], dict[str, Any], Origin]]
    missing: set[str]  #: session names still needed (empty: done)


def expand(
    site: CallSite,
    session: Mapping[str, Any],
    *,
    limit: int = MAX_EXPANSION,
) -> _Expansion | None:
    """The calls ``site`` will make, given the session's values; None: cannot be known."""
    call = site.call
    if not all(_evaluable(a) for a in [*call.args, *(k.value for k in call.keywords)]):
        return None
    needed = _arg_names(call)
    relevant: list[tuple[ast.expr, ast.expr]] = []
    for target, iterable in reversed(site.loops):
        bound = _stored_names(target)
        if bound & needed:
            if not _evaluable(iterable):
                return None
            relevant.append((target, iterable))
            needed = (needed - bound) | _loaded_names(iterable)
    relevant.reverse()
    free = needed
    if free & site.local:
        return None
    missing = {n for n in free if n not in session}
    if missing:
        return _Expansion([], missing)
    out: list[tuple[list[Any], dict[str, Any], Origin]] = []

    def walk(depth: int, env: dict[str, Any], from_session: bool) -> None:
        if len(out) >= limit:
            return
        if depth == len(relevant):
            ev = _Evaluator(env, session, site.local)
            args: list[Any] = []
            kwargs: dict[str, Any] = {}
            for a in call.args:
                if isinstance(a, ast.Starred):
                    args.extend(ev.iterate(a.value))
                else:
                    args.append(ev(a))
            for k in call.keywords:
                value = ev(k.value)
                if k.arg is None:
                    if not isinstance(value, dict) or not all(isinstance(x, str) for x in value):
                        raise _Unknown
                    kwargs.update(value)
                else:
                    kwargs[k.arg] = value
            used = from_session or ev.used_session
            out.append((args, kwargs, "session" if used else "literal"))
            return
        target, iterable = relevant[depth]
        ev = _Evaluator(env, session, site.local)
        values = ev.iterate(iterable)
        for value in itertools.islice(values, limit):
            inner = dict(env)
            _bind_target(target, value, inner)
            walk(depth + 1, inner, from_session or ev.used_session)
            if len(out) >= limit:
                return

    try:
        walk(0, {}, False)
    except (_Unknown, _Missing, RecursionError):
        return None
    return _Expansion(out, set())


# --------------------------------------------------------------------------- the driver


@dataclass(slots=True)
class _Waiting:
    site: CallSite
    missing: set[str]


class Speculator:
    """Scans the stream and starts the calls it can know, on a :class:`ToolHost`.

    The runtime calls :meth:`feed` with every piece (producer side),
    :meth:`executing` when an execution starts (its code's calls are about to
    be made for real), and :meth:`peek` when the session is idle, to read
    the session values waiting sites need.
    """

    def __init__(
        self,
        host: ToolHost,
        speculate: bool | Iterable[str] = True,
        *,
        max_in_flight: int = 8,
        session_values: bool = True,
    ) -> None:
        names = eligible_tools(host.tools, speculate)
        host.allow_speculation(names, max_in_flight=max_in_flight)
        self.host = host
        self.scanner = Scanner(names)
        self.session_values = session_values
        self.waiting: list[_Waiting] = []
        self.values: dict[str, Any] = {}  # peeked since the last execution started
        self.absent: set[str] = set()  # peeked since then and not plain data / unbound

    # ------------------------------------------------------------------ producer side
    def feed(self, piece: str) -> bool:
        """Scan ``piece``; start what can be started. True: some site waits for a peek."""
        for site in self.scanner.feed(piece):
            self._try(site)
        return bool(self.names_to_peek())

    def _try(self, site: CallSite) -> None:
        known = self.values if self.session_values else {}
        result = expand(site, known)
        if result is None:
            return
        if result.missing:
            if self.session_values:
                self.waiting.append(_Waiting(site, result.missing))
            return
        for args, kwargs, origin in result.calls:
            self.host.speculate(site.tool, args, kwargs, origin=origin)

    # ------------------------------------------------------------------ consumer side
    def executing(self, upto: int) -> None:
        """Code up to stream offset ``upto`` is running: its calls will be made for real.

        Sites before it are dropped, and every value read so far may change.
        """
        self.waiting = [w for w in self.waiting if w.site.offset >= upto]
        self.values.clear()
        self.absent.clear()

    def names_to_peek(self) -> list[str]:
        names: set[str] = set()
        for w in self.waiting:
            names |= w.missing
        return sorted(names - self.values.keys() - self.absent)

    async def peek(self, session: Session) -> bool:
        """Read the values waiting sites need; True if the session was asked."""
        names = self.names_to_peek()
        if not names:
            return False
        values = await session.peek(names)
        if values is None:  # this backend cannot: literal arguments only from now on
            self.session_values = False
            self.waiting.clear()
            return True
        self.values.update({k: v for k, v in values.items() if k in names})
        self.absent.update(n for n in names if n not in values)
        waiting, self.waiting = self.waiting, []
        for w in waiting:
            if w.missing <= self.absent:
                self.waiting.append(w)  # not bound yet: ask again after the next execution
                continue
            self._try(w.site)
        return True


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True, slots=True)
class SpeculationSummary:
    """How speculation went in one run, from its tool call records."""

    literal: int  #: calls started ahead of the code from literal arguments
    session: int  #: ... from values read out of the session
    claimed: int  #: speculated calls the code then made
    wasted: int  #: speculated calls the code never made
    calls: int  #: every call the code made (claimed or not speculated)

    @property
    def speculated(self) -> int:
        return self.literal + self.session


def summarize(calls: Sequence[ToolCall]) -> SpeculationSummary:
    """The :class:`SpeculationSummary` of ``RunResult.tool_calls``."""
    speculative = [c for c in calls if c.speculative]
    return SpeculationSummary(
        literal=sum(1 for c in speculative if c.origin == "literal"),
        session=sum(1 for c in speculative if c.origin == "session"),
        claimed=sum(1 for c in speculative if c.claimed),
        wasted=sum(1 for c in speculative if not c.claimed),
        calls=sum(1 for c in calls if c.claimed),
    )
