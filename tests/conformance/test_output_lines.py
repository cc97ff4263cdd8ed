"""Which statement of an execution wrote each output (``Output.line``), on every backend.

The worker backends (local, Docker, Podman) tag the output of an execution
that holds several top-level statements with the first line of the one that
wrote it; the kernels (Jupyter, E2B) cannot tell, and say so with ``None``.
Either way the outputs themselves are the same.
"""

from __future__ import annotations

import pytest
from eager_rt.backends import WorkerSession

from eager_rt.executor import Session, Status

pytestmark = pytest.mark.anyio

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
#: (text, line of its statement) in order; None: no statement can be named
EXPECTED = [
    ("one\n", 5),
    ("loop 0\n", 6),
    ("loop 1\n", 6),
    ("thread\n", None),  # another thread's output
    ("THREE\n", 12),  # printed inside a function: the statement that called it
]


async def test_each_output_names_the_statement_that_wrote_it(session: Session) -> None:
    result = await session.execute(BATCH, timeout=60)
    assert result.status is Status.OK, result
    got = [(o.text, o.line) for o in result.outputs if o.kind == "stdout"]
    shown = [o for o in result.outputs if o.kind == "display"]
    assert result.stdout == "".join(text for text, _ in EXPECTED)  # a kernel joins them
    assert [str((o.data or {}).get("text/plain")).strip("'") for o in shown] == ["shown"]
    if isinstance(session, WorkerSession):
        assert got == EXPECTED
        assert shown[0].line == 16
    else:
        assert all(line is None for _, line in got) and shown[0].line is None


async def test_one_statement_names_none(session: Session) -> None:
    result = await session.execute("\n\nfor i in range(2):\n    print(i)\n", timeout=60)
    assert result.status is Status.OK, result
    assert result.stdout == "0\n1\n"
    assert [o.line for o in result.outputs] == [None] * len(result.outputs)


async def test_a_failing_batch_names_what_printed_before_the_error(session: Session) -> None:
    code = "print('first')\nprint('second')\nraise ValueError('third')\n"
    result = await session.execute(code, timeout=60)
    assert result.status is Status.ERROR and result.error is not None
    assert result.error.lineno == 3
    assert result.stdout == "first\nsecond\n"
    got = [(o.text, o.line) for o in result.outputs if o.kind == "stdout"]
    if isinstance(session, WorkerSession):
        assert got == [("first\n", 1), ("second\n", 2)]
    else:
        assert all(line is None for _, line in got)
