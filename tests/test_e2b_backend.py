"""E2B specifics, through the unmodified SDK against the local protocol server.

The conformance suite covers the executor contract; these tests cover what
only a remote sandbox has: network faults scripted in the server (HTTP 502, a
stream cut mid-way, a stalled connection, a slow cell, an unexpected end of
execution), sandbox environment variables and working directory, rich results
through the SDK's ``Result`` model, the sandbox killed on close, a sandbox
that starts while tokens are still being produced, and host tools: one
delivery request per reply, in the default context, replies that finish
together delivered together.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from eager_rt.backends._ipython_setup import EOF_MESSAGE
from eager_rt.backends._recovery import DEFAULT_INTERRUPT_GRACE

from eager_rt.executor import BackendError, Output, Status
from eager_rt.registry import open_backend
from eager_rt.runtime import arun_stream
from eager_rt.tools import ToolHost, as_tools, stub_source
from tests.e2b_server import LocalE2B
from tests.kernel_bounds import (
    FLOOD_CAP,
    TIME_BOUND,
    check_an_output_flood_is_capped,
    check_the_default_time_bound,
)
from tests.provision import unavailable

pytestmark = pytest.mark.anyio

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def server(e2b_server: object) -> LocalE2B:
    assert isinstance(e2b_server, LocalE2B)
    return e2b_server


@pytest.fixture
async def backend(server: LocalE2B) -> AsyncIterator[Any]:
    b = open_backend("e2b", **server.sdk_options(), interrupt_grace=3.0, stall_timeout=10.0)
    try:
        yield b
    finally:
        await b.aclose()


@pytest.fixture
async def session(backend: Any) -> AsyncIterator[Any]:
    s = backend.session()
    await s.start(timeout=120)
    try:
        yield s
    finally:
        await s.close()


async def _kept(session: Any) -> str:
    result = await session.execute("print(globals().get('kept'))", timeout=60)
    assert result.status is Status.OK, result
    return str(result.stdout)


# -- scripted faults ------------------------------------------------------------


async def test_http_502_raises_backend_error_and_runs_nothing(
    server: LocalE2B, session: Any
) -> None:
    await session.execute("kept = 1", timeout=60)
    server.fault(session.sandbox_id, "http_502")
    with pytest.raises(BackendError, match="HTTP 502"):
        await session.execute("kept = 2", timeout=60)
    # the sandbox is still there, the session usable, and the code never ran
    assert session.alive
    assert await _kept(session) == "1\n"


async def test_stream_cut_mid_way_is_a_death_not_a_success(server: LocalE2B, session: Any) -> None:
    await session.execute("kept = 1", timeout=60)
    server.fault(session.sandbox_id, "cut", after_lines=2)
    seen: list[Output] = []
    # one line: no statement marks among the counted lines (see _kernel_tools.mark_statements)
    code = "import time; print('first', flush=True); time.sleep(0.3); print('second')\n"
    result = await session.execute(code, timeout=60, on_output=seen.append)
    assert result.status is Status.DIED, result
    assert "stream broke" in result.detail
    assert result.state_lost
    # what arrived before the cut is kept, in order, and was streamed
    assert result.stdout == "first\n"
    assert seen == result.outputs
    assert session.alive
    assert await _kept(session) == "None\n"
    assert [e for e in server.events("cut") if e["sandbox_id"] == session.sandbox_id]


async def test_stream_reset_by_peer_is_a_death(server: LocalE2B, session: Any) -> None:
    server.fault(session.sandbox_id, "cut", after_lines=1, reset=True)
    result = await session.execute("print('x')", timeout=60)
    assert result.status is Status.DIED, result
    assert result.state_lost
    assert session.alive


async def test_stalled_stream_ends_in_a_result_not_a_hang(server: LocalE2B, backend: Any) -> None:
    session = backend.session(stall_timeout=1.5)
    await session.start(timeout=120)
    try:
        server.fault(session.sandbox_id, "stall", after_lines=1, seconds=30)
        result = await asyncio.wait_for(session.execute("print('x')", timeout=60), 60)
        assert result.status is Status.DIED, result
        assert "no data from the sandbox" in result.detail
        assert session.alive
        after = await session.execute("print('back')", timeout=60)
        assert after.stdout == "back\n"
    finally:
        await session.close()


async def test_slow_cell_times_out_and_keeps_state(server: LocalE2B, session: Any) -> None:
    await session.execute("kept = 'yes'", timeout=60)
    server.fault(session.sandbox_id, "slow", seconds=20)
    result = await session.execute("kept = 'changed'", timeout=1.0)
    assert result.status is Status.TIMEOUT, result
    assert not result.state_lost
    # the server saw the stream closed and interrupted the kernel
    mine = [e for e in server.events() if e.get("sandbox_id") == session.sandbox_id]
    assert any(e["event"] == "disconnect" for e in mine)
    assert session.alive


async def test_unexpected_end_of_execution_is_a_death(server: LocalE2B, session: Any) -> None:
    await session.execute("kept = 1", timeout=60)
    server.fault(session.sandbox_id, "unexpected_end", after_lines=1)
    code = "import time\nprint('start', flush=True)\ntime.sleep(0.5)\n"
    result = await session.execute(code, timeout=60)
    assert result.status is Status.DIED, result
    assert "lost its kernel connection" in result.detail
    assert result.state_lost
    assert session.alive
    assert await _kept(session) == "None\n"


async def test_clean_end_without_end_of_execution_is_not_success(
    server: LocalE2B, session: Any
) -> None:
    """The SDK drops end_of_execution; without our check this would read as a success."""
    await session.execute("kept = 1", timeout=60)
    server.fault(session.sandbox_id, "drop_end", after_lines=2)
    code = "import time; print('a', flush=True); time.sleep(0.3); print('b')\n"  # no marks
    result = await session.execute(code, timeout=60)
    assert result.status is Status.DIED, result
    assert "without end_of_execution" in result.detail
    assert result.stdout == "a\n"
    assert session.alive


async def test_output_callback_error_stops_the_code_and_propagates(session: Any) -> None:
    await session.execute("kept = 'yes'", timeout=60)

    def explode(out: Output) -> None:
        raise RuntimeError("consumer failed")

    code = "import time\nkept = 'overwritten'\nprint('tick', flush=True)\ntime.sleep(30)\n"
    with pytest.raises(RuntimeError, match="consumer failed"):
        await asyncio.wait_for(session.execute(code, timeout=120, on_output=explode), 60)
    # the code was stopped (the next execution is not stuck behind it), state kept
    after = await session.execute("print(kept)", timeout=20)
    assert after.stdout == "overwritten\n"


def test_options_share_the_vocabulary_of_every_backend(server: LocalE2B) -> None:
    options = server.sdk_options()
    with pytest.raises(TypeError):
        open_backend("e2b", grace=1.0, **options)
    with pytest.raises(ValueError, match="semantics"):
        open_backend("e2b", semantics="lab", **options)
    with pytest.raises(ValueError, match="interrupt_grace"):
        open_backend("e2b", interrupt_grace=-1, **options)
    session = open_backend("e2b", **options).session()
    assert (session.semantics, session.interrupt_grace) == ("script", DEFAULT_INTERRUPT_GRACE)


# -- environment ---------------------------------------------------------------------


async def test_env_vars_and_cwd_hold_across_a_restart(backend: Any, tmp_path: Path) -> None:
    session = backend.session(env={"EAGER_RT_TEST_VAR": "forty two"}, cwd=str(tmp_path))
    await session.start(timeout=120)
    try:
        code = "import os\nprint(os.environ['EAGER_RT_TEST_VAR'])\nprint(os.getcwd())\n"
        first = await session.execute(code, timeout=60)
        assert first.stdout == f"forty two\n{tmp_path}\n", first
        await session.restart(timeout=120)
        second = await session.execute(code, timeout=60)
        assert second.stdout == first.stdout, second
        # the variable is in the process environment, so child processes see it too
        child = await session.execute(
            "import subprocess, sys\n"
            "print(subprocess.run([sys.executable, '-c', "
            "'import os; print(os.environ[\"EAGER_RT_TEST_VAR\"])'], "
            "capture_output=True, text=True).stdout, end='')\n",
            timeout=60,
        )
        assert child.stdout == "forty two\n", child
    finally:
        await session.close()


async def test_missing_working_directory_is_created(backend: Any, tmp_path: Path) -> None:
    """A local path (the CLI passes its own cwd) does not exist in a fresh cloud sandbox."""
    wanted = tmp_path / "not" / "there"
    session = backend.session(cwd=str(wanted))
    await session.start(timeout=120)
    try:
        result = await session.execute("import os\nprint(os.getcwd())", timeout=60)
        assert result.stdout == f"{wanted}\n"
    finally:
        await session.close()


async def test_error_line_numbers_are_not_shifted_by_the_env_prelude(backend: Any) -> None:
    """The server prepends env assignments to a context's first execution; ours absorbs them."""
    session = backend.session(env={"A": "1", "B": "2"})
    await session.start(timeout=120)
    try:
        result = await session.execute("x = 1\ny = 2\nraise ValueError('line 3')\n", timeout=60)
        assert result.error is not None
        assert (result.error.ename, result.error.lineno) == ("ValueError", 3)
    finally:
        await session.close()


# -- rich results ------------------------------------------------------------------------


async def test_rich_results_come_back_as_mime_bundles(session: Any) -> None:
    code = (
        "from IPython.display import HTML, Markdown, SVG, JSON, display\n"
        "display(HTML('<b>bold</b>'))\n"
        "display(Markdown('# title'))\n"
        'display(SVG(\'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>\'))\n'
        "display(JSON({'k': [1, 2]}))\n"
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3])\n"
        "plt.show()\n"
    )
    result = await session.execute(code, timeout=120)
    assert result.status is Status.OK, result
    bundles = result.displays
    assert bundles[0]["text/html"] == "<b>bold</b>"
    assert bundles[1]["text/markdown"] == "# title"
    assert bundles[2]["image/svg+xml"].startswith("<svg")
    assert bundles[3]["application/json"] == {"k": [1, 2]}
    assert base64.b64decode(bundles[4]["image/png"]).startswith(PNG_SIGNATURE)
    assert len(bundles) == 5


async def test_figure_drawn_across_executions_shows_once_at_show(session: Any) -> None:
    """Script semantics: inline matplotlib must not flush a half-drawn figure per chunk."""
    first = await session.execute(
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2])\n", timeout=120
    )
    second = await session.execute("ax.set_title('t')\n", timeout=60)
    third = await session.execute("plt.show()\n", timeout=60)
    assert first.displays == [] and second.displays == []
    assert len(third.displays) == 1 and "image/png" in third.displays[0]


async def test_input_and_getpass_fail_at_once(session: Any) -> None:
    """Nobody answers input() in a sandbox: EOFError, as for a script without a terminal."""
    result = await session.execute("import getpass\ngetpass.getpass('pw? ')\n", timeout=60)
    assert result.error is not None
    assert (result.error.ename, result.error.evalue) == ("EOFError", EOF_MESSAGE)
    result = await session.execute("input()\n", timeout=60)
    assert result.error is not None and result.error.ename == "EOFError"


async def test_notebook_semantics_display_the_last_expression(backend: Any) -> None:
    session = backend.session(semantics="notebook")
    await session.start(timeout=120)
    try:
        result = await session.execute("1 + 1\n", timeout=60)
        assert result.displays == [{"text/plain": "2"}]
    finally:
        await session.close()


# -- lifecycle -----------------------------------------------------------------------------


async def test_sandbox_is_killed_on_close(server: LocalE2B, backend: Any) -> None:
    session = backend.session()
    await session.start(timeout=120)
    sandbox_id = session.sandbox_id
    assert sandbox_id in server.kernels()
    await session.close()
    kills = [e for e in server.events("kill") if e["sandbox_id"] == sandbox_id]
    assert [k["reason"] for k in kills] == ["kill"]  # an API kill, not a timeout
    assert sandbox_id not in server.kernels()
    await session.close()  # idempotent: no second kill
    assert len([e for e in server.events("kill") if e["sandbox_id"] == sandbox_id]) == 1


async def test_backend_close_kills_sandboxes_of_forgotten_sessions(
    server: LocalE2B, server_options: dict[str, Any]
) -> None:
    backend = open_backend("e2b", **server_options)
    session = backend.session()
    await session.start(timeout=120)
    sandbox_id = session.sandbox_id
    await backend.aclose()
    assert not session.alive
    assert sandbox_id not in server.kernels()


async def test_close_during_start_leaves_no_sandbox(server: LocalE2B, backend: Any) -> None:
    session = backend.session()
    start = asyncio.ensure_future(session.start(timeout=120))
    await asyncio.sleep(0.05)  # the creation request is on its way
    await session.close()
    with pytest.raises(Exception):  # noqa: B017 - SessionDead or BackendError, both fine
        await start
    created = {e["sandbox_id"] for e in server.events("create")}
    killed = {e["sandbox_id"] for e in server.events("kill")}
    assert not (created - killed) & set(server.kernels())
    assert not session.alive


async def test_active_session_pushes_its_sandbox_timeout_back(
    server: LocalE2B, backend: Any
) -> None:
    """A short sandbox timeout bounds leftovers; use keeps pushing it back.

    Time is not waited for: the session is told half its timeout has passed.
    """
    session = backend.session(sandbox_timeout=600)
    await session.start(timeout=120)
    try:
        mine = session.sandbox_id

        def refreshes() -> list[dict[str, Any]]:
            return [e for e in server.events("set_timeout") if e["sandbox_id"] == mine]

        await session.execute("pass", timeout=60)
        assert refreshes() == []  # fresh sandbox: nothing to push back yet
        session._refreshed -= 301  # more than half of the 600 s went by
        await session.execute("pass", timeout=60)
        assert [e["seconds"] for e in refreshes()] == [600]
        await session.execute("pass", timeout=60)
        assert len(refreshes()) == 1  # pushed back, so not again right away
    finally:
        await session.close()


@pytest.fixture
def server_options(server: LocalE2B) -> dict[str, Any]:
    return server.sdk_options()


class _Timed:
    """A token source that records when it yielded its last piece."""

    def __init__(self, pieces: list[str], pause: float) -> None:
        self.pieces = pieces
        self.pause = pause
        self.finished_at = 0.0

    async def _gen(self) -> AsyncIterator[str]:
        for piece in self.pieces:
            await asyncio.sleep(self.pause)
            yield piece
        self.finished_at = time.time()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._gen()


async def test_sandbox_starts_while_tokens_are_still_produced(
    server: LocalE2B, backend: Any
) -> None:
    """Creation (slow on the real service) overlaps generation instead of following it."""
    server.configure(create_delay_s=0.5)
    try:
        session = backend.session()
        program = "a = 2\nprint(a * 21)\nfor i in range(2):\n    print(i)\n"
        source = _Timed([line + "\n" for line in program.splitlines()], pause=0.3)
        start = asyncio.ensure_future(session.start(timeout=120))  # as the LLM request is sent
        result = await arun_stream(source, session)
        await start
        assert result.status == "ok", result.error
        assert result.stdout == "42\n0\n1\n"
        created = [e for e in server.events("create") if e["sandbox_id"] == session.sandbox_id]
        assert len(created) == 1
        # the sandbox was requested (and booting) before the last token arrived
        assert created[0]["t"] < source.finished_at
    finally:
        server.configure(create_delay_s=0.0)
        await session.close()


async def test_execute_waits_for_a_start_in_progress(backend: Any) -> None:
    session = backend.session()
    start = asyncio.ensure_future(session.start(timeout=120))
    await asyncio.sleep(0)  # the start has begun (it takes a while to finish)
    try:
        assert not session.alive
        result = await session.execute("print('ready')", timeout=60)
        assert result.stdout == "ready\n"
        await start
    finally:
        await session.close()


async def test_unreachable_service_is_a_backend_error() -> None:
    backend = open_backend(
        "e2b", api_key="e2b_x", api_url="http://127.0.0.1:9", sandbox_url="http://127.0.0.1:9"
    )
    session = backend.session()
    with pytest.raises(BackendError, match="could not create"):
        await session.start(timeout=60)
    assert not session.alive
    await backend.aclose()


def test_sync_facade_drives_the_sandbox(server: LocalE2B) -> None:
    """Blocking code gets the same session through eager_rt's portal."""
    from eager_rt.sync import SyncSession

    backend = open_backend("e2b", **server.sdk_options())
    with SyncSession(backend.session()) as session:
        first = session.execute("y = 6 * 7", timeout=60)
        second = session.execute("print(y)", timeout=60)
        sandbox_id = session.session.sandbox_id  # type: ignore[attr-defined]
    assert first.status is Status.OK and second.stdout == "42\n"
    assert [e["reason"] for e in server.events("kill") if e["sandbox_id"] == sandbox_id] == ["kill"]


# -- host tools ----------------------------------------------------------------------------


def add_one(n: int) -> int:
    """Add one."""
    return n + 1


async def _define(session: Any, *tools: Any) -> ToolHost:
    declared = as_tools(tools)
    assert (await session.execute(stub_source(declared), timeout=60)).ok
    return ToolHost(declared)


def _executes(server: LocalE2B, session: Any) -> tuple[list[str], list[str]]:
    """The code of every ``/execute`` of the session's sandbox: its own context's, the others'."""
    own, elsewhere = [], []
    for event in server.events("execute"):
        if event["sandbox_id"] == session.sandbox_id:
            mine = event["context_id"] == session._context.id
            (own if mine else elsewhere).append(event["code"])
    return own, elsewhere


async def test_a_call_costs_one_request_to_another_context(server: LocalE2B, session: Any) -> None:
    """The reply is one ``run_code`` in the default context; the execution's stream is untouched."""
    host = await _define(session, add_one)
    await session.execute("add_one(0)", timeout=60, tools=host)  # the relay is warm
    own_before, elsewhere_before = _executes(server, session)
    result = await session.execute("print(add_one(1))\nprint(add_one(2))", timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "2\n3\n"
    assert [o.kind for o in result.outputs] == ["stdout"] * len(result.outputs)
    own, elsewhere = _executes(server, session)
    assert own[len(own_before) :] == ["print(add_one(1))\nprint(add_one(2))"]
    deliveries = elsewhere[len(elsewhere_before) :]
    assert len(deliveries) == 2  # one request per call
    assert all("__eager_rt_deliver" in code for code in deliveries)


async def test_replies_that_finish_together_go_together(server: LocalE2B, session: Any) -> None:
    arrived: list[int] = []
    everyone = asyncio.Event()

    async def meet(n: int) -> int:
        arrived.append(n)
        if len(arrived) == 3:
            everyone.set()
        await everyone.wait()  # all three finish in the same turn of the loop
        return n

    host = await _define(session, meet)
    await session.execute("import asyncio", timeout=60, tools=host)
    _, before = _executes(server, session)
    code = "print(await asyncio.gather(meet(1), meet(2), meet(3)))"
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "[1, 2, 3]\n"
    _, after = _executes(server, session)
    deliveries = [c for c in after[len(before) :] if "__eager_rt_deliver" in c]
    assert len(deliveries) == 1


async def test_input_still_fails_beside_tool_calls(session: Any) -> None:
    host = await _define(session, add_one)
    code = "print(add_one(1))\ntry:\n    input()\nexcept EOFError as e:\n    print('EOF', e)\n"
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == f"2\nEOF {EOF_MESSAGE}\n"


async def test_tools_defined_again_by_the_runtime_after_a_restart(session: Any) -> None:
    first = await arun_stream(["print(add_one(1))\n"], session, tools=[add_one])
    assert first.ok and first.stdout == "2\n", first.error
    await session.restart(timeout=120)
    second = await arun_stream(["print(add_one(2))\n"], session, tools=[add_one])
    assert second.ok and second.stdout == "3\n", second.error
    assert [(c.tool, c.arguments, c.ok) for c in second.tool_calls] == [("add_one", {"n": 2}, True)]


async def test_peek_is_not_offered(session: Any) -> None:
    assert (await session.execute("x = 1", timeout=60)).ok
    assert await session.peek(["x"]) is None


# -- default bounds (issue 17, finding 1) ----------------------------------------------------


def test_sessions_are_bounded_by_default(server: LocalE2B) -> None:
    from eager_rt.backends._limits import Limits

    options = server.sdk_options()
    assert open_backend("e2b", **options).session().limits == Limits()
    unbounded = open_backend("e2b", **options, exec_timeout=None, max_output=None).session()
    assert unbounded.limits == Limits(exec_timeout=None, max_output=None)
    with pytest.raises(ValueError, match="exec_timeout"):
        open_backend("e2b", **options, exec_timeout=0)


async def test_an_output_flood_is_capped_with_a_notice(backend: Any) -> None:
    await check_an_output_flood_is_capped(backend.session(max_output=FLOOD_CAP))


async def test_the_default_time_bound_applies_when_execute_has_no_timeout(backend: Any) -> None:
    await check_the_default_time_bound(backend.session(exec_timeout=TIME_BOUND))


# -- a kernel that dies (issue 17, finding 11) -------------------------------------------------

UPSTREAM = os.environ.get("EAGER_RT_E2B_UPSTREAM")
TARGETS = ["local"] + (["upstream"] if UPSTREAM else [])
CRASH = "import os\nprint('before', flush=True)\nos.kill(os.getpid(), 9)\n"


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, server: LocalE2B) -> dict[str, Any]:
    """SDK options for sandboxes served by our server, then (when it runs) by E2B's own."""
    options = server.sdk_options()
    if request.param == "upstream":
        options["sandbox_url"] = UPSTREAM
    return options


async def test_a_dead_kernel_is_waited_for_and_the_context_goes_on(
    server: LocalE2B, target: dict[str, Any]
) -> None:
    """The sandbox's Jupyter restarts a dead kernel itself: no restart asked, no new sandbox."""
    backend = open_backend("e2b", **target, interrupt_grace=3.0, stall_timeout=10.0)
    session = backend.session()
    await session.start(timeout=120)
    try:
        await session.execute("kept = 1\nopen('marker.txt', 'w').write('x')\n", timeout=60)
        sandbox_id, context_id = session.sandbox_id, session._context.id
        result = await session.execute(CRASH, timeout=120)
        assert result.status is Status.DIED, result
        assert result.state_lost
        assert result.detail == (
            "the kernel died (the sandbox's Jupyter restarted it by itself); "
            "the context was restarted"
        )
        assert session.alive
        assert (session.sandbox_id, session._context.id) == (sandbox_id, context_id)
        after = await session.execute(
            "import os\nprint(globals().get('kept'), os.path.exists('marker.txt'))\n1 + 1\n",
            timeout=60,
        )
        assert after.status is Status.OK, after
        assert after.stdout == "None True\n"  # variables gone, files kept
        assert after.displays == []  # script semantics set up again in the new kernel
        if target["sandbox_url"] == server.url:
            mine = [e["event"] for e in server.events() if e.get("sandbox_id") == sandbox_id]
            assert mine.count("kernel_died") == 1
            assert "restart" not in mine and "restart_refused" not in mine
            assert "create" in mine and mine.count("create") == 1
    finally:
        await session.close()
        await backend.aclose()


async def test_a_restart_asked_while_jupyter_restarts_the_kernel_is_refused(
    target: dict[str, Any],
) -> None:
    """What E2B's server does, and ours too: 500 while Jupyter's restarter is at work.

    E2B's server has closed its kernel connection by then; whether the context
    answers again depends on a race in it (ours takes the worse case: never).
    """
    from e2b import SandboxException
    from e2b_code_interpreter import AsyncSandbox

    sandbox = await AsyncSandbox.create(**target)
    try:
        context = await sandbox.create_code_context()
        crashed = await sandbox.run_code(CRASH, context=context, timeout=60)
        assert crashed.error is not None and crashed.error.name == "ContextRestarting"
        with pytest.raises(SandboxException, match="Failed to restart context"):
            await sandbox.restart_code_context(context)
        with contextlib.suppress(Exception):
            await sandbox.remove_code_context(context)
    finally:
        await sandbox.kill()


async def test_the_backend_replaces_a_context_that_cannot_be_restarted(
    server: LocalE2B, backend: Any
) -> None:
    """A refused restart: a new context in the same sandbox (its files kept), said in the detail."""
    session = backend.session()
    await session.start(timeout=120)
    try:
        await session.execute("kept = 1\nopen('marker.txt', 'w').write('x')\n", timeout=60)
        sandbox_id, context_id = session.sandbox_id, session._context.id
        refused = session.sandbox.restart_code_context

        async def refuse(*args: Any, **kwargs: Any) -> None:
            from e2b import SandboxException

            raise SandboxException("500: Failed to restart context")

        session.sandbox.restart_code_context = refuse
        try:
            await session.restart(timeout=120)
        finally:
            session.sandbox.restart_code_context = refused
        assert session.alive and session.sandbox_id == sandbox_id
        assert session._context.id != context_id
        after = await session.execute(
            "import os\nprint(globals().get('kept'), os.path.exists('marker.txt'))\n", timeout=60
        )
        assert after.stdout == "None True\n"
        listed = {c.id for c in await session.sandbox.list_code_contexts()}
        assert context_id not in listed  # the old one and its kernel are gone
    finally:
        await session.close()


# -- the local server as E2B's own (issue 17, finding 11) ---------------------------------------


async def test_the_local_sandbox_looks_like_the_template(server: LocalE2B) -> None:
    """Default contexts listed before any execution, /home/user, the template's result fields."""
    from e2b_code_interpreter import AsyncSandbox

    sandbox = await AsyncSandbox.create(**server.sdk_options())
    try:
        languages = sorted(c.language for c in await sandbox.list_code_contexts())
        assert languages == ["javascript", "python"]
        cwd = await sandbox.run_code("import os\nprint(os.getcwd(), os.environ['HOME'])")
        assert cwd.logs.stdout == ["/home/user /home/user\n"]
        frame = await sandbox.run_code("import pandas as pd\npd.DataFrame({'a': [1, 2, 3]})")
        assert frame.results[0].data == {"a": [1, 2, 3]}
        listed = await sandbox.run_code("[1, {'b': 2}]")
        assert listed.results[0].json == [1, {"b": 2}]
        saved = await sandbox.run_code(
            "from PIL import Image\nImage.new('RGB', (4, 4)).save('tiny.png')\n"
        )
        assert base64.b64decode(saved.results[0].png).startswith(PNG_SIGNATURE)
        if importlib.util.find_spec("e2b_charts") is None:
            unavailable("E2B charts", "e2b-charts is not installed", "EAGER_RT_REQUIRE_E2B")
        chart = await sandbox.run_code(
            "import matplotlib.pyplot as plt\nplt.plot([1, 2], [3, 4])\nplt.title('t')\nplt.show()"
        )
        assert chart.results[0].chart is not None
        assert chart.results[0].chart.title == "t"
    finally:
        await sandbox.kill()


async def test_a_kernel_that_died_while_idle_is_reported_at_the_next_execution(
    server: LocalE2B, session: Any
) -> None:
    """Jupyter restarts it without a word; the execution count going back gives it away."""
    await session.execute("kept = 1", timeout=60)
    code = "import os, threading\nthreading.Timer(0.2, os._exit, (1,)).start()\n"
    assert (await session.execute(code, timeout=60)).status is Status.OK

    def restarted() -> bool:
        return any(e["sandbox_id"] == session.sandbox_id for e in server.events("kernel_restarted"))

    while not restarted():  # the death, and Jupyter's restart, happen while we wait
        await asyncio.sleep(0.05)
    result = await session.execute("print(globals().get('kept'))", timeout=60)
    assert result.status is Status.OK, result
    assert result.stdout == "None\n"
    assert result.state_lost
    assert "had died while idle" in result.detail
    # set up again: script semantics hold for what follows, and nothing is reported twice
    after = await session.execute("kept = 2\n1 + 1\n", timeout=60)
    assert (after.displays, after.state_lost, after.detail) == ([], False, "")
