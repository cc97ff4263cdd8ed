"""What the Jupyter backend does beyond the shared conformance suite.

Rich outputs (clear_output, execute_result, MIME bundles), tracebacks cleaned
of ANSI codes, script versus notebook semantics, the gateway's auth token,
kernel death and cleanup on both local and remote kernels, the socket
options that keep a gateway round trip from stalling on Nagle's algorithm,
and host tools over the stdin channel (the in-kernel transport and the
host's desk on their own, then on kernels) with ``peek``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from eager_rt.backends import _kernel_tools as kernel_tools
from eager_rt.backends import jupyter as jupyter_backend
from eager_rt.backends._ipython_setup import EOF_MESSAGE
from eager_rt.backends._jupyter_messages import (
    KernelMessage,
    error_info,
    output_from_iopub,
    strip_ansi,
)
from eager_rt.backends._recovery import DEFAULT_INTERRUPT_GRACE
from eager_rt.backends.jupyter import JupyterBackend, JupyterSession, _ToolDesk

from eager_rt import arun_stream
from eager_rt.executor import BackendError, Output, Session, SessionDead, Status
from eager_rt.testing import paced
from eager_rt.tools import ToolHost, as_tools, stub_source, tool
from tests.conformance.test_tools import wait_for
from tests.kernel_bounds import (
    FLOOD_CAP,
    TIME_BOUND,
    check_an_output_flood_is_capped,
    check_the_default_time_bound,
)
from tests.provision import unavailable
from tests.provision.jupyter import REQUIRE_VAR, Gateway, _missing_jupyter

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# a 1x1 transparent PNG
TINY_PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()

VARIANTS = ["local", "remote"]


@pytest.fixture(params=VARIANTS)
def options(request: pytest.FixtureRequest) -> dict[str, object]:
    """Backend options for a local kernel, then for one on the test Kernel Gateway."""
    if request.param == "local":
        missing = _missing_jupyter()
        if missing:
            unavailable("Jupyter kernels", missing, REQUIRE_VAR)
        return {}
    gateway: Gateway = request.getfixturevalue("kernel_gateway")
    return {"url": gateway.url, "token": gateway.token}


async def started(**options: object) -> JupyterSession:
    session = JupyterBackend(**options).session()
    await session.start(timeout=120)
    return session


@pytest.fixture
async def session(options: dict[str, object]) -> AsyncIterator[JupyterSession]:
    s = await started(**options)
    try:
        yield s
    finally:
        await s.close()


# -- message conversion (no kernel needed) ----------------------------------------


def test_strip_ansi_removes_colours_and_links() -> None:
    coloured = "\x1b[31mZeroDivisionError\x1b[39m: \x1b[38;5;28;01mx\x1b[0m"
    assert strip_ansi(coloured) == "ZeroDivisionError: x"
    assert strip_ansi("\x1b]8;;http://x\x07link\x1b]8;;\x07") == "link"


def test_error_info_takes_the_first_frame_of_the_current_cell() -> None:
    content = {
        "ename": "ZeroDivisionError",
        "evalue": "division by zero",
        "traceback": [
            "\x1b[31mZeroDivisionError\x1b[39m   Traceback (most recent call last)",
            "\x1b[36mCell\x1b[39m In[7], line 5\n----> 5 g()\n",
            "Cell In[7], line 2, in g()\n----> 2 f()\n",
            "Cell In[3], line 9, in f()\n----> 9 1/0\n",
        ],
    }
    info = error_info(content, execution_count=7)
    assert info.lineno == 5
    assert not any("\x1b" in line for line in info.traceback)
    # without a count the first cell frame is taken; with a foreign count none
    assert error_info(content, execution_count=None).lineno == 5
    assert error_info(content, execution_count=8).lineno is None


def test_iopub_messages_map_to_outputs() -> None:
    def msg(msg_type: str, content: dict[str, object]) -> KernelMessage:
        return KernelMessage("iopub", msg_type, "p", content)

    assert output_from_iopub(msg("stream", {"name": "stderr", "text": "e"})) == Output(
        kind="stderr", text="e"
    )
    shown = output_from_iopub(
        msg("execute_result", {"data": {"text/plain": "2"}, "metadata": {}, "execution_count": 1})
    )
    assert shown == Output(kind="display", data={"text/plain": "2"}, metadata={})
    assert output_from_iopub(msg("clear_output", {"wait": True})) == Output(
        kind="clear", metadata={"wait": True}
    )
    assert output_from_iopub(msg("status", {"execution_state": "idle"})) is None


def test_unknown_option_is_rejected_at_construction() -> None:
    with pytest.raises(TypeError):
        JupyterBackend(kernel="python3")


# -- rich output --------------------------------------------------------------------


@pytest.mark.anyio
async def test_clear_output_is_reported(session: JupyterSession) -> None:
    code = (
        "from IPython.display import clear_output\n"
        "print('old', flush=True)\n"
        "clear_output(wait=True)\n"
        "print('new')\n"
    )
    result = await session.execute(code, timeout=60)
    assert result.status is Status.OK, result
    kinds = [(o.kind, o.text) for o in result.outputs]
    assert kinds == [("stdout", "old\n"), ("clear", ""), ("stdout", "new\n")]
    assert result.outputs[1].metadata == {"wait": True}


@pytest.mark.anyio
async def test_display_gives_html_and_png_bundles(session: JupyterSession) -> None:
    code = (
        "from IPython.display import HTML, Image, display\n"
        "import base64\n"
        "display(HTML('<b>bold</b>'))\n"
        f"display(Image(data=base64.b64decode({TINY_PNG!r}), format='png'))\n"
    )
    result = await session.execute(code, timeout=60)
    assert result.status is Status.OK, result
    html, image = result.displays
    assert html["text/html"] == "<b>bold</b>"
    assert "text/plain" in html
    assert base64.b64decode(image["image/png"]).startswith(PNG_SIGNATURE)


@pytest.mark.anyio
async def test_script_semantics_show_figures_only_on_show(session: JupyterSession) -> None:
    """A figure built over several chunks appears once, where plt.show() is, as in one run."""
    first = await session.execute(
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2])\n", timeout=120
    )
    assert first.status is Status.OK, first
    assert first.displays == []  # the inline backend would have drawn it here
    second = await session.execute("ax.set_title('t')\n1 + 1\n", timeout=60)
    assert second.outputs == []  # nor here, and no echo of 1 + 1
    third = await session.execute("plt.show()\n", timeout=60)
    pngs = [d for d in third.displays if "image/png" in d]
    assert len(pngs) == 1
    assert base64.b64decode(pngs[0]["image/png"]).startswith(PNG_SIGNATURE)


@pytest.mark.anyio
async def test_notebook_semantics_echo_the_last_expression(options: dict[str, object]) -> None:
    session = await started(semantics="notebook", **options)
    try:
        result = await session.execute("x = 20\nx + 22\n", timeout=60)
        assert result.status is Status.OK, result
        assert result.displays == [{"text/plain": "42"}]
        figure = await session.execute(
            "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nNone\n", timeout=120
        )
        # the notebook's inline backend draws the figure at the end of the cell
        assert any("image/png" in d for d in figure.displays), figure.outputs
    finally:
        await session.close()


# -- errors ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_traceback_is_plain_text_with_the_failing_line(session: JupyterSession) -> None:
    await session.execute("def inner():\n    raise ValueError('bad value')\n", timeout=60)
    result = await session.execute("a = 1\n\nb = 2\ninner()\n", timeout=60)
    assert result.status is Status.ERROR
    assert result.error is not None
    assert result.error.ename == "ValueError"
    assert result.error.evalue == "bad value"
    assert result.error.lineno == 4  # the call here, not the raise in the earlier cell
    text = "\n".join(result.error.traceback)
    assert "\x1b" not in text
    assert "raise ValueError('bad value')" in text


@pytest.mark.anyio
async def test_leading_blank_lines_count(session: JupyterSession) -> None:
    """The runtime pads a batch to its line in the program; IPython must not strip that."""
    result = await session.execute("\n\n\nx = 1\nundefined_name\n", timeout=60)
    assert result.error is not None
    assert result.error.lineno == 5


@pytest.mark.anyio
async def test_input_fails_at_once_like_a_script_without_stdin(session: JupyterSession) -> None:
    for code in ("name = input('name? ')\n", "import getpass\nsecret = getpass.getpass()\n"):
        result = await session.execute(code, timeout=60)
        assert result.status is Status.ERROR
        assert result.error is not None
        assert (result.error.ename, result.error.evalue) == ("EOFError", EOF_MESSAGE)


@pytest.mark.anyio
async def test_unknown_kernel_name_is_a_backend_error(options: dict[str, object]) -> None:
    session = JupyterBackend(kernel_name="no-such-kernel", **options).session()
    with pytest.raises(BackendError, match=r"no-such-kernel|HTTP"):
        await session.start(timeout=60)
    assert not session.alive
    await session.close()


# -- gateway auth -------------------------------------------------------------------


@pytest.mark.anyio
async def test_gateway_refuses_a_wrong_token(
    kernel_gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JUPYTER_GATEWAY_AUTH_TOKEN", raising=False)
    before = kernel_gateway.kernel_ids()
    for token in ("not-the-token", None):
        session = JupyterBackend(url=kernel_gateway.url, token=token).session()
        with pytest.raises(BackendError, match="HTTP 401") as caught:
            await session.start(timeout=60)
        assert "token" in str(caught.value)
        assert not session.alive
        await session.close()
    assert kernel_gateway.kernel_ids() == before


@pytest.mark.anyio
async def test_token_defaults_to_the_environment(
    kernel_gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_GATEWAY_AUTH_TOKEN", kernel_gateway.token)
    session = await started(url=kernel_gateway.url)
    try:
        assert (await session.execute("print(6 * 7)", timeout=60)).stdout == "42\n"
    finally:
        await session.close()


@pytest.mark.anyio
async def test_unreachable_gateway_is_a_backend_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens here once closed
    session = JupyterBackend(url=f"http://127.0.0.1:{port}", token="t").session()
    with pytest.raises(BackendError, match="cannot reach"):
        await session.start(timeout=30)
    await session.close()


# -- death, interrupt, timeout, cleanup -------------------------------------------


@pytest.mark.anyio
async def test_kernel_death_is_reported_and_recovered(session: JupyterSession) -> None:
    await session.execute("kept = 1", timeout=60)
    # (the pause lets ZeroMQ's I/O thread send the line before os._exit kills it)
    code = "import os, time\nprint('last words', flush=True)\ntime.sleep(0.5)\nos._exit(7)\n"
    result = await asyncio.wait_for(session.execute(code, timeout=120), 90)
    assert result.status is Status.DIED
    assert result.stdout == "last words\n"  # what it said before dying is kept
    assert result.state_lost
    if session.url:
        assert "gateway restarted" in result.detail
    else:
        assert "status 7" in result.detail
    after = await session.execute("print('kept' in globals())", timeout=60)
    assert after.stdout == "False\n"


@pytest.mark.anyio
async def test_death_without_auto_restart_leaves_the_session_dead(
    options: dict[str, object],
) -> None:
    session = await started(auto_restart=False, **options)
    try:
        result = await asyncio.wait_for(session.execute("import os\nos._exit(3)\n"), 90)
        assert result.status is Status.DIED
        assert result.state_lost
        assert not session.alive
        with pytest.raises(SessionDead):
            await session.execute("pass", timeout=10)
        await session.restart(timeout=120)  # but it can be brought back
        assert (await session.execute("print(1)", timeout=60)).stdout == "1\n"
    finally:
        await session.close()


async def _until_dead(session: JupyterSession) -> None:
    while session.alive:
        await asyncio.sleep(0.05)


@pytest.mark.anyio
async def test_local_kernel_killed_while_idle_is_restarted_by_the_next_execute() -> None:
    session = await started()
    try:
        await session.execute("kept = 1", timeout=60)
        os.kill(session.kernel.pid, signal.SIGKILL)
        await asyncio.wait_for(_until_dead(session), 30)  # noticed without any request
        result = await session.execute("print('kept' in globals())", timeout=120)
        assert result.status is Status.OK, result
        assert result.stdout == "False\n"
        assert result.state_lost
        assert "died while idle" in result.detail and "SIGKILL" in result.detail
    finally:
        await session.close()


@pytest.mark.anyio
async def test_kernel_deleted_on_the_gateway_is_noticed(kernel_gateway: Gateway) -> None:
    for auto_restart in (False, True):
        session = await started(
            url=kernel_gateway.url, token=kernel_gateway.token, auto_restart=auto_restart
        )
        try:
            kernel_gateway.delete_kernel(session.kernel.kernel_id)
            await asyncio.wait_for(_until_dead(session), 30)
            if not auto_restart:
                with pytest.raises(SessionDead, match="no longer knows"):
                    await session.execute("pass", timeout=60)
                continue
            result = await session.execute("print(2)", timeout=120)
            assert result.status is Status.OK, result
            assert result.stdout == "2\n"
            assert result.state_lost and "no longer knows" in result.detail
        finally:
            await session.close()


@pytest.mark.anyio
async def test_interrupt_reports_keyboard_interrupt(session: JupyterSession) -> None:
    seen = asyncio.Event()
    task = asyncio.create_task(
        session.execute(
            "import time\nprint('go', flush=True)\nwhile True:\n    time.sleep(0.01)\n",
            on_output=lambda o: seen.set(),
        )
    )
    await asyncio.wait_for(seen.wait(), 60)
    await session.interrupt()
    result = await asyncio.wait_for(task, 60)
    assert result.status is Status.INTERRUPTED
    assert result.error is not None and result.error.ename == "KeyboardInterrupt"
    assert not result.state_lost


def test_options_share_the_vocabulary_of_every_backend() -> None:
    with pytest.raises(TypeError):
        JupyterBackend(notebook_semantics=True)
    with pytest.raises(ValueError, match="semantics"):
        JupyterBackend(semantics="lab")
    with pytest.raises(ValueError, match="interrupt_grace"):
        JupyterBackend(interrupt_grace=-1)
    session = JupyterBackend().session()
    assert (session.semantics, session.interrupt_grace) == ("script", DEFAULT_INTERRUPT_GRACE)


@pytest.mark.anyio
async def test_timeout_restart_replaces_the_local_kernel_process() -> None:
    session = await started(interrupt_grace=0.5)
    try:
        old_pid = session.kernel.pid
        stubborn = (
            "import time\n"
            "while True:\n"
            "    try:\n"
            "        time.sleep(1)\n"
            "    except KeyboardInterrupt:\n"
            "        pass\n"
        )
        result = await session.execute(stubborn, timeout=0.5)
        assert result.status is Status.TIMEOUT
        assert result.state_lost
        assert "restarted" in result.detail
        assert session.kernel.pid != old_pid
        assert not _pid_exists(old_pid)
    finally:
        await session.close()


@pytest.mark.anyio
async def test_close_leaves_no_local_kernel_process() -> None:
    session = await started()
    pid = session.kernel.pid
    assert pid is not None and _pid_exists(pid)
    await session.close()
    assert not _pid_exists(pid)
    assert not session.alive
    await session.close()  # idempotent


@pytest.mark.anyio
async def test_close_leaves_no_kernel_on_the_gateway(kernel_gateway: Gateway) -> None:
    before = kernel_gateway.kernel_ids()
    session = await started(url=kernel_gateway.url, token=kernel_gateway.token)
    kernel_id = session.kernel.kernel_id
    assert kernel_id in kernel_gateway.kernel_ids()
    # a death mid-way (the gateway restarts the kernel) must not leak it either
    died = await asyncio.wait_for(session.execute("import os\nos._exit(1)\n"), 90)
    assert died.status is Status.DIED
    await session.close()
    assert kernel_gateway.kernel_ids() == before


@pytest.mark.anyio
async def test_cwd_and_env_reach_the_kernel(options: dict[str, object], tmp_path: Path) -> None:
    session = await started(cwd=str(tmp_path), env={"EAGER_RT_PROBE": "yes"}, **options)
    try:
        result = await session.execute(
            "import os\nprint(os.getcwd())\nprint(os.environ.get('EAGER_RT_PROBE'))\n", timeout=60
        )
        assert result.stdout == f"{os.path.realpath(tmp_path)}\nyes\n"
    finally:
        await session.close()


# -- socket options -------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("nodelay", [True, False])
async def test_websocket_socket_has_tcp_nodelay(kernel_gateway: Gateway, nodelay: bool) -> None:
    session = await started(url=kernel_gateway.url, token=kernel_gateway.token, tcp_nodelay=nodelay)
    try:
        sock = session.kernel.socket
        assert sock is not None
        assert bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) is nodelay
        # still set after traffic and after a restart (a new websocket)
        await session.execute("pass", timeout=60)
        await session.restart(timeout=120)
        sock = session.kernel.socket
        assert bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) is nodelay
    finally:
        await session.close()


def _pid_exists(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- host tools: the in-kernel transport and the host's desk, without a kernel ----------


def test_stdin_transport_hands_every_thread_its_own_reply() -> None:
    """One asker at a time; replies that come back in any grouping reach their own callers."""
    announced: list[int] = []
    asked: list[dict[str, Any]] = []
    lock = threading.Lock()
    in_flight = threading.Semaphore(0)

    def announce(request: dict[str, Any]) -> None:
        with lock:
            announced.append(request["call"])
        in_flight.release()

    def ask(prompt: str) -> str:
        assert prompt.startswith(kernel_tools.PROMPT)
        query = json.loads(prompt[len(kernel_tools.PROMPT) :])
        asked.append(query)
        with lock:
            ready = [c for c in announced if c in query["wait"]][:2]  # two at most per answer
        replies = [{"ok": True, "call": c, "tool": "t", "value": c * 10} for c in ready]
        return kernel_tools.LAST + json.dumps(replies)

    transport = kernel_tools.StdinTransport(announce, ask)
    results: dict[int, Any] = {}

    def call(n: int) -> None:
        results[n] = transport({"tool": "t", "args": {}, "call": n})["value"]

    threads = [threading.Thread(target=call, args=(n,)) for n in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {n: n * 10 for n in range(1, 7)}
    # every request rode on some prompt exactly once (a dropped announcement still arrives)
    carried = [r["call"] for q in asked for r in q["calls"]]
    assert sorted(carried) == list(range(1, 7))


def test_an_interrupt_anywhere_in_a_tool_wait_leaves_the_kernel_transport_usable() -> None:
    """KeyboardInterrupt (the kernel's answer to an interrupt) at each point of a call's
    wait where a signal handler may run: the lock is never left held, and the next
    call gets its reply. (Raised as ``Condition.__enter__`` returned, it once left the
    lock taken: the next call in that kernel hung.)"""

    def ask(prompt: str) -> str:
        query = json.loads(prompt[len(kernel_tools.PROMPT) :])
        replies = [{"ok": True, "call": c, "tool": "t", "value": c} for c in query["wait"]]
        return kernel_tools.LAST + json.dumps(replies)

    transport = kernel_tools.StdinTransport(lambda request: None, ask)
    watched = {transport.__call__.__code__, transport._collect.__code__}

    def run(call: int, at: int | None) -> tuple[int, object]:
        """Make call ``call`` in a thread, raising KeyboardInterrupt at its ``at``-th point.

        The points are where a signal's handler runs in CPython: as a function of
        the transport starts, and as each Python function it calls returns.
        """
        seen, outcome = [0], []

        def tracer(frame: Any, event: str, arg: Any) -> Any:
            caller = frame.f_back.f_code if frame.f_back is not None else None
            if (event == "call" and frame.f_code in watched) or (
                event == "return" and caller in watched
            ):
                seen[0] += 1
                if seen[0] == at:
                    raise KeyboardInterrupt
            return tracer if frame.f_code in watched or caller in watched else None

        def target() -> None:
            sys.settrace(tracer)
            try:
                outcome.append(transport({"tool": "t", "args": {}, "call": call})["value"])
            except KeyboardInterrupt:
                outcome.append("interrupted")
            finally:
                sys.settrace(None)

        thread = threading.Thread(target=target)
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), f"the call hung after an interrupt at point {at}"
        return seen[0], outcome[0]

    points, value = run(1, None)
    assert value == 1 and points >= 5
    for at in range(1, points + 1):
        run(100 + at, at)
        assert transport._cond._lock.acquire(blocking=False), f"lock left held at {at}"  # type: ignore[attr-defined]
        transport._cond._lock.release()  # type: ignore[attr-defined]
        assert run(1000 + at, None)[1] == 1000 + at


def test_stdin_transport_joins_an_answer_sent_in_pieces() -> None:
    payload = json.dumps([{"ok": True, "call": 1, "tool": "t", "value": "x" * 50}])
    pieces = [payload[:20], payload[20:40], payload[40:]]
    parts: list[int] = []

    def ask(prompt: str) -> str:
        parts.append(json.loads(prompt[len(kernel_tools.PROMPT) :])["part"])
        piece = pieces[len(parts) - 1]
        return (kernel_tools.LAST if len(parts) == 3 else kernel_tools.MORE) + piece

    transport = kernel_tools.StdinTransport(lambda request: None, ask)
    assert transport({"tool": "t", "args": {}, "call": 1})["value"] == "x" * 50
    assert parts == [0, 1, 2]  # the host can tell a new sequence from a continued one


class _FakeKernel:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_input(self, text: str) -> None:
        self.sent.append(text)


def _input_request(prompt: str) -> KernelMessage:
    return KernelMessage("stdin", "input_request", "p", {"prompt": prompt, "password": False})


def _ask(calls: list[dict[str, Any]], wait: list[int], part: int = 0) -> KernelMessage:
    query = {"calls": calls, "wait": wait, "part": part}
    return _input_request(kernel_tools.PROMPT + json.dumps(query))


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.mark.anyio
async def test_tool_desk_answers_the_kernels_questions() -> None:
    handled: list[dict[str, Any]] = []

    async def handler(request: Mapping[str, Any]) -> dict[str, Any]:
        handled.append(dict(request))
        return {"ok": True, "tool": request["tool"], "value": "v" * 10}

    kernel = _FakeKernel()
    desk = _ToolDesk(kernel, handler)
    request = {"tool": "t", "args": {}, "call": 1}
    desk.start(request, announced=True)  # announced on iopub
    desk.on_input_request(_ask([request], [1]))  # and carried by the prompt: run once
    await _settle()
    assert len(handled) == 1
    assert len(kernel.sent) == 1 and kernel.sent[0].startswith(kernel_tools.LAST)
    assert [r["call"] for r in json.loads(kernel.sent[0][1:])] == [1]
    # the kernel asks again for call 1 on a new question: its answer was lost, send it again
    desk.on_input_request(_ask([], [1]))
    await _settle()
    assert [r["call"] for r in json.loads(kernel.sent[1][1:])] == [1]
    assert len(handled) == 1
    # a call this execution never heard of (made during an earlier one) fails at once
    desk.on_input_request(_ask([], [9]))
    await _settle()
    (reply,) = json.loads(kernel.sent[2][1:])
    assert (reply["call"], reply["ok"], reply["error"]["type"]) == (9, False, "CancelledError")
    # input() of user code: end of file
    desk.on_input_request(_input_request("name? "))
    await _settle()
    assert kernel.sent[3] == "\x04"
    await desk.close()


@pytest.mark.anyio
async def test_a_call_the_prompt_carried_first_waits_for_its_announcement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """stdin may overtake iopub: the tool runs once the announcement (behind the output
    the code wrote before the call) is in, or after a bound if it never comes."""
    monkeypatch.setattr(jupyter_backend, "_ANNOUNCEMENT_WAIT_S", 0.2)
    handled: list[int] = []

    async def handler(request: Mapping[str, Any]) -> dict[str, Any]:
        handled.append(request["call"])
        return {"ok": True, "tool": "t", "value": None}

    kernel = _FakeKernel()
    desk = _ToolDesk(kernel, handler)
    first, second = ({"tool": "t", "args": {}, "call": n} for n in (1, 2))
    desk.on_input_request(_ask([first, second], [1, 2]))
    await _settle()
    assert handled == []  # neither announced yet
    desk.start(first, announced=True)
    await _settle()
    assert handled == [1]
    await wait_for(lambda: handled == [1, 2])  # call 2's announcement never came
    await desk.close()


@pytest.mark.anyio
async def test_tool_desk_sends_a_large_answer_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel_tools, "PIECE", 40)

    async def handler(request: Mapping[str, Any]) -> dict[str, Any]:
        return {"ok": True, "tool": "t", "value": "x" * 100}

    kernel = _FakeKernel()
    desk = _ToolDesk(kernel, handler)
    request = {"tool": "t", "args": {}, "call": 1}
    desk.on_input_request(_ask([request], [1]))
    desk.start(request, announced=True)
    await _settle()
    part = 1
    while kernel.sent[-1].startswith(kernel_tools.MORE):
        desk.on_input_request(_ask([], [1], part))
        await _settle()
        part += 1
    assert len(kernel.sent) > 2 and kernel.sent[-1].startswith(kernel_tools.LAST)
    (reply,) = json.loads("".join(text[1:] for text in kernel.sent))
    assert reply["value"] == "x" * 100
    await desk.close()


@pytest.mark.anyio
async def test_tool_desk_tells_a_waiting_kernel_the_execution_ended() -> None:
    started = asyncio.Event()

    async def handler(request: Mapping[str, Any]) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(3600)
        return {}

    kernel = _FakeKernel()
    desk = _ToolDesk(kernel, handler)
    desk.on_input_request(_ask([{"tool": "t", "args": {}, "call": 4}], [4]))
    await asyncio.wait_for(started.wait(), 10)
    await desk.close()  # the call is cancelled, the asker is answered
    (reply,) = json.loads(kernel.sent[-1][1:])
    assert (reply["call"], reply["error"]["type"]) == (4, "CancelledError")


# -- host tools on a kernel ------------------------------------------------------------


async def _define(session: Session, *tools: Any) -> ToolHost:
    declared = as_tools(tools)
    assert (await session.execute(stub_source(declared), timeout=60)).ok
    return ToolHost(declared)


@pytest.mark.anyio
async def test_announcements_never_show_as_outputs(session: JupyterSession) -> None:
    host = await _define(session, add_one)
    result = await session.execute("print(add_one(1))\nprint(add_one(2))", timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "2\n3\n"
    assert [o.kind for o in result.outputs] == ["stdout"] * len(result.outputs)


@pytest.mark.anyio
async def test_input_still_fails_beside_tool_calls(session: JupyterSession) -> None:
    host = await _define(session, add_one)
    code = (
        "print(add_one(1))\ntry:\n    input('name? ')\nexcept EOFError as e:\n    print('EOF', e)\n"
    )
    result = await session.execute(code, timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == f"2\nEOF {EOF_MESSAGE}\n"


@pytest.mark.anyio
async def test_notebook_semantics_keep_input_unsupported(options: dict[str, object]) -> None:
    session = await started(semantics="notebook", **options)
    try:
        host = await _define(session, add_one)
        result = await session.execute("add_one(1)\n", timeout=60, tools=host)
        assert result.status is Status.OK, result
        assert result.displays and result.displays[0]["text/plain"] == "2"
        failed = await session.execute("input('name? ')", timeout=60, tools=host)
        assert failed.error is not None
        assert failed.error.ename == "StdinNotImplementedError"
    finally:
        await session.close()


@pytest.mark.anyio
async def test_a_thread_that_calls_after_its_cell_ended_is_answered_later(
    session: JupyterSession,
) -> None:
    """A late caller is served by the next execution (not refused by a peek in between)."""
    host = await _define(session, add_one)
    code = (
        "import threading, time\n"
        "late = []\n"
        "t = threading.Thread(target=lambda: (time.sleep(0.5), late.append(add_one(41))))\n"
        "t.start()\n"
    )
    assert (await session.execute(code, timeout=60, tools=host)).ok
    await asyncio.sleep(1.0)  # the thread now waits, with nobody following the kernel
    # a peek meanwhile runs no user code: it keeps the question for the next execution
    assert await session.peek(["late"]) == {"late": []}
    result = await session.execute("t.join(30)\nprint(late, add_one(1))", timeout=60, tools=host)
    assert result.status is Status.OK, result
    assert result.stdout == "[42] 2\n"


@pytest.mark.anyio
async def test_peek_reads_plain_data_without_running_code(session: JupyterSession) -> None:
    code = (
        "class Loud:\n"
        "    def __repr__(self):\n"
        "        print('repr ran')\n"
        "        return 'loud'\n"
        "    def __eq__(self, other):\n"
        "        print('eq ran')\n"
        "        return False\n"
        "class Sub(str):\n"
        "    pass\n"
        "cities = ['Paris', 'Oslo']\n"
        "cfg = {'n': 3, 'ratio': 0.5, 'flags': (True, None), 'raw': b'\\x00'}\n"
        "loud = Loud()\n"
        "nested = [1, Loud()]\n"
        "sub = Sub('x')\n"
    )
    assert (await session.execute(code, timeout=60)).ok
    count = await session.execute("print(get_ipython().execution_count)", timeout=60)
    values = await session.peek(["cities", "cfg", "loud", "nested", "sub", "missing", "1bad"])
    assert values == {
        "cities": ["Paris", "Oslo"],
        "cfg": {"n": 3, "ratio": 0.5, "flags": [True, None], "raw": b"\x00"},
    }
    after = await session.execute("print(get_ipython().execution_count)", timeout=60)
    # the peek ran no cell of its own (a silent execution), and nothing of Loud ran
    assert int(after.stdout) == int(count.stdout) + 1
    assert "ran" not in after.stdout


@pytest.mark.anyio
async def test_tools_defined_again_by_the_runtime_after_a_restart(session: JupyterSession) -> None:
    first = await arun_stream(["print(add_one(1))\n"], session, tools=[add_one])
    assert first.ok and first.stdout == "2\n", first.error
    await session.restart(timeout=120)
    second = await arun_stream(["print(add_one(2))\n"], session, tools=[add_one])
    assert second.ok and second.stdout == "3\n", second.error
    assert [(c.tool, c.arguments, c.ok) for c in second.tool_calls] == [("add_one", {"n": 2}, True)]


@pytest.mark.anyio
async def test_speculation_reads_session_values_through_peek(session: JupyterSession) -> None:
    async def weather(city: str) -> str:
        """Weather of a city."""
        await asyncio.sleep(0.2)
        return city.lower()

    code = (
        "cities = ['Paris', 'Oslo', 'Rome']\n"
        "out = []\n"
        "for c in cities:\n"
        "    out.append(await weather(c))\n"
        "print(out)\n"
    )
    result = await arun_stream(
        paced(list(code), tps=40), session, tools=[tool(weather, read_only=True)], speculate=True
    )
    assert result.ok, result.error
    assert result.stdout == "['paris', 'oslo', 'rome']\n"
    claimed = [c for c in result.tool_calls if c.claimed]
    assert sorted(c.arguments["city"] for c in claimed) == ["Oslo", "Paris", "Rome"]
    # the loop variable's values were read from the session: the calls started ahead
    assert any(c.speculative for c in claimed), [(c.arguments, c.speculative) for c in claimed]


def add_one(n: int) -> int:
    """Add one."""
    return n + 1


# -- default bounds (issue 17, finding 1) ------------------------------------------------


def test_sessions_are_bounded_by_default() -> None:
    from eager_rt.backends._limits import Limits

    assert JupyterBackend().session().limits == Limits()
    unbounded = JupyterBackend(exec_timeout=None, max_output=None).session()
    assert unbounded.limits == Limits(exec_timeout=None, max_output=None)
    with pytest.raises(ValueError, match="max_output"):
        JupyterBackend(max_output=-1)


@pytest.mark.anyio
async def test_an_output_flood_is_capped_with_a_notice(options: dict[str, object]) -> None:
    await check_an_output_flood_is_capped(JupyterBackend(**options, max_output=FLOOD_CAP).session())


@pytest.mark.anyio
async def test_the_default_time_bound_applies_when_execute_has_no_timeout(
    options: dict[str, object],
) -> None:
    await check_the_default_time_bound(JupyterBackend(**options, exec_timeout=TIME_BOUND).session())
