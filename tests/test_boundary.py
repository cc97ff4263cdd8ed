"""End to end: a source that marks the end of a code unit gets its last statement run at once.

The stream is a model answer: a fenced block (or a tool call's JSON argument)
whose last statement is a ``for`` loop, then a long stretch of prose.  Nothing
in the code itself says the loop is over (it could still grow), so without the
marker the loop waits for the end of the whole answer; with
:data:`~eager_rt.sources.boundary.BOUNDARY`, which the fence and tool-call
extractors yield, it runs while the model is still writing the prose.

The pause before the prose ends as soon as the loop has run (or after a cap),
so the test asserts on the order of events, never on how long anything took.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from eager_rt.events import Event, ExecutionFinished, ExecutionStarted
from eager_rt.executor import Session
from eager_rt.registry import get_backend
from eager_rt.runtime import arun_stream
from eager_rt.sources.boundary import is_boundary
from eager_rt.sources.fences import acode_from_fences
from eager_rt.sources.tool_json import adecode_argument

pytestmark = pytest.mark.anyio

LOOP_RAN = "loop finished"
#: with the marker the pause ends once the loop has run; this only bounds a stuck run
PAUSE_CAP = 30.0
#: without it the loop cannot run during the pause: a short one shows that
PAUSE_WITHOUT = 3.0

FENCED = [
    "Let me add them up.\n```python\n",
    "total = 0\n",
    "for i in range(3):\n",
    "    total += i\n",
    "    print('loop', i, total)\n",
    "```\n",
]
TOOL = [
    '{"code": "total = 0\\nfor i in range(3):\\n',
    "    total += i\\n    print('loop', i, total)\\n",
    '", "explanation": "',
]
PROSE = {
    "fence": ["The loop ", "adds 0, 1 and 2, ", "so the total is 3.\n"],
    "tool": ["The loop ", "adds 0, 1 and 2, ", 'so the total is 3."}'],
}
EXTRACT: dict[str, Callable[[AsyncIterator[str]], AsyncIterator[str]]] = {
    "fence": acode_from_fences,
    "tool": adecode_argument,
}


@pytest.fixture
async def session() -> AsyncIterator[Session]:
    backend = get_backend("local")()
    sess = backend.session()
    await sess.start(timeout=60)
    try:
        yield sess
    finally:
        await sess.close()
        await backend.aclose()


async def _run(form: str, session: Session, *, marker: bool) -> tuple[list[str], str]:
    """Run the answer; return the log of pieces pulled and the loop's end, and stdout."""
    log: list[str] = []
    loop_done = anyio.Event()
    loop_batch: list[int] = []

    async def model() -> AsyncIterator[str]:
        for piece in FENCED if form == "fence" else TOOL:
            log.append(piece)
            yield piece
        with anyio.move_on_after(PAUSE_CAP if marker else PAUSE_WITHOUT):
            await loop_done.wait()  # the model writes prose for a while
        for piece in PROSE[form]:
            log.append(piece)
            yield piece

    async def code() -> AsyncIterator[str]:
        async for piece in EXTRACT[form](model()):
            if marker or not is_boundary(piece):
                yield piece

    def on_event(event: Event) -> None:
        if isinstance(event, ExecutionStarted) and "for i in" in event.code:
            loop_batch.append(event.batch)
        elif isinstance(event, ExecutionFinished) and event.batch in loop_batch:
            log.append(LOOP_RAN)
            loop_done.set()

    result = await arun_stream(code(), session, on_event=on_event)
    assert result.ok, result.error
    return log, result.stdout


@pytest.mark.parametrize("form", ["fence", "tool"])
async def test_marked_unit_runs_its_loop_before_the_prose(form: str, session: Session) -> None:
    log, stdout = await _run(form, session, marker=True)
    assert stdout == "loop 0 0\nloop 1 1\nloop 2 3\n"
    assert log.index(LOOP_RAN) < log.index(PROSE[form][0])


@pytest.mark.parametrize("form", ["fence", "tool"])
async def test_without_the_marker_the_loop_waits_for_the_end(form: str, session: Session) -> None:
    log, stdout = await _run(form, session, marker=False)
    assert stdout == "loop 0 0\nloop 1 1\nloop 2 3\n"
    assert log.index(LOOP_RAN) > log.index(PROSE[form][-1])
