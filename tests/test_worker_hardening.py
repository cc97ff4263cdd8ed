"""The worker's channel against user code, and the worker's life against its host's death.

Findings 10 and 5 of issue 17: code could reach the channel (``sys.stdout._worker``)
and send a ``done`` that turned its error into ok; a worker (and a Docker
container) whose host was SIGKILLed while the code was busy ran on. The worker
is not a security boundary against code that sets out to break it, but no
naive code may forge a result, and nothing may outlive its host.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from eager_rt.backends import _protocol as protocol
from eager_rt.backends._framed import WorkerSession
from eager_rt.backends._process import SubprocessWorker

from eager_rt.executor import Status
from tests.conformance.test_tools import interrupt_from_a_thread_while_stalled
from tests.processes import wait_until_gone

pytestmark = pytest.mark.anyio

T = 60.0

#: a done frame that says "ok" for the execution that is running (its id is the
#: number in the code's file name), as naive code would write it
FORGE = (
    "import sys, json\n"
    "exec_id = int(sys._getframe().f_code.co_filename.strip('<>').split('-')[1])\n"
    "body = json.dumps({'type': 'done', 'id': exec_id, 'status': 'ok', 'error': None}).encode()\n"
    "frame = len(body).to_bytes(4, 'big') + body\n"
)


@pytest.fixture
async def session() -> AsyncIterator[WorkerSession]:
    s = WorkerSession(SubprocessWorker(), python=sys.executable)
    await s.start(timeout=60)
    try:
        yield s
    finally:
        await s.close()


async def assert_still_an_error(session: WorkerSession, code: str) -> None:
    """``code`` tries a forgery, then raises: the result must be that error."""
    r = await session.execute(code + "raise ValueError('the real outcome')\n", timeout=T)
    assert r.status is Status.ERROR, r
    assert r.error is not None and r.error.evalue == "the real outcome"
    after = await session.execute("print('fine')", timeout=T)
    assert after.status is Status.OK and after.stdout == "fine\n"


async def test_the_streams_lead_nowhere(session: WorkerSession) -> None:
    r = await session.execute(
        "import sys\n"
        "for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):\n"
        "    assert not hasattr(s, '_worker'), s\n"
        "    assert all(not hasattr(v, 'send') for v in vars(s).values()), vars(s)\n"
        "print(sorted(vars(sys.stdout)))\n",
        timeout=T,
    )
    assert r.status is Status.OK, r.error
    assert r.stdout == "[]\n"


#: walks attributes (``vars``, ``__self__`` of bound methods, dict and list items)
#: and the garbage collector's referrers, two levels, from every object user code
#: sees the worker's hooks in; reports anything that looks like a channel
SEARCH = """\
import builtins, gc, signal, sys, threading

def looks_like_channel(obj):
    return hasattr(obj, 'wfd') or hasattr(obj, 'channel') or hasattr(obj, '_worker')

seeds = [sys.stdout, sys.stderr, builtins.display, builtins.__eager_rt_tools__,
         signal.getsignal(signal.SIGINT), *sys.meta_path, *threading.enumerate(),
         type(sys.stdout)]
atoms = (type(sys), bool, int, float, str, bytes, type(None))
found, seen, frontier = [], set(), list(seeds)
for depth in range(3):
    following = []
    for obj in frontier:
        if id(obj) in seen or obj is sys.modules or isinstance(obj, atoms):
            continue  # (every object refers to some module, False or small int)
        seen.add(id(obj))
        if looks_like_channel(obj):
            found.append(repr(obj)[:80])
        nxt = []
        try:
            nxt += list(vars(obj).values())
        except TypeError:
            pass
        if hasattr(obj, '__self__'):
            nxt.append(obj.__self__)
        if isinstance(obj, dict):
            nxt += list(obj.values())
        if isinstance(obj, (list, tuple)):
            nxt += list(obj)
        nxt += [r for r in gc.get_referrers(obj) if r is not frontier and r is not following]
        following += nxt
    frontier = following
print(found)
"""


async def test_neither_attributes_nor_referrers_of_the_hooks_lead_to_the_channel(
    session: WorkerSession,
) -> None:
    await session.execute("print('warm')", timeout=T)
    r = await session.execute(SEARCH, timeout=T)
    assert r.status is Status.OK, r.error
    assert r.stdout == "[]\n"


async def test_the_worker_module_is_not_importable_by_name(session: WorkerSession) -> None:
    r = await session.execute(
        "import sys\nprint([m for m in sys.modules if 'worker' in m])", timeout=T
    )
    assert r.stdout == "[]\n"


async def test_a_done_frame_written_to_fd_1_is_output_not_a_frame(session: WorkerSession) -> None:
    await assert_still_an_error(session, FORGE + "import os\nos.write(1, frame)\n")


async def test_a_done_frame_written_to_sys_stdout_is_output_not_a_frame(
    session: WorkerSession,
) -> None:
    await assert_still_an_error(
        session,
        FORGE + "sys.__stdout__.buffer.write(frame)\nsys.stdout.write(frame.decode())\n",
    )


async def test_a_done_frame_written_to_every_open_fd_is_ignored(session: WorkerSession) -> None:
    """Also the channel's own descriptor: the forged done lacks the execution's nonce."""
    await assert_still_an_error(
        session,
        FORGE
        + "import os\n"
        + "for name in os.listdir('/proc/self/fd'):\n"
        + "    try:\n"
        + "        os.write(int(name), frame)\n"
        + "    except OSError:\n"
        + "        pass\n",
    )


async def test_a_done_sent_through_the_channel_itself_does_not_end_the_execution(
    session: WorkerSession,
) -> None:
    """Code that digs the channel out of a closure on purpose still cannot forge a result."""
    dig = (
        "worker = next(c.cell_contents for c in type(sys.stdout).write.__closure__\n"
        "              if hasattr(c.cell_contents, 'channel'))\n"
        "for nonce in (None, '', '0' * 16):\n"
        "    worker.channel.send({'type': 'done', 'id': exec_id, 'nonce': nonce,\n"
        "                         'status': 'ok', 'error': None})\n"
    )
    await assert_still_an_error(session, FORGE + dig)


# --------------------------------------------------------------------------- the host's death


def start_worker() -> subprocess.Popen[bytes]:
    """A bare worker, its channel on our pipes: the host side is this test."""
    worker = subprocess.Popen(
        protocol.worker_command(sys.executable),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(protocol.worker_payload())
    worker.stdin.write(protocol.encode(protocol.init_frame({})))
    worker.stdin.flush()
    frames = protocol.FrameDecoder()
    while (message := frames.next()) is None:
        frames.feed(os.read(worker.stdout.fileno(), 65536))
    assert message["type"] == protocol.Msg.READY, message
    return worker


def read_until(worker: subprocess.Popen[bytes], text: str) -> None:
    assert worker.stdout is not None
    frames = protocol.FrameDecoder()
    while True:
        message = frames.next()
        if message is None:
            chunk = os.read(worker.stdout.fileno(), 65536)
            assert chunk, "the worker closed its channel"
            frames.feed(chunk)
        elif text in str(message.get("text", "")):
            return


async def test_a_busy_worker_exits_when_its_channel_closes() -> None:
    worker = start_worker()
    try:
        assert worker.stdin is not None
        code = "print('busy', flush=True)\nwhile True:\n    pass\n"
        worker.stdin.write(protocol.encode({"op": "execute", "id": 1, "code": code, "nonce": "n"}))
        worker.stdin.flush()
        await asyncio.to_thread(read_until, worker, "busy")
        worker.stdin.close()  # the host is gone; nobody will ever read or write again
        assert await asyncio.to_thread(worker.wait, 30) == 0
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        if worker.stdout is not None:
            worker.stdout.close()


HOST = """\
import asyncio, sys
from eager_rt.backends._framed import WorkerSession
from eager_rt.backends._process import SubprocessWorker

async def main():
    session = WorkerSession(SubprocessWorker(), python=sys.executable)
    await session.start(timeout=60)
    print(session.worker_info["pid"], flush=True)
    await session.execute("print('busy', flush=True)\\nwhile True:\\n    pass",
                          on_output=lambda o: print(o.text, end="", flush=True))

asyncio.run(main())
"""


async def test_a_busy_worker_dies_with_its_sigkilled_host() -> None:
    host = subprocess.Popen(
        [sys.executable, "-c", HOST],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        assert host.stdout is not None
        pid = int(await asyncio.wait_for(asyncio.to_thread(host.stdout.readline), T))
        line = await asyncio.wait_for(asyncio.to_thread(host.stdout.readline), T)
        assert line == "busy\n"
    finally:
        os.kill(host.pid, signal.SIGKILL)  # no clean-up code of the host runs
        host.wait(30)
        if host.stdout is not None:
            host.stdout.close()
    # a plain SubprocessWorker arms no parent-death signal and starts a new session:
    # only the worker's own watch of its channel can end it
    assert await wait_until_gone(pid, within=30)


DOCKER_HOST = """\
import asyncio, sys
from eager_rt.backends.docker import DockerSession

async def main():
    session = DockerSession(image=sys.argv[1])
    await session.start(timeout=120)
    print(session.container_id, flush=True)
    await session.execute("print('busy', flush=True)\\nwhile True:\\n    pass",
                          on_output=lambda o: print(o.text, end="", flush=True))

asyncio.run(main())
"""


async def test_a_busy_container_stops_when_its_host_is_sigkilled() -> None:
    from tests.provision.docker import TEST_IMAGE, require_docker

    require_docker()
    from eager_rt.backends._docker_engine import Engine

    engine: Any = Engine(timeout=30)
    host = subprocess.Popen(
        [sys.executable, "-c", DOCKER_HOST, TEST_IMAGE],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    container = ""
    try:
        assert host.stdout is not None
        container = (await asyncio.wait_for(asyncio.to_thread(host.stdout.readline), 180)).strip()
        line = await asyncio.wait_for(asyncio.to_thread(host.stdout.readline), T)
        assert line == "busy\n"
        os.kill(host.pid, signal.SIGKILL)
        host.wait(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = engine.inspect(container)
            if state is None or not state["State"]["Running"]:
                break
            await asyncio.sleep(0.1)
        state = engine.inspect(container)
        assert state is None or not state["State"]["Running"]
    finally:
        if host.poll() is None:
            os.kill(host.pid, signal.SIGKILL)
            host.wait(30)
        if host.stdout is not None:
            host.stdout.close()
        if container:
            engine.remove(container)
        engine.close()



@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_tool_wait_wakes_for_signals_after_the_code_reset_the_wakeup_fd(
    session: WorkerSession, kind: str
) -> None:
    """An event loop of the code's own that handled signals leaves no wakeup fd when closed."""
    reset = (
        "import asyncio, signal\n"
        "loop = asyncio.new_event_loop()\n"
        "loop.add_signal_handler(signal.SIGUSR1, lambda: None)\n"
        "loop.close()\n"
        "print(signal.set_wakeup_fd(-1))\n"
    )
    r = await session.execute(reset, timeout=T)
    assert r.status is Status.OK and r.stdout == "-1\n", r
    result, _ = await interrupt_from_a_thread_while_stalled(session, kind)
    assert result.status is Status.ERROR, result
    assert result.error is not None and result.error.ename == "KeyboardInterrupt"
