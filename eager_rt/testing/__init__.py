"""Test code that uses eager_rt without a sandbox: a scripted session on a virtual clock.

Like httpx's ``MockTransport``, these are part of the library, so you can test
your own agent (and we test the runtime's policies) exactly and fast:

* :class:`FakeSession` is a :class:`~eager_rt.executor.Session` that runs
  nothing. It splits the code it is given into top-level statements (with
  :mod:`ast`, never executing them) and plays what your :class:`Rule` values
  say each statement does: how long it takes, what it prints, what it raises,
  whether it ignores interrupts or kills its interpreter. Everything else
  follows the real backends' contract, through the same recovery policy
  (:mod:`eager_rt.backends._recovery`): timeouts interrupt, then kill and
  restart after the grace period; a cancelled ``execute`` stops its code; a
  second ``execute`` waits its turn. It records every call in ``calls``. A
  rule's :class:`ToolUse` values make its statement call host tools through
  the ``tools`` handler (a :class:`~eager_rt.tools.ToolHost`), as a generated
  stub would, and print or raise what comes back.
* :class:`VirtualClockLoop` is an asyncio event loop whose clock is virtual:
  when nothing is ready to run it jumps to the next timer, so a scripted
  30-second statement takes no real time and every timestamp of a run
  (read from :func:`eager_rt.clock.now`) is an exact number.
  :func:`run_virtual` runs a coroutine on one.
* :class:`ScriptedSource` and :func:`paced` are token streams whose pieces
  arrive at given moments; :func:`eager_rt.replay` paces real-looking
  tokens on the same clock.

Testing an agent::

    import re
    from eager_rt import arun_stream
    from eager_rt.testing import FakeSession, Rule, paced, run_virtual

    async def main() -> None:
        session = FakeSession([
            Rule("load(", cost=2.5, stdout="loaded 3 rows\\n"),
            Rule(re.compile(r"^report\\("), raises="KeyError", evalue="'total'"),
        ])
        code = ["rows = load('data.csv')\\n", "report(rows)\\n", "print('a')\\n", "print('b')\\n"]
        source = paced(code, tps=1)  # the model writes one line a second
        result = await arun_stream(source, session)
        assert result.stdout == "loaded 3 rows\\n"
        assert result.error is not None and result.error.ename == "KeyError"
        assert result.error.lineno == 2
        assert result.error.not_run == "print('a')\\n"  # written, never run
        assert source.yielded == 3  # the model was stopped: print('b') never came
        assert result.e2el_s == 2.5  # exact: load() ran from 0 s to 2.5 s, then report() failed

    run_virtual(main())

With pytest and AnyIO's plugin, a fixture puts every test of a module on the
virtual clock::

    @pytest.fixture
    def anyio_backend():
        return "asyncio", {"loop_factory": VirtualClockLoop}

Limits of the virtual clock: never await real I/O (sockets, subprocesses) on
it, since nothing waits for the network while the clock jumps ahead. Work sent
to a thread with ``loop.run_in_executor`` (a blocking token source, for
instance) takes no virtual time: the clock stands still until it is done.
"""

from __future__ import annotations

from eager_rt.testing.fake_session import ExecuteCall, FakeBackend, FakeSession, Rule, ToolUse
from eager_rt.testing.sources import ScriptedSource, paced
from eager_rt.testing.virtual_clock import VirtualClockLoop, run_virtual, sleep_until

__all__ = [
    "ExecuteCall",
    "FakeBackend",
    "FakeSession",
    "Rule",
    "ScriptedSource",
    "ToolUse",
    "VirtualClockLoop",
    "paced",
    "run_virtual",
    "sleep_until",
]
