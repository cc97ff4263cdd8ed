"""The live view, seen the way a person sees it: the CLI in a pseudo-terminal, read off a screen.

``eager run`` is started under a pty (pexpect) and its bytes are fed to a
terminal emulator (pyte); the tests wait until the screen shows a state and
assert on what is on it then. The emulator keeps characters, not colours, so
every assertion also proves the view reads without colour. Nothing is timed:
each wait is for a picture, bounded only so a broken view fails instead of
hanging.
"""

from __future__ import annotations

import io
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pexpect  # dev dependencies: the screen tests must run, not skip
import pyte

COLUMNS, ROWS = 110, 40
#: how long a picture may take to appear on a loaded machine before the test fails
PATIENCE = 120.0


class Terminal:
    """A pty running the CLI, and the screen a terminal would show."""

    def __init__(self, child: object, rows: int) -> None:
        self.child = child
        self.screen = pyte.Screen(COLUMNS, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.screen.set_mode(pyte.modes.LNM)
        self.ended = False

    @property
    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def _pump(self) -> None:
        try:
            data = self.child.read_nonblocking(65536, timeout=0.2)  # type: ignore[attr-defined]
        except pexpect.TIMEOUT:
            return
        except pexpect.EOF:
            self.ended = True
            return
        self.stream.feed(data)

    def wait_for(self, what: str, predicate: Callable[[str], bool]) -> str:
        """Read until the screen satisfies ``predicate``; the screen's text then."""
        start = time.monotonic()
        while True:
            if predicate(self.text):
                return self.text
            if self.ended or time.monotonic() - start > PATIENCE:
                raise AssertionError(f"the screen never showed {what}:\n{self.text}")
            self._pump()

    def finish(self) -> int:
        while not self.ended:
            self._pump()
        self.child.close()  # type: ignore[attr-defined]
        return int(self.child.exitstatus)  # type: ignore[attr-defined]


@contextmanager
def terminal(*args: str, cwd: Path, rows: int = ROWS) -> Iterator[Terminal]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLUMNS", "LINES"))}
    env.update(TERM="xterm-256color", PYTHONIOENCODING="utf-8")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "eager_rt", *args],
        dimensions=(rows, COLUMNS),
        env=env,
        cwd=str(cwd),
    )
    try:
        yield Terminal(child, rows)
    finally:
        if child.isalive():
            child.terminate(force=True)


def line_of(screen: str, code: str) -> str:
    """The screen line that shows ``code`` as a statement: gutter mark, line number, code."""
    pattern = re.compile(r"^.\s+\d+ " + re.escape(code) + "$")
    found = [line for line in screen.splitlines() if pattern.match(line)]
    assert found, f"{code!r} is not on the screen:\n{screen}"
    return found[-1]


# 40 filler statements after the slow one: the model is still writing long after it runs
SCRIPT = (
    'print("first output")\n'
    "import time\n"
    "time.sleep(2)\n"
    'print("after the sleep")\n'
    + "".join(f"v{i} = {i} * 2\n" for i in range(40))
    + 'print("last statement")\n'
)


def test_code_appears_as_it_streams_and_runs_statement_by_statement(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(SCRIPT)
    with terminal("run", "job.py", "--tps", "25", cwd=tmp_path) as term:
        legend = term.wait_for("the legend", lambda s: "marks:" in s)
        for word in ("detected", "queued", "running", "done", "failed", "not run"):
            assert word in legend
        # the sleep runs while the model is still writing: its mark says so, the status line too
        screen = term.wait_for("the sleep running", lambda s: "running line 3" in s)
        assert line_of(screen, "time.sleep(2)").startswith("▶")
        assert "model writing" in screen.splitlines()[-1] or "model writing" in screen
        assert line_of(screen, 'print("first output")').startswith("✓")
        assert "        first output" in screen.splitlines()
        assert 'print("last statement")' not in screen  # not written yet
        assert "tok/s" in screen
        # the statement after it ran once the sleep ended, with its output under it, and
        # still before the model finished writing
        screen = term.wait_for(
            "the output after the sleep", lambda s: "        after the sleep" in s.splitlines()
        )
        assert 'print("last statement")' not in screen
        assert line_of(screen, "time.sleep(2)").startswith("✓")
        code = term.finish()
        screen = term.text
    assert code == 0
    assert line_of(screen, 'print("last statement")').startswith("✓")
    assert "        last statement" in screen.splitlines()
    assert "(E2EL)" in screen


def test_a_failure_is_marked_with_its_message_and_the_rest_not_run(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "total = 0\nprint('total', total)\nratio = total / 0\nprint('never')\n"
    )
    with terminal("run", "bad.py", "--tps", "50", cwd=tmp_path) as term:
        code = term.finish()
        screen = term.text
    assert code == 1
    assert line_of(screen, "ratio = total / 0").startswith("✗")
    lines = screen.splitlines()
    failed_at = lines.index(line_of(screen, "ratio = total / 0"))
    assert "ZeroDivisionError: division by zero at line 3" in lines[failed_at + 1]
    if "print('never')" in screen:  # written before generation was stopped: never run
        assert line_of(screen, "print('never')").startswith("-")
    assert "eager error: ZeroDivisionError: division by zero at line 3" in screen


def test_serial_mode_shows_the_code_first_then_runs_it(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(SCRIPT)
    with terminal("run", "job.py", "--tps", "40", "--mode", "serial", cwd=tmp_path) as term:
        # while the model writes, statements are detected but nothing runs
        screen = term.wait_for("detected statements", lambda s: "○   5 v0 = 0 * 2" in s)
        assert line_of(screen, 'print("first output")').startswith("○")
        assert "first output\n" not in screen and "        first output" not in screen
        assert "model writing" in screen
        screen = term.wait_for("the whole program running", lambda s: "running lines 1-" in s)
        assert line_of(screen, 'print("last statement")').startswith("▶")
        code = term.finish()
        screen = term.text
    assert code == 0
    assert "        last statement" in screen.splitlines()


def test_each_statement_of_one_execution_shows_its_own_output(tmp_path: Path) -> None:
    """Serial mode runs the program as one execution: still, output goes under its writer."""
    (tmp_path / "job.py").write_text('print("one")\nx = 2\nprint("two", x)\n')
    with terminal("run", "job.py", "--tps", "200", "--mode", "serial", cwd=tmp_path) as term:
        code = term.finish()
        lines = term.lines()
    assert code == 0
    first = lines.index(line_of("\n".join(lines), 'print("one")'))
    assert lines[first + 1] == "        one"
    assert lines[first + 2] == line_of("\n".join(lines), "x = 2")
    third = lines.index(line_of("\n".join(lines), 'print("two", x)'))
    assert lines[third + 1] == "        two 2"


def test_plain_output_under_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("x = 6 * 7\nprint('answer', x)\n")
    with terminal("run", "ok.py", "--tps", "500", "--plain", cwd=tmp_path) as term:
        code = term.finish()
        screen = term.text
    assert code == 0
    assert "answer 42" in screen
    assert "marks:" not in screen and "x = 6 * 7" not in screen


def test_chat_shows_prose_code_marks_and_output(tmp_path: Path) -> None:
    from tests.fake_llm import FakeLLM, Reply

    code = "values = [2, 4, 6]\nprint('mean', sum(values) / len(values))\nprint(values[5])\n"
    pieces = [code[i : i + 5] for i in range(0, len(code), 5)]
    reply = Reply(text=["Computing the mean.\n```python\n", *pieces, "```\nDone.\n"])
    with FakeLLM(reply) as llm:
        argv = ["chat", "--provider", "openai", "--base-url", llm.openai_url, "--api-key",
                "test", "--model", "fake-model", "--request-timeout", "30", "the mean"]  # fmt: skip
        # tall: the failure report for the model follows the view
        with terminal(*argv, cwd=tmp_path, rows=100) as term:
            status = term.finish()
            screen = term.text
    assert status == 1
    assert "Computing the mean." in screen
    assert line_of(screen, "values = [2, 4, 6]").startswith("✓")
    assert line_of(screen, "print('mean', sum(values) / len(values))").startswith("✓")
    assert "        mean 4.0" in screen.splitlines()
    failed = line_of(screen, "print(values[5])")
    assert failed.startswith("✗")
    lines = screen.splitlines()
    assert "IndexError: list index out of range at line 3" in lines[lines.index(failed) + 1]


class _AsciiFile(io.StringIO):
    """A terminal whose encoding is ASCII: the marks fall back to ASCII letters."""

    encoding = "ascii"

    def isatty(self) -> bool:
        return True


def test_marks_fall_back_to_ascii_on_a_terminal_that_cannot_show_them() -> None:
    from rich.console import Console

    from eager_rt.cli.view import LiveView
    from eager_rt.live_model import Watched
    from eager_rt.runtime import arun_stream
    from eager_rt.testing import FakeSession, Rule, paced, run_virtual

    file = _AsciiFile()
    console = Console(file=file, width=80, height=24, force_terminal=True, color_system=None)
    code = ["x = load()\n", "print(x)\n", "y = x / 0\n"]
    view = LiveView(console, label="eager on fake")

    async def main() -> None:
        session = FakeSession(
            [Rule("load(", cost=1.0, stdout=""), Rule("print(x)", stdout="3\n"),
             Rule("y = ", raises="ZeroDivisionError", evalue="division by zero")]
        )  # fmt: skip
        with view:
            source = Watched(paced(code, tps=2), view.code, view.generation_ended)
            await arun_stream(source, session, on_event=view)

    run_virtual(main())
    screen = pyte.Screen(80, 24)
    screen.set_mode(pyte.modes.LNM)
    pyte.Stream(screen).feed(file.getvalue())
    lines = [line.rstrip() for line in screen.display]
    assert "marks: o detected   ~ queued   > running   + done   x failed   - not run" in lines
    assert "+   1 x = load()" in lines
    assert "+   2 print(x)" in lines
    assert "x   3 y = x / 0" in lines
    assert "      | ZeroDivisionError: division by zero at line 3" in lines
    assert all(ord(ch) < 128 for ch in file.getvalue())


def test_chat_answer_without_code_shows_its_prose(tmp_path: Path) -> None:
    from tests.fake_llm import FakeLLM, Reply

    reply = Reply(text=["Use the built-in sum() and len(): ", "mean = sum(v) / len(v).\n"])
    with FakeLLM(reply) as llm:
        argv = ["chat", "--provider", "openai", "--base-url", llm.openai_url, "--api-key",
                "test", "--model", "fake-model", "--request-timeout", "30", "the mean"]  # fmt: skip
        with terminal(*argv, cwd=tmp_path) as term:
            status = term.finish()
            screen = term.text
    assert status == 1
    assert "Use the built-in sum() and len(): mean = sum(v) / len(v)." in screen
