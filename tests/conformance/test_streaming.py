"""The runtime end to end on every backend: eager == serial, early stop, overlap.

The runtime never knows which backend it drives; what it needs from one is
checked here, on each of them: real code run eagerly prints what the serial
program prints, a real exception stops generation with its output and line
right, and an execution does not hold up generation. The runtime's own
policies (batching, gating, failures of every kind, metrics) are tested exactly
on FakeSession in ``tests/test_runtime_policy.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from eager_rt.executor import Session
from eager_rt.runtime import arun_stream
from eager_rt.sources.replay import replay

pytestmark = pytest.mark.anyio


class Scripted:
    """Pieces with pauses between them: ``(text, seconds to wait after it)``.

    Records how far it was consumed and whether the runtime closed it.
    """

    def __init__(self, steps: Sequence[tuple[str, float]]) -> None:
        self.steps = list(steps)
        self.yielded = 0
        self.closed = False

    async def _gen(self) -> AsyncIterator[str]:
        try:
            for text, pause in self.steps:
                self.yielded += 1
                yield text
                if pause:
                    await asyncio.sleep(pause)
        finally:
            self.closed = True

    def __aiter__(self) -> AsyncIterator[str]:
        return self._gen()


PROGRAM = """\
import math
values = [math.sqrt(i) for i in range(10)]
print(round(sum(values), 3))

def describe(xs):
    return f"n={len(xs)} max={max(xs):.2f}"

class Acc:
    def __init__(self):
        self.total = 0
    def add(self, x):
        self.total += x
        return self

acc = Acc()
for v in values:
    acc.add(v)
print(describe(values), round(acc.total, 3))
if acc.total > 10:
    print("big")
else:
    print("small")
try:
    {}["missing"]
except KeyError as exc:
    print("caught", exc)
print("done")
"""


async def test_eager_output_identical_to_serial(backend: object, session: Session) -> None:
    from eager_rt.executor import Backend

    assert isinstance(backend, Backend)
    eager = await arun_stream(replay(PROGRAM, tps=4000), session, mode="eager")
    fresh = backend.session()
    await fresh.start(timeout=120)
    try:
        serial = await arun_stream(replay(PROGRAM, tps=4000), fresh, mode="serial")
    finally:
        await fresh.close()
    assert serial.status == "ok", serial.error
    assert eager.status == "ok", eager.error
    assert eager.stdout == serial.stdout
    assert "caught 'missing'" in eager.stdout
    assert eager.code == serial.code == PROGRAM
    assert len(serial.batches) == 1
    assert eager.executed_code == PROGRAM


async def test_early_interruption_stops_generation(session: Session) -> None:
    tail = "".join(f"print('after {i}')\n" for i in range(40))
    code = "print('before')\nx = {'a': 1}\nprint(x['b'])\n" + tail
    source = replay(code, tps=300)
    result = await arun_stream(source, session)
    assert result.status == "error"
    assert result.stream_closed_early
    assert source.consumed < len(source.pieces)  # the rest was never generated
    assert result.error is not None
    assert result.error.ename == "KeyError"
    assert result.error.lineno == 3
    assert result.error.statement == "print(x['b'])\n"
    assert result.error.code_before == "print('before')\nx = {'a': 1}\n"
    assert result.code.startswith(code[: len("print('before')\nx = {'a': 1}\nprint(x['b'])\n")])
    assert result.error.not_run == result.code[len(code) - len(tail) :]
    assert result.stdout == "before\n"
    assert "after" not in result.stdout


async def test_statements_run_while_generation_continues(session: Session) -> None:
    steps = [("print('first', flush=True)\n", 2.0), ("print('second')\n", 0.0)]
    result = await arun_stream(Scripted(steps), session)
    assert result.status == "ok"
    first = result.chunks[0]
    assert first.t_exec_end is not None
    # the first statement finished before the last token was generated
    assert first.t_exec_end < result.gen_s
