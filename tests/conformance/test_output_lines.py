"""Which statement of an execution wrote each output (``Output.line``), on every backend.

When an execution holds several top-level statements, each output carries
the first line of the statement that wrote it: the worker backends (local,
Docker, Podman) find it on the stack of the code's main thread, the kernels
(Jupyter, E2B) are told before each statement IPython runs. A kernel's
stream joins consecutive writes, so outputs are compared statement by
statement, their text joined.
"""

from __future__ import annotations

import pytest
from eager_rt.backends import WorkerSession

from eager_rt.executor import Output, Session, Status
from eager_rt.tools import tool
from tests.conformance.test_session import join_runs
from tests.conformance.test_tools import add, define

pytestmark = pytest.mark.anyio


def by_statement(outputs: list[Output]) -> list[tuple[int | None, str]]:
    """Consecutive stdout outputs of one line, their text joined."""
    return join_runs((o.line, o.text) for o in outputs if o.kind == "stdout")


BATCH = (
    "\n\n"  # padded as the runtime pads a batch: lines are the stream's
    "def shout(word):\n"
    "    print(word.upper())\n"
    "print('one')\n"
    "for i in range(2):\n"
    "    x = i\n"
    "    print('loop', x)\n"
    "import threading\n"
    "t = threading.Thread(target=lambda: print('thread'))\n"
    "t.start(); t.join()\n"
    "shout('three')\n"
    "@(lambda f: f)\n"
    "def decorated():\n"
    "    return 1\n"
    "display('shown')\n"
)

async def test_each_output_names_the_statement_that_wrote_it(session: Session) -> None:
    result = await session.execute(BATCH, timeout=60)
    assert result.status is Status.OK, result
    # the worker names statements for the main thread's output only; a kernel runs
    # the statements one by one and names the one running when a thread wrote
    thread = None if isinstance(session, WorkerSession) else 11
    assert by_statement(result.outputs) == [
        (5, "one\n"),
        (6, "loop 0\nloop 1\n"),  # a loop's body: the loop's line
        (thread, "thread\n"),
        (12, "THREE\n"),  # printed inside a function: the statement that called it
    ]
    shown = [o for o in result.outputs if o.kind == "display"]
    assert [str((o.data or {}).get("text/plain")).strip("'") for o in shown] == ["shown"]
    assert shown[0].line == 16


async def test_one_statement_names_none(session: Session) -> None:
    result = await session.execute("\n\nfor i in range(2):\n    print(i)\n", timeout=60)
    assert result.status is Status.OK, result
    assert by_statement(result.outputs) == [(None, "0\n1\n")]


async def test_a_failing_batch_names_what_printed_before_the_error(session: Session) -> None:
    code = "print('first')\nprint('second')\nraise ValueError('third')\n"
    result = await session.execute(code, timeout=60)
    assert result.status is Status.ERROR and result.error is not None
    assert result.error.lineno == 3
    assert by_statement(result.outputs) == [(1, "first\n"), (2, "second\n")]


async def test_each_tool_call_names_the_statement_that_made_it(session: Session) -> None:
    async def twice(x: int) -> int:
        return 2 * x

    host = await define(session, add, tool(twice))
    code = "\n\nfirst = add(1, 2)\nsecond = await twice(3)\nfor i in range(2):\n    add(i, 0)\n"
    try:
        result = await session.execute(code, timeout=60, tools=host)
        assert result.status is Status.OK, result
        single = await session.execute("add(5, 5)", timeout=60, tools=host)
        assert single.status is Status.OK, single
    finally:
        await host.aclose()
    assert [(c.tool, c.line) for c in host.calls] == [
        ("add", 3), ("twice", 4), ("add", 5), ("add", 5), ("add", None)
    ]
