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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from eager_rt.result import ChunkRecord

__all__ = ["BatchPolicy", "DefaultPolicy", "checked_take"]


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
