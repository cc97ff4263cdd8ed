"""``%load_ext eager_rt`` and ``%%eager``: in a real IPython shell and in a real ipykernel.

The in-process tests record what the shell's display publisher is handed
(the first display of the cell's view, then its updates in place) and read
the HTML: the statements in order, each one's state, its output under it.
The kernel tests start ipykernel through jupyter_client and read the
display_data / update_display_data messages on the IOPub channel, as a
notebook front end does.
"""

from __future__ import annotations

import base64
import html
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from eager_rt.chunk import Chunk
from eager_rt.events import ChunkDetected, ExecutionStarted, OutputEvent
from eager_rt.executor import Output
from eager_rt.ipython_view import MAX_IMAGES, MAX_TEXT, HtmlView
from eager_rt.result import RunResult
from tests.fake_llm import FakeLLM, Reply
from tests.processes import process_gone, wait_until_gone

STATE = re.compile(r"data-state='(\w+)' data-index='(\d+)'")


class Shell:
    """An in-process IPython shell with eager_rt loaded, recording what it displays."""

    def __init__(self, shell: InteractiveShell) -> None:
        self.shell = shell
        self.published: list[dict[str, Any]] = []

    def publish(self, data: dict[str, Any], metadata: Any = None, **kw: Any) -> None:
        self.published.append({"data": data, **kw})

    def cell(self, line: str, body: str) -> list[dict[str, Any]]:
        """Run ``%%eager line`` on ``body``; what it displayed."""
        start = len(self.published)
        self.shell.run_cell_magic("eager", line, body)  # type: ignore[no-untyped-call]
        return self.published[start:]

    @property
    def ns(self) -> dict[str, Any]:
        return self.shell.user_ns  # type: ignore[no-any-return]


@pytest.fixture
def ipy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Shell]:
    monkeypatch.chdir(tmp_path)
    shell = InteractiveShell.instance()
    recorder = Shell(shell)
    monkeypatch.setattr(shell.display_pub, "publish", recorder.publish)
    shell.run_line_magic("load_ext", "eager_rt")
    try:
        yield recorder
    finally:
        shell.run_line_magic("unload_ext", "eager_rt")


def html_of(message: dict[str, Any]) -> str:
    return str(message["data"]["text/html"])


def states(page: str) -> list[tuple[int, str]]:
    return [(int(i), s) for s, i in STATE.findall(page)]


def in_order(page: str, *texts: str) -> bool:
    """Each text appears in ``page``, each after the one before."""
    at = 0
    for text in texts:
        found = page.find(text, at)
        if found < 0:
            return False
        at = found + len(text)
    return True


def gone(pid: int) -> bool:
    return anyio.run(wait_until_gone, pid, 20.0)


# ------------------------------------------------------------------ the view alone


def statement(code: str, index: int, start: int) -> Chunk:
    return Chunk(code, index, start, start + len(code), start + len(code.rstrip()), index + 1,
                 "statement")  # fmt: skip


def running_view(*codes: str) -> HtmlView:
    """A view whose statements are detected and the first one running, as batch 0."""
    view = HtmlView("test")
    at = 0
    for index, code in enumerate(codes):
        view.code(code)
        view(ChunkDetected(statement(code, index, at), 0.0))
        at += len(code)
    view(ExecutionStarted(0, (0,), codes[0], 0.0))
    return view


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(64)).decode()


def test_the_view_draws_at_most_max_images_and_only_base64_ones() -> None:
    view = running_view("show()\n")
    for _ in range(MAX_IMAGES + 3):
        view(OutputEvent(0, Output("display", data={"image/png": PNG}), 0.0))
    view(OutputEvent(0, Output("display", data={"image/jpeg": "'><script>x</script>"}), 0.0))
    page = view.render()
    assert page.count("<img") == MAX_IMAGES
    assert page.count("images, not shown here") == 3
    assert "[image/jpeg output that is not base64]" in page and "<script>" not in page


def test_the_view_shows_svg_as_an_image_and_honours_clear_output() -> None:
    view = running_view("draw()\n")
    view(OutputEvent(0, Output("stdout", text="old progress\n"), 0.0))
    view(OutputEvent(0, Output("clear"), 0.0))
    svg = "<svg xmlns='http://www.w3.org/2000/svg'><script>x()</script></svg>"
    view(OutputEvent(0, Output("display", data={"image/svg+xml": svg}), 0.0))
    view(OutputEvent(0, Output("stdout", text="new progress\n"), 0.0))
    page = view.render()
    assert "old progress" not in page and "new progress\n" in page
    encoded = base64.b64encode(svg.encode()).decode()
    assert f"src='data:image/svg+xml;base64,{encoded}'" in page
    assert "<svg" not in page


def test_stopping_the_view_settles_every_statement() -> None:
    view = running_view("slow()\n", "after()\n")
    assert view.states() == [(0, "running"), (1, "detected")]
    view.stop("stopped: interrupted")
    assert view.states() == [(0, "failed"), (1, "not_run")]
    page = view.render()
    assert in_order(page, "finished", "slow()", "stopped: interrupted", "after()")


# ------------------------------------------------------------------ in process


def test_replay_shows_the_code_its_states_and_outputs_updated_in_place(ipy: Shell) -> None:
    code = "x = 2\nprint('x is', x)\ny = x * 21\nprint('y is', y)\n"
    shown = ipy.cell("--tps 20", code)
    first, updates = shown[0], shown[1:]
    display_id = first["transient"]["display_id"]
    assert not first.get("update") and display_id
    assert len(updates) >= 2
    assert all(u["update"] and u["transient"]["display_id"] == display_id for u in updates)
    final = html_of(updates[-1])
    assert states(final) == [(0, "done"), (1, "done"), (2, "done"), (3, "done")]
    assert in_order(
        final,
        "x = 2",
        html.escape("print('x is', x)"),
        "x is 2\n",
        "y = x * 21",
        html.escape("print('y is', y)"),
        "y is 42\n",
        "eager-rt-summary",
        ">eager</td>",
        "ok",
    )
    plain = updates[-1]["data"]["text/plain"]  # for front ends that show no HTML
    assert plain.startswith("eager run, 20 tok/s on local: 4 done\neager: ok, E2EL ")
    # the code streamed in: earlier updates showed fewer statements, none of them finished
    seen = [states(html_of(u)) for u in updates]
    assert any(len(s) < 4 for s in seen)
    assert any("model writing" in html_of(u) for u in updates[:-1])
    # each statement's states move forward, never back (queued: waiting behind a running one)
    rank = {"detected": 0, "queued": 0, "running": 1, "done": 2}
    for index in range(4):
        path = [rank[dict(s)[index]] for s in seen if index in dict(s)]
        assert path == sorted(path)


def test_a_failing_statement_is_marked_with_its_error_and_generation_stops(ipy: Shell) -> None:
    shown = ipy.cell("--tps 200", "print('<b>a</b>')\n1/0\nprint('never')\n")
    final = html_of(shown[-1])
    assert states(final)[:2] == [(0, "done"), (1, "failed")]
    assert "&lt;b&gt;a&lt;/b&gt;\n" in final and "<b>a</b>" not in final  # output is text
    assert in_order(final, "1/0", "ZeroDivisionError: division by zero at line 2")
    assert "generation stopped early" in final
    assert "never\n" not in final


def test_a_named_session_persists_exports_values_and_closes(ipy: Shell) -> None:
    ipy.cell("--tps 500 --session s --export pid,n", "import os\npid = os.getpid()\nn = 41\n")
    pid, n = ipy.ns["pid"], ipy.ns["n"]
    assert n == 41 and not process_gone(pid)
    shown = ipy.cell(
        "--tps 500 --session s --export m,os,nothing --result r",
        "m = {'n': n + 1, 'l': [1.5, None, 'x']}\nprint(m['n'])\n",
    )
    assert ipy.ns["m"] == {"n": 42, "l": [1.5, None, "x"]}
    assert "os" not in ipy.ns and "nothing" not in ipy.ns
    final = html_of(shown[-1])
    assert "42\n" in final
    assert "--export os: is not JSON-able (TypeError" in final
    assert "--export nothing: is not defined in the session" in final
    result = ipy.ns["r"]
    assert isinstance(result, RunResult) and result.ok and result.stdout == "42\n"
    assert ipy.shell.run_line_magic("eager_sessions", "") == ["s"]
    # the export left no name behind in the session
    ipy.cell("--tps 500 --session s", "print(sorted(k for k in globals() if 'eager' in k))\n")
    assert "[]\n" in html_of(ipy.published[-1])
    ipy.shell.run_line_magic("eager_close", "s")
    assert ipy.shell.run_line_magic("eager_sessions", "") == []
    assert gone(pid)


def test_unloading_the_extension_closes_its_sessions(ipy: Shell) -> None:
    ipy.cell("--tps 500 --session a --export pid", "import os\npid = os.getpid()\n")
    pid = ipy.ns["pid"]
    ipy.shell.run_line_magic("unload_ext", "eager_rt")
    assert gone(pid)
    assert not [t for t in threading.enumerate() if t.name == "eager_rt-ipython"]
    with pytest.raises(UsageError):  # the magic is gone with it
        ipy.shell.run_cell_magic("eager", "", "x = 1\n")  # type: ignore[no-untyped-call]
    ipy.shell.run_line_magic("load_ext", "eager_rt")


def test_a_session_is_not_reused_with_other_backend_options(ipy: Shell) -> None:
    ipy.cell("--tps 500 --session s", "x = 1\n")
    with pytest.raises(UsageError, match="session 's' runs on local with other options"):
        ipy.cell("--tps 500 --session s -O cpu_seconds=5", "x = 2\n")


def test_mode_both_shows_each_run_and_the_savings(ipy: Shell) -> None:
    code = "import time\ntime.sleep(0.3)\nprint('first')\ntime.sleep(0.3)\nprint('second')\n"
    shown = ipy.cell("--tps 40 --mode both --result runs", code)
    final = html_of(shown[-1])
    assert in_order(final, "serial run", "first\n", "second\n", "eager run", "first\n", "second\n")
    assert in_order(final, ">serial</td>", ">eager</td>", "eager vs serial: end to end")
    runs = ipy.ns["runs"]
    assert [r.mode for r in runs] == ["serial", "eager"] and all(r.ok for r in runs)


def test_a_figure_is_shown_inline(ipy: Shell) -> None:
    pytest.importorskip("matplotlib")
    code = (
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(2, 2), dpi=50)\n"
        "ax.plot([1, 3, 2])\n"
        "plt.show()\n"
    )
    final = html_of(ipy.cell("--tps 500", code)[-1])
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", final)
    assert len(images) == 1
    assert base64.b64decode(images[0]).startswith(b"\x89PNG\r\n\x1a\n")
    assert in_order(final, "plt.show()", "<img")


def test_what_the_code_shows_is_text_and_bounded(ipy: Shell) -> None:
    code = (
        "class Page:\n"
        "    def _repr_html_(self):\n"
        "        return '<script>alert(1)</script>'\n"
        "    def __repr__(self):\n"
        "        return 'a page'\n"
        "display(Page())\n"
        "print('x' * 100_000)\n"
        "print('end')\n"
    )
    final = html_of(ipy.cell("--tps 1000", code)[-1])
    assert "a page" in final and "<script>" not in final
    assert "characters of output dropped]" in final
    assert len(final) < 2 * MAX_TEXT + 20_000
    assert "end\n" in final


def test_host_tools_are_called_and_shown(
    ipy: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "notebook_tools_w5.py").write_text(
        "def double(x: int) -> int:\n    return 2 * x\n\nTOOLS = [double]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    shown = ipy.cell("--tps 500 --tools notebook_tools_w5:TOOLS --result r", "print(double(21))\n")
    final = html_of(shown[-1])
    # the call's line and the output both come under the statement (in either order: the
    # event of the call's end and the output it allowed travel separately)
    assert in_order(final, "print(double(21))", "tool double() #1 returned")
    assert in_order(final, "print(double(21))", "42\n")
    assert [c.tool for c in ipy.ns["r"].tool_calls] == ["double"]


def test_the_cell_is_bounded_by_timeout_and_a_named_session_survives_it(ipy: Shell) -> None:
    code = "x = 5\nprint('started')\nimport time\ntime.sleep(120)\nprint('never')\n"
    shown = ipy.cell("--tps 500 --timeout 2 --session s", code)
    final = html_of(shown[-1])
    assert "started\n" in final
    assert states(final)[3] == (3, "failed")
    assert in_order(final, "time.sleep(120)", "stopped: the cell exceeded --timeout 2s")
    # the execution was interrupted: the session answers the next cell, its state intact
    shown = ipy.cell("--tps 500 --timeout 60 --session s", "print('x is', x)\n")
    assert "x is 5\n" in html_of(shown[-1])


def test_a_cell_that_times_out_leaves_no_worker_behind(ipy: Shell) -> None:
    code = "import os, time\nprint('worker', os.getpid())\ntime.sleep(120)\n"
    final = html_of(ipy.cell("--tps 500 --timeout 2", code)[-1])
    found = re.search(r"worker (\d+)", final)
    assert found is not None, final
    assert gone(int(found.group(1)))


def test_importing_eager_rt_does_not_import_ipython() -> None:
    probe = (
        "import sys, eager_rt\n"
        "print(sorted(m for m in ('IPython', 'eager_rt.ipython') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out


@pytest.mark.parametrize(
    ("line", "cell", "message"),
    [
        ("", "  \n", "the cell is empty"),
        ("--mode both --session s", "x = 1\n", "--mode both compares two fresh sessions"),
        ("--model m", "x = 1\n", "--provider and --model go together"),
        ("--provider openai --model m --mode serial", "hi", "--mode eager only"),
        ("--export a-b", "x = 1\n", "'a-b' is not a Python name"),
        ("--tps 0", "x = 1\n", "--tps"),
        ("--backend nosuch", "x = 1\n", "no backend named 'nosuch'"),
        ("--speculate", "x = 1\n", "--speculate needs --tools"),
    ],
)
def test_usage_errors_are_one_clean_message(ipy: Shell, line: str, cell: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        ipy.cell(line, cell)


def test_help_lists_the_options(ipy: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    assert ipy.cell("--help", "x = 1\n") == []
    out = capsys.readouterr().out
    for option in ("--tps", "--provider", "--mode", "--backend", "--session", "--export",
                   "--timeout", "--result"):  # fmt: skip
        assert option in out


def test_a_model_writes_the_code_for_the_prompt_in_the_cell(
    ipy: Shell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = "values = [2, 4, 6]\nprint('mean', sum(values) / len(values))\n"
    body = [code[i : i + 4] for i in range(0, len(code), 4)]
    reply = Reply(text=["Computing the mean.\n```python\n", *body, "```\nDone.\n"])
    with FakeLLM(reply) as llm:
        shown = ipy.cell(
            f"--provider openai --base-url {llm.openai_url} --model fake-model --result r",
            "compute the mean of 2, 4 and 6",
        )
        request = llm.wait_done(0).body
    assert request["messages"][1] == {"role": "user", "content": "compute the mean of 2, 4 and 6"}
    final = html_of(shown[-1])
    assert states(final) == [(0, "done"), (1, "done")]
    assert in_order(final, "Computing the mean.", "values = [2, 4, 6]", "mean 4.0\n")
    assert ipy.ns["r"].ok


# ------------------------------------------------------------------ a real kernel


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Any]:
    jupyter_client = pytest.importorskip("jupyter_client")
    manager = jupyter_client.KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        yield manager, client
    finally:
        client.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=True)


def execute(client: Any, code: str, timeout: float = 120.0) -> tuple[list[dict[str, Any]], Any]:
    """Run ``code``; its IOPub messages up to idle, and its execute_reply."""
    msg_id = client.execute(code)
    messages = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = client.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    return messages, shell_reply(client, msg_id, timeout)


def shell_reply(client: Any, msg_id: str, timeout: float) -> Any:
    """The reply to ``msg_id`` (a kernel_info reply from start-up may come first)."""
    while True:
        reply = client.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply


def test_in_a_kernel_the_view_updates_while_the_cell_runs(kernel: Any) -> None:
    manager, client = kernel
    messages, reply = execute(client, "%load_ext eager_rt")
    assert reply["content"]["status"] == "ok"
    cell = (
        "%%eager --tps 20 --session k --export pid\n"
        "import os, time\n"
        "pid = os.getpid()\n"
        "print('working in', pid)\n"
        "time.sleep(0.5)\n"
        "print('slept')\n"
    )
    messages, reply = execute(client, cell)
    assert reply["content"]["status"] == "ok", reply["content"]
    shown = [m for m in messages if m["msg_type"] in ("display_data", "update_display_data")]
    assert shown[0]["msg_type"] == "display_data"
    display_id = shown[0]["content"]["transient"]["display_id"]
    updates = shown[1:]
    assert len(updates) >= 2
    assert all(m["msg_type"] == "update_display_data" for m in updates)
    assert all(m["content"]["transient"]["display_id"] == display_id for m in updates)
    pages = [m["content"]["data"]["text/html"] for m in updates]
    final = pages[-1]
    assert states(final) == [(i, "done") for i in range(5)]
    assert in_order(final, "pid = os.getpid()", "working in", "time.sleep(0.5)", "slept\n")
    # the view was updated while the model was still writing, before the cell finished
    live = [m for m, page in zip(updates, pages, strict=True) if "model writing" in page]
    assert live
    assert live[0]["header"]["date"] < reply["header"]["date"]
    # the exported pid is the session's worker: the kernel's exit closes it
    messages, _ = execute(client, "print(pid)")
    out = "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")
    pid = int(out)
    assert not process_gone(pid)
    manager.shutdown_kernel(now=False)
    assert gone(pid)


def test_interrupting_the_kernel_cancels_the_run(kernel: Any) -> None:
    manager, client = kernel
    execute(client, "%load_ext eager_rt")
    msg_id = client.execute("%%eager --tps 200\nprint('started')\nimport time\ntime.sleep(120)\n")
    deadline = time.monotonic() + 120
    interrupted = False
    messages = []
    while time.monotonic() < deadline:
        msg = client.get_iopub_msg(timeout=120)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        page = msg["content"].get("data", {}).get("text/html", "")
        if not interrupted and re.search(r"running'.*time\.sleep\(120\)", page):
            manager.interrupt_kernel()
            interrupted = True
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    assert interrupted
    reply = shell_reply(client, msg_id, 60.0)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    pages = [m["content"]["data"]["text/html"] for m in messages if "data" in m["content"]]
    assert in_order(pages[-1], "time.sleep(120)", "stopped: interrupted")
