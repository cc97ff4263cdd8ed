"""What is specific to the local subprocess backend.

The conformance suite checks the Session contract on every backend; these
tests check what only a worker process on this machine can show: fd-level
capture, the private channel, signals, crashes, resource limits, process
clean-up, and the choice of interpreter.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from eager_rt.backends._protocol import encode as pack_frame
from eager_rt.backends.local import LocalBackend, LocalSession, describe_exit

from eager_rt.executor import BackendError, ExecResult, Output, SessionDead, Status
from eager_rt.registry import get_backend
from eager_rt.sync import SyncSession
from tests.local_sessions import MakeSession, local_sessions
from tests.processes import process_gone, wait_until_gone

pytestmark = pytest.mark.anyio

T = 60.0  # per-execution timeout: generous, only a backstop against a hang
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def make_session() -> AsyncIterator[MakeSession]:
    async with local_sessions() as make:
        yield make


@pytest.fixture
async def s(make_session: Any) -> LocalSession:
    session: LocalSession = await make_session()
    return session


async def run_until_output(
    session: LocalSession, code: str, marker: str, timeout: float = T
) -> tuple[asyncio.Task[ExecResult], list[Output]]:
    """Start ``code`` and return once its stdout shows ``marker`` (it is running then)."""
    seen = asyncio.Event()
    outputs: list[Output] = []

    def on_output(output: Output) -> None:
        outputs.append(output)
        if marker in output.text:
            seen.set()

    task = asyncio.ensure_future(session.execute(code, timeout=timeout, on_output=on_output))
    waiter = asyncio.ensure_future(seen.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=T, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    assert waiter in done, (
        f"the code never printed {marker!r}: {task.result() if task.done() else ''}"
    )
    return task, outputs


# --------------------------------------------------------------------------- registration


async def test_registered_as_default_local_backend() -> None:
    assert get_backend("local") is LocalBackend
    session = LocalBackend().session()
    assert isinstance(session, LocalSession)
    assert session.backend_name == "local"
    assert not session.alive


async def test_bad_options_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="memory_limit"):
        LocalBackend(memory_limit=0)
    with pytest.raises(ValueError, match="interrupt_grace"):
        LocalBackend().session(interrupt_grace=-1)


async def test_missing_interpreter_is_a_backend_error(tmp_path: Path) -> None:
    session = LocalSession(python=str(tmp_path / "no-such-python"))
    with pytest.raises(BackendError, match="failed to start"):
        await session.start(timeout=30)
    assert not session.alive
    await session.close()


async def test_interpreter_that_fails_at_once_is_reported_with_its_stderr(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho 'no such option' >&2\nexit 2\n")
    fake.chmod(0o755)
    session = LocalSession(python=str(fake))
    with pytest.raises(BackendError, match=r"exited with code 2.*no such option"):
        await session.start(timeout=30)
    assert not session.alive and session.pid is None
    await session.close()


async def test_interpreter_that_never_answers_times_out_and_is_killed(tmp_path: Path) -> None:
    fake = tmp_path / "silent-python"
    pidfile = tmp_path / "pid"
    fake.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 60\n")
    fake.chmod(0o755)
    session = LocalSession(python=str(fake))
    with pytest.raises(BackendError, match=r"did not start within 2\.0 s"):
        await session.start(timeout=2.0)
    assert not session.alive
    assert await wait_until_gone(int(pidfile.read_text()))
    await session.close()


# --------------------------------------------------------------------------- I/O


async def test_input_raises_eof_at_once(s: LocalSession) -> None:
    r = await s.execute(
        "try:\n    input('name? ')\nexcept EOFError as e:\n    print('EOF:', e)\n"
        "import sys\nprint(repr(sys.stdin.read()))",
        timeout=T,
    )
    assert r.status is Status.OK, r
    lines = r.stdout.splitlines()
    assert lines[0].startswith("EOF: input() is not available")
    assert lines[1] == "''"


async def test_fd_level_and_subprocess_output_is_captured(s: LocalSession) -> None:
    r = await s.execute(
        "import os, subprocess\n"
        "os.write(1, b'fd one\\n')\n"
        "os.write(2, b'fd two\\n')\n"
        "subprocess.run(['echo', 'from echo'], check=True)\n"
        "subprocess.run(['sh', '-c', 'echo to-stderr >&2'], check=True)\n",
        timeout=T,
    )
    assert r.status is Status.OK, r
    assert r.stdout == "fd one\nfrom echo\n"
    assert r.stderr == "fd two\nto-stderr\n"


async def test_stdout_stderr_order(s: LocalSession) -> None:
    r = await s.execute(
        "import sys\n"
        "print('a')\n"
        "print('b', file=sys.stderr)\n"
        "print('c', end='')\n"
        "print('d', file=sys.stderr)\n"
        "print('e')\n"
        "sys.stderr.write('f')\n",
        timeout=T,
    )
    assert _merged([(o.kind, o.text) for o in r.outputs]) == [
        ("stdout", "a\n"),
        ("stderr", "b\n"),
        ("stdout", "c"),
        ("stderr", "d\n"),
        ("stdout", "e\n"),
        ("stderr", "f"),
    ]


def _merged(pieces: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Consecutive text of one stream joined: how frames are cut is not part of the contract."""
    joined: list[tuple[str, str]] = []
    for kind, text in pieces:
        if joined and joined[-1][0] == kind:
            joined[-1] = (kind, joined[-1][1] + text)
        else:
            joined.append((kind, text))
    return joined


async def test_dense_mixed_python_and_fd_output_keeps_line_order(s: LocalSession) -> None:
    r = await s.execute(
        "import os, sys\n"
        "for i in range(3000):\n"
        "    print(i)\n"
        "    if i % 7 == 0:\n"
        "        print('e', i, file=sys.stderr)\n"
        "    if i % 11 == 0:\n"
        "        os.write(1, b'fd%d\\n' % i)\n"
        "    if i % 13 == 0:\n"
        "        os.write(2, b'fe%d\\n' % i)\n",
        timeout=T,
    )
    expected: list[tuple[str, str]] = []
    for i in range(3000):
        expected.append(("stdout", f"{i}\n"))
        if i % 7 == 0:
            expected.append(("stderr", f"e {i}\n"))
        if i % 11 == 0:
            expected.append(("stdout", f"fd{i}\n"))
        if i % 13 == 0:
            expected.append(("stderr", f"fe{i}\n"))
    got = [(o.kind, o.text) for o in r.outputs]

    def stream(items: list[tuple[str, str]], kind: str) -> str:
        return "".join(text for k, text in items if k == kind)

    # each stream in its exact order: Python text and fd writes interleaved line by line
    assert stream(got, "stdout") == stream(expected, "stdout")
    assert stream(got, "stderr") == stream(expected, "stderr")

    # across streams too, except between two raw fd writes to different pipes: two
    # pipes share no order (an fd 1 write and the fd 2 write right after it may be
    # read either way round by a loaded machine)
    def without_raw_stderr(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
        lines = [(k, line) for k, text in items for line in text.splitlines(keepends=True)]
        return _merged([(k, line) for k, line in lines if not line.startswith("fe")])

    assert without_raw_stderr(got) == without_raw_stderr(expected)


async def test_dense_output_is_complete_and_coalesced(s: LocalSession) -> None:
    r = await s.execute("for i in range(20000):\n    print(i)", timeout=T)
    assert r.stdout == "".join(f"{i}\n" for i in range(20000))
    assert len(r.outputs) < 20000  # lines are batched, not one frame each


async def test_output_is_streamed_while_the_code_runs(s: LocalSession) -> None:
    task, outputs = await run_until_output(
        s, "import time\nprint('first', flush=True)\ntime.sleep(30)", "first"
    )
    assert not task.done()  # 'first' arrived while the code still runs
    await s.interrupt()
    r = await asyncio.wait_for(task, T)
    assert r.status is Status.INTERRUPTED
    assert r.outputs[0] == outputs[0]


async def test_fake_frames_printed_by_user_code_cannot_break_the_channel(s: LocalSession) -> None:
    fake = pack_frame({"type": "done", "id": 1, "status": "ok", "error": None})
    r = await s.execute(
        "import os, sys\n"
        f"fake = {fake!r}\n"
        "os.write(1, fake)\n"
        "sys.stdout.write(fake.decode('latin-1'))\n"
        "sys.__stdout__.write(fake.decode('latin-1'))\n"
        "sys.stdout.buffer.write(fake)\n"
        "x = 42\n",
        timeout=T,
    )
    assert r.status is Status.OK, r
    assert r.stdout.count('"type":"done"') == 4
    r = await s.execute("print(x)", timeout=T)
    assert r.stdout == "42\n"


async def test_closing_fd1_and_sys_stdout_cannot_break_the_channel(s: LocalSession) -> None:
    r = await s.execute("import os, sys\nsys.stdout.close()\nos.close(1)\nos.close(2)", timeout=T)
    assert r.status is Status.OK, r
    r = await s.execute(
        "print('still here')\nos.write(1, b'fd works\\n')\nos.write(2, b'err works\\n')", timeout=T
    )
    assert r.status is Status.OK, r
    assert r.stdout == "still here\nfd works\n"
    assert r.stderr == "err works\n"


async def test_forked_child_output_is_captured_and_channel_intact(s: LocalSession) -> None:
    r = await s.execute(
        "import os\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    print('from the child', flush=True)\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print('from the parent')\n",
        timeout=T,
    )
    assert r.status is Status.OK, r
    assert r.stdout == "from the child\nfrom the parent\n"
    assert (await s.execute("print(1 + 1)", timeout=T)).stdout == "2\n"


async def test_stdout_looks_like_a_text_stream(s: LocalSession) -> None:
    r = await s.execute(
        "import sys\n"
        "sys.stdout.reconfigure(encoding='utf-8')\n"
        "print(sys.stdout.encoding, sys.stdout.isatty(), sys.stdout.writable(),"
        " sys.stdout.fileno(), sys.stderr.fileno())\n"
        "sys.stdout.writelines(['a', 'b\\n'])\n",
        timeout=T,
    )
    assert r.status is Status.OK, r
    assert r.stdout == "utf-8 False True 1 2\nab\n"


async def test_large_output_arrives_whole(s: LocalSession) -> None:
    r = await s.execute(
        "import os\nprint('a' * 3_000_000)\nos.write(1, b'b' * 1_000_000 + b'\\n')", timeout=T
    )
    assert r.stdout == "a" * 3_000_000 + "\n" + "b" * 1_000_000 + "\n"


async def test_lone_surrogates_and_non_ascii_text_survive(s: LocalSession) -> None:
    r = await s.execute("print('héllo ✓ \\udcff')", timeout=T)
    assert r.stdout == "héllo ✓ \udcff\n"


# --------------------------------------------------------------------------- script semantics


async def test_namespace_is_main_and_classes_pickle(s: LocalSession) -> None:
    await s.execute("class Point:\n    def __init__(self, x):\n        self.x = x", timeout=T)
    r = await s.execute(
        "import pickle\nprint(__name__, pickle.loads(pickle.dumps(Point(3))).x)\n1 + 1", timeout=T
    )
    assert r.stdout == "__main__ 3\n"  # the bare expression displays nothing: script semantics
    assert r.displays == []


async def test_future_imports_carry_over_like_in_one_script(s: LocalSession) -> None:
    await s.execute("from __future__ import annotations", timeout=T)
    r = await s.execute("def f(x: Undefined) -> None: pass\nprint(f.__annotations__)", timeout=T)
    assert r.status is Status.OK, r
    assert r.stdout == "{'x': 'Undefined', 'return': 'None'}\n"


async def test_traceback_shows_user_source_and_no_worker_frames(s: LocalSession) -> None:
    await s.execute("def inner():\n    return 1 / 0", timeout=T)
    r = await s.execute("x = 1\ny = inner()\n", timeout=T)
    assert r.status is Status.ERROR
    assert r.error is not None
    assert r.error.ename == "ZeroDivisionError"
    assert r.error.lineno == 2  # the top-level statement of this code that was running
    text = "\n".join(r.error.traceback)
    assert "return 1 / 0" in text and "y = inner()" in text
    assert "eager_rt worker" not in text and "_worker" not in text
    assert r.error.traceback[-1] == "ZeroDivisionError: division by zero"


async def test_syntax_error_line(s: LocalSession) -> None:
    r = await s.execute("x = 1\ny = (\n", timeout=T)
    assert r.status is Status.ERROR
    assert r.error is not None and r.error.ename == "SyntaxError"
    assert r.error.lineno == 2
    assert r.error.evalue == "'(' was never closed"  # no "(<cell-N>, line 2)" of ours


async def test_cwd_and_env_options(make_session: Any, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("payload")
    s = await make_session(cwd=tmp_path, env={"EAGER_RT_TEST_VAR": "set"})
    r = await s.execute(
        "import os\nprint(open('data.txt').read(), os.environ['EAGER_RT_TEST_VAR'])", timeout=T
    )
    assert r.stdout == "payload set\n", r


async def test_matplotlib_backend_of_the_host_is_not_inherited(
    make_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    s = await make_session()
    r = await s.execute("import os\nprint(os.environ['MPLBACKEND'])", timeout=T)
    assert r.stdout == "Agg\n"
    s = await make_session(env={"MPLBACKEND": "svg"})
    r = await s.execute("import os\nprint(os.environ['MPLBACKEND'])", timeout=T)
    assert r.stdout == "svg\n"


async def test_files_in_cwd_cannot_shadow_the_worker_but_user_code_imports_them(
    make_session: Any, tmp_path: Path
) -> None:
    for name in ("json", "signal", "select", "threading", "types", "traceback"):
        (tmp_path / f"{name}.py").write_text("raise RuntimeError('shadowed the stdlib')\n")
    (tmp_path / "helpers.py").write_text("ANSWER = 42\n")
    s = await make_session(cwd=tmp_path)
    r = await s.execute("from helpers import ANSWER\nprint(ANSWER)", timeout=T)
    assert r.status is Status.OK, r
    assert r.stdout == "42\n"


# --------------------------------------------------------------------------- interrupts, timeouts


async def test_interrupt_raises_keyboardinterrupt_and_keeps_state(s: LocalSession) -> None:
    await s.execute("kept = 41", timeout=T)
    task, _ = await run_until_output(
        s, "import time\nprint('running', flush=True)\nwhile True:\n    time.sleep(0.01)", "running"
    )
    pid = s.pid
    await s.interrupt()
    r = await asyncio.wait_for(task, T)
    assert r.status is Status.INTERRUPTED
    assert r.error is not None and r.error.ename == "KeyboardInterrupt"
    assert not r.state_lost
    r = await s.execute("print(kept + 1)", timeout=T)
    assert r.stdout == "42\n"
    assert s.pid == pid


async def test_interrupts_during_dense_output_never_corrupt_the_channel(s: LocalSession) -> None:
    """SIGINTs landing while a frame is being written are held until it is whole."""
    await s.execute("kept = 'state'", timeout=T)
    for size in (300, 300, 300, 200_000, 200_000):  # small frames, and frames of many writes
        task, _ = await run_until_output(
            s,
            "import sys\nn = 0\nwhile True:\n"
            f"    n += 1\n    print('x' * {size}, n)\n    sys.stderr.write('e\\n')",
            "x",
        )
        await s.interrupt()
        r = await asyncio.wait_for(task, T)
        assert r.status is Status.INTERRUPTED, r.detail
        r = await s.execute("print(kept, n > 0)", timeout=T)
        assert r.status is Status.OK and r.stdout == "state True\n"


async def test_interrupt_right_after_execute_starts_always_stops_it(s: LocalSession) -> None:
    """The SIGINT may beat the code to the worker; the interrupt frame makes it stick."""
    await s.execute("kept = 0", timeout=T)
    for _ in range(20):
        task = asyncio.ensure_future(s.execute("import time\ntime.sleep(20)\nkept += 1", timeout=T))
        await asyncio.sleep(0)  # the execute frame is written; the code may not run yet
        await s.interrupt()
        r = await asyncio.wait_for(task, T)
        assert r.status is Status.INTERRUPTED, r
    r = await s.execute("print(kept)", timeout=T)
    assert r.status is Status.OK and r.stdout == "0\n"


async def test_sigint_while_idle_is_ignored(s: LocalSession) -> None:
    await s.execute("kept = 'yes'", timeout=T)
    pid = s.pid
    assert pid is not None
    os.kill(pid, signal.SIGINT)
    await s.interrupt()  # idle: a no-op
    r = await s.execute("print(kept)", timeout=T)
    assert r.status is Status.OK, r
    assert r.stdout == "yes\n"
    assert s.pid == pid and s.alive


async def test_user_installed_sigint_handler_cannot_kill_an_idle_worker(s: LocalSession) -> None:
    r = await s.execute(
        "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\nkept = 3",
        timeout=T,
    )
    assert r.status is Status.OK, r
    pid = s.pid
    assert pid is not None
    os.kill(pid, signal.SIGINT)  # idle: the handler raises in the worker's own loop
    r = await s.execute("print(kept)", timeout=T)
    assert r.status is Status.OK and r.stdout == "3\n"
    assert s.pid == pid
    task, _ = await run_until_output(
        s, "import time\nprint('go', flush=True)\ntime.sleep(30)", "go"
    )
    await s.interrupt()  # still interrupts running code
    assert (await asyncio.wait_for(task, T)).status is Status.INTERRUPTED


async def test_timeout_that_the_code_obeys_keeps_state(s: LocalSession) -> None:
    await s.execute("kept = 1", timeout=T)
    r = await s.execute("import time\ntime.sleep(30)", timeout=0.3)
    assert r.status is Status.TIMEOUT
    assert not r.state_lost
    assert (await s.execute("print(kept)", timeout=T)).stdout == "1\n"


async def test_timeout_ignoring_interrupt_kills_restarts_and_loses_state(
    make_session: Any,
) -> None:
    s = await make_session(interrupt_grace=0.3)
    await s.execute("kept = 1", timeout=T)
    old = s.pid
    r = await s.execute(
        "import time\n"
        "while True:\n"
        "    try:\n"
        "        print('stubborn', flush=True)\n"
        "        time.sleep(30)\n"
        "    except KeyboardInterrupt:\n"
        "        pass\n",
        timeout=0.3,
    )
    assert r.status is Status.TIMEOUT
    assert r.state_lost
    assert "killed" in r.detail and "restarted" in r.detail
    assert r.stdout == "stubborn\nstubborn\n"  # once, and once more after the interrupt
    assert s.alive and s.pid != old
    assert await wait_until_gone(old)
    r = await s.execute("print('kept' in globals())", timeout=T)
    assert r.stdout == "False\n"


async def test_timeout_with_sigint_ignored_at_the_os_level(make_session: Any) -> None:
    s = await make_session(interrupt_grace=0.2)
    r = await s.execute(
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(30)",
        timeout=0.3,
    )
    assert r.status is Status.TIMEOUT and r.state_lost
    assert (await s.execute("print('fresh')", timeout=T)).stdout == "fresh\n"


async def test_cancelled_execute_stops_the_code_before_it_propagates(s: LocalSession) -> None:
    await s.execute("kept = 5\nstopped = []", timeout=T)
    task, _ = await run_until_output(
        s,
        "import time\n"
        "try:\n    print('go', flush=True)\n    time.sleep(30)\nfinally:\n"
        "    stopped.append(1)\nkept = 6",
        "go",
    )
    pid = s.pid
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert s.alive and s.pid == pid
    r = await s.execute("print(kept, stopped)", timeout=T)
    assert r.stdout == "5 [1]\n"  # stopped before its last line, the state kept


async def test_cancelled_execute_kills_code_that_will_not_stop(make_session: Any) -> None:
    s = await make_session(interrupt_grace=0.3)
    task, _ = await run_until_output(
        s,
        "import time\nwhile True:\n    try:\n        print('go', flush=True)\n"
        "        time.sleep(30)\n    except KeyboardInterrupt:\n        pass",
        "go",
    )
    old = s.pid
    assert old is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert process_gone(old) or await wait_until_gone(old)
    assert s.alive and s.pid != old  # restarted before the cancellation propagated
    assert (await s.execute("print('fresh')", timeout=T)).stdout == "fresh\n"


# --------------------------------------------------------------------------- death


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("import os\nos._exit(3)", "exited with code 3"),
        ("import ctypes\nctypes.string_at(0)", "SIGSEGV (segmentation fault)"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGABRT)", "aborted (SIGABRT)"),
    ],
    ids=["os._exit", "segfault", "abort"],
)
async def test_death_is_reported_and_the_worker_restarted(
    s: LocalSession, code: str, words: str
) -> None:
    await s.execute("kept = 1\nprint('before')", timeout=T)
    old = s.pid
    r = await s.execute(f"print('last words', flush=True)\n{code}", timeout=T)
    assert r.status is Status.DIED
    assert words in r.detail
    assert r.state_lost
    assert r.stdout == "last words\n"
    assert s.alive and s.pid != old
    r = await s.execute("print('kept' in globals())", timeout=T)
    assert r.stdout == "False\n"


async def test_death_is_seen_even_when_a_raw_forked_child_holds_the_channel(
    s: LocalSession,
) -> None:
    """A fork that bypasses Python's at-fork hooks keeps the channel open: exit is watched too."""
    r = await s.execute(
        "import ctypes, os, time\n"
        "pid = ctypes.CDLL(None).fork()\n"
        "if pid == 0:\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "print('child', pid, flush=True)\n"
        "os._exit(5)\n",
        timeout=T,
    )
    assert r.status is Status.DIED and "exited with code 5" in r.detail
    child = int(r.stdout.split()[1])
    assert await wait_until_gone(child)  # killed with the worker's process group
    assert (await s.execute("print('ok')", timeout=T)).stdout == "ok\n"


async def test_sigkill_from_outside_is_died_not_a_hang(s: LocalSession) -> None:
    task, _ = await run_until_output(
        s, "import time\nprint('busy', flush=True)\ntime.sleep(60)", "busy"
    )
    pid = s.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    r = await asyncio.wait_for(task, T)
    assert r.status is Status.DIED
    assert "killed by SIGKILL (out of memory?)" in r.detail
    assert r.duration < 30  # reported at once, not at the 60 s timeout
    assert s.alive


async def test_address_space_limit_kills_a_memory_hog_like_oom(make_session: Any) -> None:
    # without a cgroup, memory_limit is each process's RLIMIT_AS (tests/test_local_limits.py
    # has the whole-tree limit)
    s = await make_session(memory_limit=512 * 1024**2, cgroup=False)
    assert s.enforcement["memory"] == "RLIMIT_AS per process: 536870912 bytes"
    await s.execute("kept = 1", timeout=T)
    r = await s.execute(
        "hog = []\nwhile True:\n    hog.append(bytearray(16 * 1024 * 1024))", timeout=T
    )
    assert r.status is Status.DIED, r
    assert "out of memory" in r.detail and "memory_limit=536870912" in r.detail
    assert "SIGKILL" in r.detail
    assert r.state_lost and s.alive
    r = await s.execute("print('kept' in globals(), len(bytearray(1024)))", timeout=T)
    assert r.stdout == "False 1024\n"


async def test_memory_error_caught_by_the_code_is_not_death(make_session: Any) -> None:
    s = await make_session(memory_limit=512 * 1024**2, cgroup=False)
    r = await s.execute(
        "try:\n    b = bytearray(4 * 1024**3)\nexcept MemoryError:\n    print('caught')", timeout=T
    )
    assert r.status is Status.OK and r.stdout == "caught\n"


async def test_no_auto_restart_leaves_session_dead(make_session: Any) -> None:
    s = await make_session(auto_restart=False)
    pid = s.pid
    r = await s.execute("import os\nos._exit(7)", timeout=T)
    assert r.status is Status.DIED and "exited with code 7" in r.detail
    assert not s.alive
    with pytest.raises(SessionDead):
        await s.execute("pass", timeout=T)
    assert await wait_until_gone(pid)
    await s.restart(timeout=60)
    assert s.alive
    assert (await s.execute("print('back')", timeout=T)).stdout == "back\n"


async def test_death_while_idle_is_noticed(make_session: Any) -> None:
    for auto_restart in (True, False):
        s = await make_session(auto_restart=auto_restart)
        await s.execute("kept = 1", timeout=T)
        pid = s.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + T
        while s.alive and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not s.alive
        if auto_restart:
            r = await s.execute("print('kept' in globals())", timeout=T)
            assert r.status is Status.OK and r.state_lost
            assert "died while idle" in r.detail and "SIGKILL" in r.detail
            assert r.stdout == "False\n"
        else:
            with pytest.raises(SessionDead, match="SIGKILL"):
                await s.execute("pass", timeout=T)


# --------------------------------------------------------------------------- rich output


async def test_matplotlib_figure_comes_back_as_png(s: LocalSession) -> None:
    pytest.importorskip("matplotlib")
    r = await s.execute(
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [1, 4, 9])\n"
        "plt.show()\n"
        "print('after show')\n"
        "fig, ax = plt.subplots()\n"
        "ax.bar(['a', 'b'], [3, 5])\n"
        "plt.show()\n",
        timeout=T,
    )
    assert r.status is Status.OK, r
    assert r.stderr == ""  # no "non-interactive backend" warning
    assert [o.kind for o in r.outputs] == ["display", "stdout", "display"]
    for bundle in r.displays:
        assert base64.b64decode(bundle["image/png"]).startswith(PNG_SIGNATURE)
        assert bundle["text/plain"].startswith("<Figure")
    r = await s.execute("print(plt.get_fignums())", timeout=T)
    assert r.stdout == "[]\n" and r.displays == []  # figures are closed once shown


async def test_figure_built_over_several_executions_equals_one_execution(
    s: LocalSession,
) -> None:
    """Script semantics: nothing is flushed at the end of an execution, so eager == serial."""
    pytest.importorskip("matplotlib")
    chunks = [
        "import matplotlib.pyplot as plt",
        "fig, ax = plt.subplots(figsize=(4, 3))",
        "ax.plot([1, 2, 3], [3, 1, 2])",
        "ax.set_title('built in pieces')",
        "plt.show()",
    ]
    eager = [await s.execute(chunk, timeout=T) for chunk in chunks]
    assert [len(r.displays) for r in eager] == [0, 0, 0, 0, 1]
    serial = await s.execute("\n".join(chunks), timeout=T)
    assert len(serial.displays) == 1
    assert eager[-1].displays[0]["image/png"] == serial.displays[0]["image/png"]


async def test_figure_never_shown_is_not_displayed(s: LocalSession) -> None:
    pytest.importorskip("matplotlib")
    r = await s.execute(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.savefig('/dev/null', format='png')",
        timeout=T,
    )
    assert r.status is Status.OK and r.displays == []


async def test_display_uses_repr_methods(s: LocalSession) -> None:
    r = await s.execute(
        "class Table:\n"
        "    def _repr_html_(self):\n"
        "        return '<table><tr><td>1</td></tr></table>'\n"
        "    def __repr__(self):\n"
        "        return 'Table(1)'\n"
        "print('before')\n"
        "display(Table(), 7)\n",
        timeout=T,
    )
    assert r.status is Status.OK, r
    assert [o.kind for o in r.outputs] == ["stdout", "display", "display"]
    assert r.displays[0] == {
        "text/html": "<table><tr><td>1</td></tr></table>",
        "text/plain": "Table(1)",
    }
    assert r.displays[1] == {"text/plain": "7"}


async def test_display_of_png_bytes_and_of_a_figure(s: LocalSession) -> None:
    pytest.importorskip("matplotlib")
    r = await s.execute(
        "import io\nimport matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots()\nax.plot([1, 2])\n"
        "buf = io.BytesIO()\nfig.savefig(buf, format='png')\n"
        "class Picture:\n"
        "    def _repr_png_(self):\n"
        "        return buf.getvalue()\n"
        "display(Picture(), fig)\n",
        timeout=T,
    )
    assert r.status is Status.OK, r
    assert len(r.displays) == 2
    for bundle in r.displays:
        assert base64.b64decode(bundle["image/png"]).startswith(PNG_SIGNATURE)


# --------------------------------------------------------------------------- interpreter choice


def _other_pythons() -> list[Any]:
    candidates = [
        "/usr/bin/python3",
        *sorted(Path("/root/.pyenv/versions").glob("3.8*/bin/python3")),
    ]
    params = []
    for c in candidates:
        path = str(c)
        usable = os.path.exists(path) and os.path.realpath(path) != os.path.realpath(sys.executable)
        params.append(
            pytest.param(
                path,
                id=path,
                marks=[] if usable else pytest.mark.skip(reason=f"{path} is not on this machine"),
            )
        )
    return params


@pytest.mark.parametrize("python", _other_pythons())
async def test_python_option_runs_another_interpreter(make_session: Any, python: str) -> None:
    s = await make_session(python=python)
    r = await s.execute(
        "import sys\nprint(sys.executable)\nprint(sys.version_info >= (3, 8))", timeout=T
    )
    assert r.status is Status.OK, r
    exe, ok = r.stdout.splitlines()
    assert os.path.realpath(exe) == os.path.realpath(python) and ok == "True"
    assert s.worker_info["executable"] == exe
    r = await s.execute("import os\nos.write(1, b'fd\\n')\nprint('x')\n1/0", timeout=T)
    assert r.stdout == "fd\nx\n" and r.error is not None and r.error.lineno == 4


async def test_python_option_runs_a_virtualenv(make_session: Any, tmp_path: Path) -> None:
    import venv

    venv.EnvBuilder(with_pip=False).create(tmp_path / "env")
    python = tmp_path / "env" / "bin" / "python"
    s = await make_session(python=str(python))
    r = await s.execute("import sys\nprint(sys.prefix)", timeout=T)
    assert r.status is Status.OK, r
    assert os.path.realpath(r.stdout.strip()) == os.path.realpath(tmp_path / "env")


# --------------------------------------------------------------------------- clean-up


def _other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def test_close_leaves_no_process_task_or_thread_behind(make_session: Any) -> None:
    tasks_before = _other_tasks()
    threads_before = set(threading.enumerate())
    s = await make_session()
    r = await s.execute(
        "import subprocess\nchild = subprocess.Popen(['sleep', '60'])\nprint(child.pid)", timeout=T
    )
    child = int(r.stdout)
    pid = s.pid
    assert pid is not None and not process_gone(child)
    await s.close()
    await s.close()  # idempotent
    assert not s.alive and s.pid is None
    assert await wait_until_gone(pid)
    assert await wait_until_gone(child)  # the whole process group went
    assert _other_tasks() <= tasks_before
    deadline = time.monotonic() + 10
    while set(threading.enumerate()) - threads_before and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # asyncio's child watcher thread ends once it reaped
    assert set(threading.enumerate()) <= threads_before
    with pytest.raises(SessionDead):
        await s.execute("pass", timeout=T)


async def test_close_while_executing_returns_the_execution(s: LocalSession) -> None:
    task, _ = await run_until_output(
        s, "import time\nprint('on', flush=True)\ntime.sleep(60)", "on"
    )
    pid = s.pid
    await s.close()
    r = await asyncio.wait_for(task, T)
    assert r.status is Status.DIED and "closed" in r.detail
    assert pid is not None and await wait_until_gone(pid)


async def test_restart_while_executing_ends_that_execution_once(s: LocalSession) -> None:
    task, _ = await run_until_output(
        s, "import time\nprint('on', flush=True)\ntime.sleep(60)", "on"
    )
    old = s.pid
    await s.restart(timeout=60)
    r = await asyncio.wait_for(task, T)
    assert r.status is Status.DIED and r.state_lost and "restarted" in r.detail
    new = s.pid
    assert s.alive and new != old and old is not None and await wait_until_gone(old)
    assert (await s.execute("print('fresh')", timeout=T)).stdout == "fresh\n"
    assert s.pid == new  # the execution that ended did not start a worker of its own


async def test_restart_gives_a_fresh_interpreter(s: LocalSession) -> None:
    await s.execute("kept = 1", timeout=T)
    old = s.pid
    await s.restart(timeout=60)
    assert s.pid != old and old is not None and await wait_until_gone(old)
    assert (await s.execute("print('kept' in globals())", timeout=T)).stdout == "False\n"


async def test_describe_exit() -> None:
    assert describe_exit(3) == "the worker exited with code 3"
    assert describe_exit(-9) == "the worker was killed by SIGKILL (out of memory?)"
    assert describe_exit(-15) == "the worker was killed by SIGTERM"


# --------------------------------------------------------------------------- sync facade


def test_sync_session_facade() -> None:
    seen: list[str] = []
    with SyncSession(LocalBackend().session()) as s:
        r = s.execute("x = 2\nprint(x * 21)", timeout=T, on_output=lambda o: seen.append(o.text))
        assert r.status is Status.OK and r.stdout == "42\n" and seen == ["42\n"]
        r = s.execute("import time\ntime.sleep(30)", timeout=0.3)
        assert r.status is Status.TIMEOUT
        assert s.execute("print(x)", timeout=T).stdout == "2\n"
        pid = s.session.pid  # type: ignore[attr-defined]
    assert not s.alive
    assert (pid is not None and process_gone(pid)) or _eventually_gone(pid)


def _eventually_gone(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.02)
    return False
