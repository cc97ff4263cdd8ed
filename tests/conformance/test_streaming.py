"""The runtime on every backend: early interruption, batching, gating, eager == serial.

The runtime never knows which backend it drives, so these behaviours must
hold unchanged on each of them.
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


async def test_error_stops_the_source_while_it_is_waiting(session: Session) -> None:
    """A model pausing mid-stream is cut off at once, not after its next token."""
    source = Scripted([("1 / 0\n", 30.0), ("print('never')\n", 0.0)])
    result = await asyncio.wait_for(arun_stream(source, session), 20)
    assert result.status == "error"
    assert source.closed
    assert source.yielded == 1
    assert result.error is not None and result.error.ename == "ZeroDivisionError"


async def test_continue_mode_generates_everything_runs_nothing_after_error(
    session: Session,
) -> None:
    code = "print('a')\nundefined_name\nprint('b')\n"
    source = replay(code, tps=2000)
    result = await arun_stream(source, session, on_error="continue")
    assert result.status == "error"
    assert not result.stream_closed_early
    assert result.code == code
    assert result.stdout == "a\n"
    assert result.error is not None
    assert result.error.ename == "NameError"
    assert result.error.not_run == "print('b')\n"


async def test_syntax_error_mid_stream(session: Session) -> None:
    code = "print('ok')\nx = = 2\nprint('never')\n"
    source = Scripted([("print('ok')\n", 0.3), ("x = = 2\n", 0.3), ("print('never')\n", 0.0)])
    result = await arun_stream(source, session)
    assert result.status == "syntax_error"
    assert result.stdout == "ok\n"
    assert result.error is not None
    assert result.error.lineno == 2
    assert result.error.code_before == "print('ok')\n"
    assert result.code in (code, code[: -len("print('never')\n")])


async def test_dynamic_batching_merges_what_piles_up(session: Session) -> None:
    steps = [("import time\ntime.sleep(0.8)\n", 0.1)]
    steps += [(f"v{i} = {i}\n", 0.0) for i in range(5)]
    steps += [("print(v0 + v1 + v2 + v3 + v4)\n", 0.0)]
    batched = await arun_stream(Scripted(steps), session)
    assert batched.status == "ok", batched.error
    assert batched.stdout == "10\n"
    # the first statements run while the rest arrives; everything else is one batch
    assert len(batched.batches) == 2
    assert batched.batches[-1].chunk_indices[-1] == batched.chunks[-1].chunk.index

    unbatched = await arun_stream(Scripted(steps), session, batching=False)
    assert unbatched.stdout == "10\n"
    assert len(unbatched.batches) == sum(1 for r in unbatched.chunks if r.chunk.runnable)


async def test_gating_defers_definitions(session: Session) -> None:
    steps = [
        ("def f():\n    return 1\n", 0.3),
        ("class C:\n    pass\n", 0.3),
        ("print(f(), C.__name__)\n", 0.0),
    ]
    gated = await arun_stream(Scripted(steps), session, gating=True)
    assert gated.stdout == "1 C\n"
    assert len(gated.batches) == 1
    runnable = [r.chunk.index for r in gated.chunks if r.chunk.runnable]
    assert gated.batches[0].chunk_indices == runnable

    ungated = await arun_stream(Scripted(steps), session, gating=False)
    assert ungated.stdout == "1 C\n"
    assert len(ungated.batches) >= 2
    assert ungated.batches[0].code == "def f():\n    return 1\n"


async def test_statements_run_while_generation_continues(session: Session) -> None:
    steps = [("print('first', flush=True)\n", 2.0), ("print('second')\n", 0.0)]
    result = await arun_stream(Scripted(steps), session)
    assert result.status == "ok"
    first = result.chunks[0]
    assert first.t_exec_end is not None
    # the first statement finished before the last token was generated
    assert first.t_exec_end < result.gen_s
