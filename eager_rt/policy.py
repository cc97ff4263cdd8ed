"""When to execute: the batching and gating decision the runtime asks for.

The runtime's consumer (:mod:`eager_rt.runtime`) owns the session. Each time
it is free and something changed (a statement arrived, generation ended), it
asks its :class:`BatchPolicy` how many of the pending statements to execute
now, as one batch, and waits when the answer is 0. The policy sees only the
pending :class:`~eager_rt.result.ChunkRecord` values, in stream order, and
whether generation is over; it holds no state of the run, so one policy object
can serve any number of runs.

:class:`DefaultPolicy` is what ``arun_stream(batching=..., gating=...)``
builds:

* **dynamic batching**: a free consumer merges *all* pending statements into
  one execution, paying the per-call overhead once;
* **gating**: statements that only define functions or classes
  (``Chunk.declaration``) cost almost nothing to run, so they wait and ride
  along with the next statement that does real work; at the end of generation
  whatever is left runs.

A custom policy is any object with the :meth:`BatchPolicy.take` method.

:class:`HoldSideEffects` wraps any policy for deployments where a
half-written program must not act: a statement that can reach a host tool
with side effects waits until its code unit is complete (``arun_stream(...,
hold_side_effects=True)`` builds it; ``docs/tools.md`` has the trade-off).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from eager_rt.result import ChunkRecord

__all__ = ["BatchPolicy", "DefaultPolicy", "HoldSideEffects", "checked_take", "runnable_at_end"]


@runtime_checkable
class BatchPolicy(Protocol):
    """Decides how much of what is pending the free consumer executes now."""

    def take(self, pending: Sequence[ChunkRecord], generation_over: bool) -> int:
        """How many of the leading ``pending`` statements to run now as one batch; 0 = wait.

        ``pending`` is never empty. Once ``generation_over`` is true nothing
        more will arrive: a policy that still answers 0 then gets everything
        pending run in one batch, so a run always ends.
        """
        ...


@dataclass(frozen=True, slots=True)
class DefaultPolicy:
    """Dynamic batching and gating, each on by default (see the module docstring)."""

    #: merge every pending statement into one execution (else one statement per execution)
    batching: bool = True
    #: hold back def/class statements until the next statement that does real work
    gating: bool = True

    def take(self, pending: Sequence[ChunkRecord], generation_over: bool) -> int:
        if not pending:
            return 0
        last = len(pending) - 1
        if self.batching and generation_over:
            return last + 1
        if self.gating:
            real = [i for i, r in enumerate(pending) if not r.chunk.declaration]
            if not real:
                # only definitions so far: let them ride with the next chunk
                return last + 1 if generation_over else 0
            return (real[-1] if self.batching else real[0]) + 1
        return last + 1 if self.batching else 1


def checked_take(policy: BatchPolicy, pending: Sequence[ChunkRecord], generation_over: bool) -> int:
    """Ask ``policy``; a count out of range is a bug in the policy and says so."""
    n = policy.take(pending, generation_over)
    if not isinstance(n, int) or not 0 <= n <= len(pending):
        raise ValueError(
            f"{type(policy).__name__}.take() returned {n!r}; "
            f"expected an int from 0 to {len(pending)} (the pending statements)"
        )
    if n == 0 and generation_over:
        return len(pending)  # nothing more will arrive: waiting would never end
    return n


def runnable_at_end(policy: BatchPolicy, pending: Sequence[ChunkRecord]) -> int:
    """Generation is over: how many leading ``pending`` statements may still run.

    The rest never run. Only a policy that holds statements for good says so
    (its ``runnable_at_end`` method, as :class:`HoldSideEffects` has); for any
    other policy everything pending runs.
    """
    ask = getattr(policy, "runnable_at_end", None)
    if ask is None:
        return len(pending)
    n = ask(pending)
    if not isinstance(n, int) or not 0 <= n <= len(pending):
        raise ValueError(
            f"{type(policy).__name__}.runnable_at_end() returned {n!r}; "
            f"expected an int from 0 to {len(pending)}"
        )
    return n


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


class HoldSideEffects:
    """Hold statements that can reach a side-effecting tool until their code unit is complete.

    Wraps ``inner`` (any :class:`BatchPolicy`); ``tools`` are the names of the
    host tools that are not read-only. The rule is syntactic, and says so:

    * a statement *mentions* a held name when the name appears in it anywhere
      (a call, a reference, inside a nested ``def``, a lambda or an f-string);
    * such a statement waits until its code unit is complete: a
      :data:`~eager_rt.sources.boundary.BOUNDARY` or the end of the stream came
      after it (``ChunkRecord.unit_complete``); the statements after it wait
      too, so the order of the program is kept;
    * the names such a statement binds at top level (assignment targets, the
      object of a method call or of an item or attribute assignment, ``def``
      and ``class`` names, imports, ``global`` names) are held names from then
      on, so a wrapper written in one code unit is held in the next;
    * when the stream ends before the unit is complete (it broke, or the run
      stopped at an error), a held statement never runs (:func:`runnable_at_end`).

    Code that reaches a tool without naming it (``eval``, ``globals()[...]``,
    an object that stored the tool before a held name did) escapes the rule;
    ``requires_approval`` is the guarantee that does not depend on syntax.
    Make one per run: it remembers the names a run's statements bound.
    """

    def __init__(self, inner: BatchPolicy, tools: Iterable[str]) -> None:
        self.inner = inner
        self.names: set[str] = set(tools)
        self._mentions: dict[int, tuple[ChunkRecord, bool]] = {}

    def take(self, pending: Sequence[ChunkRecord], generation_over: bool) -> int:
        k = self._first_held(pending)
        if k is None:
            return self.inner.take(pending, generation_over)
        if k == 0:
            return 0
        return min(k, self.inner.take(pending[:k], generation_over))

    def runnable_at_end(self, pending: Sequence[ChunkRecord]) -> int:
        k = self._first_held(pending)
        return len(pending) if k is None else k

    def holds(self, record: ChunkRecord) -> bool:
        """Whether ``record`` mentions a held name (names it binds are held from now on)."""
        known = self._mentions.get(id(record))
        if known is not None and known[0] is record:
            return known[1]
        mentioned, bound = _names(record.chunk.code)
        hit = bool(mentioned & self.names) if mentioned is not None else self._word(record)
        if hit:
            self.names |= bound
        self._mentions[id(record)] = (record, hit)
        return hit

    def _first_held(self, pending: Sequence[ChunkRecord]) -> int | None:
        for i, record in enumerate(pending):
            if self.holds(record) and not record.unit_complete:
                return i
        return None

    def _word(self, record: ChunkRecord) -> bool:
        """Code that does not parse: any word that is a held name holds it (strings too)."""
        words = set(re.findall(r"[^\W\d]\w*", record.chunk.code))
        return bool(words & self.names)


def _names(code: str) -> tuple[set[str] | None, set[str]]:
    """The names ``code`` mentions (None: it does not parse) and those it binds at top level."""
    try:
        tree = compile(
            code, "<statement>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )
    except (SyntaxError, ValueError):
        return None, set()
    mentioned = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            bound.update(node.names)
            mentioned.update(node.names)
    _top_level_bindings(tree, bound)
    return mentioned, bound


def _top_level_bindings(node: ast.AST, out: set[str]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _SCOPES):
            if not isinstance(child, ast.Lambda):
                out.add(child.name)
            continue  # its body binds its own locals
        if isinstance(child, _COMPREHENSIONS):
            continue
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store | ast.Del):
            out.add(child.id)
        elif isinstance(child, ast.Attribute | ast.Subscript) and isinstance(
            child.ctx, ast.Store | ast.Del
        ):
            _add_root(child.value, out)
        elif isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
            _add_root(child.func.value, out)  # handlers.append(send): handlers holds it now
        elif isinstance(child, ast.alias):
            out.add((child.asname or child.name).split(".")[0])
        _top_level_bindings(child, out)


def _add_root(node: ast.expr, out: set[str]) -> None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    if isinstance(node, ast.Name):
        out.add(node.id)
