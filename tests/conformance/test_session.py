"""The executor contract, checked on every registered backend unchanged.

Each test gets a started session of one backend variant (see
``tests/conftest.py``); a backend passes only if all of these pass.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterable
from typing import TypeVar

import pytest

from eager_rt.executor import ExecResult, Output, Session, SessionDead, Status

pytestmark = pytest.mark.anyio

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


_K = TypeVar("_K")


def join_runs(pieces: Iterable[tuple[_K, str]]) -> list[tuple[_K, str]]:
    """Consecutive ``(key, text)`` pieces of one key joined: backends split writes differently."""
    result: list[tuple[_K, str]] = []
    for key, text in pieces:
        if result and result[-1][0] == key:
            result[-1] = (key, result[-1][1] + text)
        else:
            result.append((key, text))
    return result


def merged(outputs: list[Output]) -> list[tuple[str, str]]:
    """Consecutive text outputs of one stream joined."""
    return join_runs((o.kind, o.text) for o in outputs if o.kind in ("stdout", "stderr"))


async def run_until_running(
    session: Session, code: str, marker: str, **kw: object
) -> tuple[asyncio.Task[ExecResult], list[Output]]:
    """Start ``code`` and return once it has printed ``marker`` (so it is surely running)."""
    seen: list[Output] = []
    started = asyncio.Event()

    def on_output(o: Output) -> None:
        seen.append(o)
        if marker in "".join(x.text for x in seen if x.kind == "stdout"):
            started.set()

    task = asyncio.create_task(session.execute(code, on_output=on_output, **kw))  # type: ignore[arg-type]
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    state = task.result() if task.done() else "still running"
    assert started.is_set(), f"code never printed {marker!r}: {state}"
    return task, seen


async def test_state_persists_across_executions(session: Session) -> None:
    first = await session.execute("x = 41\ndef f(y):\n    return y + 1\n", timeout=60)
    assert first.status is Status.OK, first
    second = await session.execute("print(f(x))", timeout=60)
    assert second.status is Status.OK, second
    assert second.stdout == "42\n"
    assert second.started <= second.ended


async def test_stdout_and_stderr_keep_their_order(session: Session) -> None:
    code = (
        "import sys\n"
        "print('one')\n"
        "print('two', file=sys.stderr)\n"
        "print('three')\n"
        "sys.stderr.write('four\\n')\n"
    )
    result = await session.execute(code, timeout=60)
    assert result.status is Status.OK, result
    assert merged(result.outputs) == [
        ("stdout", "one\n"),
        ("stderr", "two\n"),
        ("stdout", "three\n"),
        ("stderr", "four\n"),
    ]
    assert result.stdout == "one\nthree\n"
    assert result.stderr == "two\nfour\n"


async def test_output_is_streamed_while_running(session: Session) -> None:
    code = "import time\nprint('early', flush=True)\ntime.sleep(1.5)\nprint('late')\n"
    task, _ = await run_until_running(session, code, "early", timeout=60)
    # 'early' reached us while the code was still sleeping
    assert not task.done()
    result = await task
    assert result.status is Status.OK
    assert result.stdout == "early\nlate\n"


async def test_matplotlib_figure_comes_back_as_png(session: Session) -> None:
    code = (
        "import matplotlib\n"
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots()\n"
        "ax.plot([1, 2, 3], [3, 1, 2])\n"
        "plt.show()\n"
    )
    result = await session.execute(code, timeout=120)
    assert result.status is Status.OK, result
    pngs = [d["image/png"] for d in result.displays if "image/png" in d]
    assert len(pngs) == 1, result.outputs
    assert base64.b64decode(pngs[0]).startswith(PNG_SIGNATURE)


async def test_display_of_rich_object_gives_mime_bundle(session: Session) -> None:
    code = (
        "class Table:\n"
        "    def _repr_html_(self):\n"
        "        return '<table><tr><td>7</td></tr></table>'\n"
        "    def __repr__(self):\n"
        "        return 'Table(7)'\n"
        "display(Table())\n"
    )
    result = await session.execute(code, timeout=60)
    assert result.status is Status.OK, result
    assert len(result.displays) == 1
    bundle = result.displays[0]
    assert bundle["text/html"] == "<table><tr><td>7</td></tr></table>"
    assert bundle["text/plain"] == "Table(7)"


async def test_bare_expression_prints_nothing(session: Session) -> None:
    """Script semantics: eager chunks must print exactly what one serial run prints."""
    result = await session.execute("1 + 1\n'text'\n", timeout=60)
    assert result.status is Status.OK
    assert result.outputs == []


async def test_error_fields(session: Session) -> None:
    code = "a = 1\ndef f():\n    return 1 / 0\nf()\nprint('never')\n"
    result = await session.execute(code, timeout=60)
    assert result.status is Status.ERROR
    assert result.error is not None
    assert result.error.ename == "ZeroDivisionError"
    assert result.error.evalue == "division by zero"
    assert result.error.lineno == 4  # the top-level statement that was running
    text = "\n".join(result.error.traceback)
    assert "ZeroDivisionError" in text
    assert "1 / 0" in text
    assert result.stdout == ""
    # the session survives an error with its state
    after = await session.execute("print(a)", timeout=60)
    assert after.stdout == "1\n"


async def test_syntax_error_is_reported_with_its_line(session: Session) -> None:
    result = await session.execute("x = 1\ny = (\n", timeout=60)
    assert result.status is Status.ERROR
    assert result.error is not None
    assert result.error.ename == "SyntaxError"
    assert result.error.lineno == 2


async def test_interrupt_keeps_state(session: Session) -> None:
    await session.execute("kept = 'yes'", timeout=60)
    code = "import time\nprint('looping', flush=True)\nwhile True:\n    time.sleep(0.01)\n"
    task, _ = await run_until_running(session, code, "looping", timeout=120)
    await session.interrupt()
    result = await asyncio.wait_for(task, 60)
    assert result.status is Status.INTERRUPTED
    assert not result.state_lost
    assert session.alive
    after = await session.execute("print(kept)", timeout=60)
    assert after.stdout == "yes\n"


async def test_a_keyboardinterrupt_the_code_raises_is_its_error(session: Session) -> None:
    """Only the host's interrupt makes a result "interrupted"; the code's own is an error."""
    result = await session.execute("x = 1\nraise KeyboardInterrupt('mine')\n", timeout=60)
    assert result.status is Status.ERROR, result
    assert result.error is not None and result.error.ename == "KeyboardInterrupt"
    assert result.error.evalue == "mine" and result.error.lineno == 2
    assert not result.state_lost
    assert (await session.execute("print(x)", timeout=60)).stdout == "1\n"


async def test_interrupt_when_idle_is_harmless(session: Session) -> None:
    await session.execute("v = 3", timeout=60)
    await session.interrupt()
    await asyncio.sleep(0.2)
    result = await session.execute("print(v)", timeout=60)
    assert result.status is Status.OK, result
    assert result.stdout == "3\n"


async def test_timeout_interrupts_and_keeps_state(session: Session) -> None:
    await session.execute("kept = 12", timeout=60)
    result = await session.execute("import time\ntime.sleep(60)\n", timeout=1.0)
    assert result.status is Status.TIMEOUT
    assert not result.state_lost
    after = await session.execute("print(kept)", timeout=60)
    assert after.stdout == "12\n"


async def test_timeout_on_code_that_ignores_interrupts_restarts(session: Session) -> None:
    await session.execute("kept = 12", timeout=60)
    code = (
        "import time\n"
        "while True:\n"
        "    try:\n"
        "        time.sleep(0.05)\n"
        "    except KeyboardInterrupt:\n"
        "        pass\n"
    )
    result = await session.execute(code, timeout=1.0)
    assert result.status is Status.TIMEOUT
    assert result.state_lost
    assert session.alive
    after = await session.execute("print('kept' in globals())", timeout=60)
    assert after.stdout == "False\n"


async def test_death_is_detected_and_reported(session: Session) -> None:
    await session.execute("kept = 1", timeout=60)
    result = await asyncio.wait_for(
        session.execute("import os\nprint('bye', flush=True)\nos._exit(7)\n", timeout=120), 90
    )
    assert result.status is Status.DIED
    assert result.state_lost
    assert result.detail
    # auto_restart is the default: a fresh interpreter is ready
    assert session.alive
    after = await session.execute("print('kept' in globals())", timeout=60)
    assert after.stdout == "False\n"


async def test_cancelled_execute_stops_the_code(session: Session) -> None:
    await session.execute("kept = 'still here'", timeout=60)
    code = "import time\nprint('looping', flush=True)\nwhile True:\n    time.sleep(0.01)\n"
    task, _ = await run_until_running(session, code, "looping", timeout=120)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    result = await session.execute("print(kept)", timeout=60)
    assert result.status is Status.OK, result
    assert result.stdout == "still here\n"


async def test_restart_clears_state(session: Session) -> None:
    await session.execute("gone = 1", timeout=60)
    await session.restart(timeout=120)
    assert session.alive
    result = await session.execute("print('gone' in globals())", timeout=60)
    assert result.stdout == "False\n"


async def test_close_is_idempotent_and_final(session: Session) -> None:
    await session.close()
    assert not session.alive
    await session.close()
    with pytest.raises(SessionDead):
        await session.execute("pass", timeout=10)


async def test_a_second_execute_waits_for_its_turn(session: Session) -> None:
    """The rule on every backend: executions queue, first come first served.

    The second one's timeout starts with its turn: it is shorter than the first
    execution, yet the second is not cut off while it waits.
    """
    code = "import time\nprint('first', flush=True)\ntime.sleep(1.5)\nx = 1\n"
    first, _ = await run_until_running(session, code, "first", timeout=60)
    second = asyncio.create_task(session.execute("print(x + 1)", timeout=1.0))
    third = asyncio.create_task(session.execute("print(x + 2)", timeout=60))
    one, two, three = await asyncio.gather(first, second, third)
    assert one.status is Status.OK, one
    assert two.status is Status.OK and two.stdout == "2\n", two
    assert three.status is Status.OK and three.stdout == "3\n", three
    assert one.ended <= two.started and two.ended <= three.started


async def test_close_ends_a_running_execute(session: Session) -> None:
    """close() does not leave a running execute waiting for an interpreter that is gone."""
    code = "import time\nprint('go', flush=True)\ntime.sleep(60)\n"
    task, _ = await run_until_running(session, code, "go")
    await session.close()
    result = await asyncio.wait_for(task, 30)
    assert result.status is Status.DIED, result
    assert result.state_lost and "closed" in result.detail
    assert result.stdout == "go\n"
