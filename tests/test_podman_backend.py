"""The Podman backend beyond the shared contract: hardening, faults, clean-up, the reaper.

Every test that starts a container runs on rootful Podman with the image
``scripts/setup-podman.sh`` loads; without it they skip (or fail when
``EAGER_RT_REQUIRE_PODMAN=1``). The pure tests (flags, death sentences) run
anywhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from eager_rt.backends._docker_engine import (
    LABEL_OWNER_PID,
    LABEL_OWNER_START,
    LABEL_SESSION,
    owner_labels,
)
from eager_rt.backends.podman import (
    DEFAULT_IMAGE,
    IMAGE_ENV,
    PodmanBackend,
    PodmanSession,
    describe_end,
    run_args,
)

from eager_rt.executor import BackendError, Status
from tests.containers import busy_owner
from tests.provision.podman import TEST_IMAGE, require_podman

pytestmark = pytest.mark.anyio

MiB = 1 << 20
SLEEPER = "import time\nprint('sleeping', flush=True)\ntime.sleep(3600)\n"


@pytest.fixture
async def backend() -> AsyncIterator[PodmanBackend]:
    require_podman()
    b = PodmanBackend(image=TEST_IMAGE)
    try:
        yield b
    finally:
        await b.aclose()


def podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120)


def inspect(name: str | None) -> dict[str, Any] | None:
    """The container's inspect document, or None when it does not exist."""
    assert name is not None
    done = podman("container", "inspect", "--format=json", name)
    return json.loads(done.stdout)[0] if done.returncode == 0 else None


def owned_by_me() -> list[str]:
    """Names of the containers (running or not) whose owner label is this process."""
    done = podman("ps", "-a", "--format=json", f"--filter=label={LABEL_OWNER_PID}={os.getpid()}")
    return [c["Names"][0] for c in json.loads(done.stdout or "[]")]


async def sleeping(session: PodmanSession) -> asyncio.Task[Any]:
    """Start SLEEPER in ``session``; return its task once the code surely runs."""
    seen = asyncio.Event()
    task = asyncio.create_task(
        session.execute(SLEEPER, on_output=lambda o: seen.set() if "sleeping" in o.text else None)
    )
    await asyncio.wait_for(seen.wait(), 60)
    return task


# --------------------------------------------------------------------------- hardening


async def test_hardened_by_default(backend: PodmanBackend) -> None:
    code = textwrap.dedent(
        """
        import os, socket
        status = dict(line.split(':', 1) for line in open('/proc/self/status'))
        print(os.getuid(), os.getgid(), os.getcwd(), os.environ['HOME'])
        print(status['CapEff'].strip(), status['NoNewPrivs'].strip())
        print(sorted(name for _, name in socket.if_nameindex()))
        for path in ['/etc/passwd', '/evil', '/work/ok', '/tmp/ok']:
            try:
                open(path, 'a').close()
                print('wrote', path)
            except OSError as exc:
                print('denied', path)
        root = [line.split() for line in open('/proc/self/mounts') if line.split()[1] == '/']
        print('root', root[0][3].split(',')[0])
        try:
            socket.create_connection(('example.com', 80), timeout=5)
            print('connected')
        except OSError as exc:
            print('no network', type(exc).__name__)
        """
    )
    async with backend.session() as session:
        result = await session.execute(code, timeout=60)
        document = inspect(session.container_name)
    assert result.status is Status.OK, result
    assert result.stdout.splitlines() == [
        "65534 65534 /work /work",
        "0000000000000000 1",  # no capabilities, no-new-privileges
        "['lo']",  # no interface but loopback
        "denied /etc/passwd",
        "denied /evil",
        "wrote /work/ok",
        "wrote /tmp/ok",
        "root ro",  # the root file system is mounted read-only
        "no network gaierror",  # not even DNS
    ]
    assert document is not None
    host = document["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Memory"] == host["MemorySwap"] == 1024 * MiB  # no swap on top
    assert host["PidsLimit"] == 256
    assert host["NanoCpus"] == 1_000_000_000
    assert set(host["Tmpfs"]) == {"/work", "/tmp"}
    assert host["LogConfig"]["Type"] == "none"  # frames are not copied to a log


async def test_hardening_is_overridable(backend: PodmanBackend) -> None:
    session = backend.session(user=None, read_only=False, mem_limit="300m", pids_limit=50, cpus=0.5)
    async with session:
        result = await session.execute("import os\nprint(os.getuid())", timeout=60)
        document = inspect(session.container_name)
    assert result.stdout == "0\n"  # the image's own user
    assert document is not None
    host = document["HostConfig"]
    assert host["ReadonlyRootfs"] is False
    assert host["Memory"] == 300 * MiB
    assert host["PidsLimit"] == 50
    assert host["NanoCpus"] == 500_000_000


async def test_cwd_is_copied_into_the_work_dir(backend: PodmanBackend, tmp_path: Path) -> None:
    (tmp_path / "input.txt").write_text("from the host")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "more.txt").write_text("nested")
    tmp_path.chmod(0o755)  # the container's user reads it through a read-only mount
    code = (
        "print(open('input.txt').read(), open('sub/more.txt').read())\n"
        "open('input.txt', 'w').write('changed')\n"
        "print(open('input.txt').read())"
    )
    async with backend.session(cwd=tmp_path) as session:
        result = await session.execute(code, timeout=60)
    assert result.stdout == "from the host nested\nchanged\n", result
    assert (tmp_path / "input.txt").read_text() == "from the host"  # copied, not mounted


# --------------------------------------------------------------------------- faults


async def test_interrupt_reaches_the_worker_and_keeps_state(backend: PodmanBackend) -> None:
    async with backend.session() as session:
        setup = "import subprocess\nkept = 41\nchild = subprocess.Popen(['sleep', '3600'])"
        await session.execute(setup, timeout=60)
        container = session.container_name
        task = await sleeping(session)
        # the signal alone (no interrupt frame): client -> sig-proxy -> init -> worker;
        # the host did not ask for it (no interrupt()), so the result is the code's
        # KeyboardInterrupt, an error: what matters is that the signal got through
        await session.process.send_interrupt(0)
        result = await asyncio.wait_for(task, 60)
        assert result.status is Status.ERROR, result
        assert result.error is not None and result.error.ename == "KeyboardInterrupt"
        assert not result.state_lost
        # state kept, and the worker's own child was not signalled
        after = await session.execute("print(kept + 1, child.poll())", timeout=60)
        assert after.stdout == "42 None\n"
        assert session.container_name == container


async def test_memory_hog_is_killed_and_reported_as_oom(
    backend: PodmanBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # conmon marks an OOM kill with a file in the client's cwd
    async with backend.session(mem_limit="256m") as session:
        await session.execute("kept = 1", timeout=60)
        first = session.container_name
        result = await session.execute("hog = b'x' * (2 << 30)\nprint('survived')", timeout=120)
        assert result.status is Status.DIED
        assert result.state_lost
        assert "out of memory" in result.detail and "256m" in result.detail
        assert "survived" not in result.stdout
        # replaced by a fresh container, which works; the dead one is gone
        assert session.alive and session.container_name != first
        assert inspect(first) is None
        after = await session.execute("print('kept' in globals())", timeout=60)
        assert after.stdout == "False\n"
        scratch = session.process.cwd
        assert scratch is not None and os.path.isdir(scratch)
    # nothing of the session is left on the host: not its scratch directory, no mark here
    assert not os.path.exists(scratch)
    assert list(tmp_path.iterdir()) == []


async def test_podman_kill_is_detected_and_not_called_oom(backend: PodmanBackend) -> None:
    async with backend.session() as session:
        container = session.container_name
        task = await sleeping(session)
        assert container is not None and podman("kill", container).returncode == 0
        # no timeout was given: only death detection can end this execution
        result = await asyncio.wait_for(task, 60)
        assert result.status is Status.DIED
        assert "SIGKILL" in result.detail and "podman kill" in result.detail
        assert "out of memory" not in result.detail
        assert result.state_lost
        assert session.alive and session.container_name != container
    assert inspect(container) is None


async def test_timeout_on_stubborn_code_replaces_the_container(backend: PodmanBackend) -> None:
    stubborn = (
        "import time\n"
        "while True:\n"
        "    try:\n"
        "        time.sleep(0.05)\n"
        "    except KeyboardInterrupt:\n"
        "        pass\n"
    )
    async with backend.session(interrupt_grace=0.5) as session:
        old = session.container_name
        result = await session.execute(stubborn, timeout=1.0)
        assert result.status is Status.TIMEOUT
        assert result.state_lost
        assert session.container_name not in (None, old)
        assert inspect(old) is None
        ok = await session.execute("print('fresh')", timeout=60)
        assert ok.stdout == "fresh\n"


async def test_missing_image_is_a_backend_error(backend: PodmanBackend) -> None:
    session = backend.session(image="eager-rt-no-such-image:none")
    with pytest.raises(BackendError, match="eager-rt-no-such-image"):
        await session.start(timeout=60)
    assert not session.alive
    await session.close()


async def test_image_without_the_interpreter_fails_with_the_reason(backend: PodmanBackend) -> None:
    session = backend.session(python="python-missing")
    with pytest.raises(BackendError, match="python-missing"):
        await session.start(timeout=60)
    assert not session.alive
    await session.close()


# --------------------------------------------------------------------------- clean-up


async def test_close_removes_the_container_and_everything_in_it(backend: PodmanBackend) -> None:
    async with backend.session(labels={"team": "analytics"}) as session:
        await session.execute("import subprocess\nsubprocess.Popen(['sleep', '3600'])", timeout=60)
        container = session.container_name
        document = inspect(container)
        assert document is not None
        labels = document["Config"]["Labels"]
        assert labels[LABEL_OWNER_PID] == str(os.getpid())
        assert labels[LABEL_SESSION] == container
        assert labels["team"] == "analytics"
        assert owned_by_me() == [container]
        task = await sleeping(session)
    assert (await task).status is Status.DIED  # closed under it
    assert inspect(container) is None
    assert owned_by_me() == []


async def test_a_busy_container_stops_when_its_host_is_killed(backend: PodmanBackend) -> None:
    """Issue 17, finding 5: a container busy when its host died ran on until the next start."""
    session = "eager_rt.backends.podman.PodmanSession"
    async with busy_owner(session, TEST_IMAGE, "container_name") as container:
        document = inspect(container)
        assert document is not None and document["State"]["Running"]
    # conmon closes the worker's stdin when the client goes, and the worker ends
    # on that even while the code is busy; --rm then removes the container
    deadline = asyncio.get_running_loop().time() + 60
    while (document := inspect(container)) is not None and document["State"]["Running"]:
        assert asyncio.get_running_loop().time() < deadline, "the container still runs"
        await asyncio.sleep(0.1)
    await backend.reap()  # what is left (a stopped container not yet removed) goes too
    assert inspect(container) is None


async def test_containers_of_a_dead_owner_are_reaped(backend: PodmanBackend) -> None:
    """A container that outlived its host (however it did) goes at the next start."""
    owner = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    labels = {**owner_labels(), LABEL_OWNER_PID: owner.stdout.strip(), LABEL_OWNER_START: ""}
    name = f"eager-rt-test-{os.getpid()}"
    started = podman(
        "run",
        "--detach",
        f"--name={name}",
        *(f"--label={k}={v}" for k, v in labels.items()),
        TEST_IMAGE,
        "python3",
        "-c",
        "import time; time.sleep(3600)",
    )
    assert started.returncode == 0, started.stderr
    try:
        assert name in await backend.reap()
        assert inspect(name) is None
    finally:
        podman("rm", "--force", "--ignore", "--time=0", name)


async def test_reaper_spares_containers_of_live_owners(backend: PodmanBackend) -> None:
    async with backend.session() as session:
        assert session.container_name not in await backend.reap()
        document = inspect(session.container_name)
        assert document is not None and document["State"]["Running"]


# --------------------------------------------------------------------------- pure


def test_default_flags_are_hardened(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(IMAGE_ENV, raising=False)
    args = run_args()
    assert args[-1] == DEFAULT_IMAGE == "docker.io/library/python:3.12-slim"
    for flag in (
        "--network=none",
        "--read-only",
        "--read-only-tmpfs=false",
        "--user=65534:65534",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--memory=1g",
        "--memory-swap=1g",
        "--pids-limit=256",
        "--cpus=1.0",
        "--log-driver=none",
        "--env=HOME=/work",
    ):
        assert flag in args
    monkeypatch.setenv(IMAGE_ENV, "mine:1")
    assert run_args()[-1] == "mine:1"
    assert run_args(image="given:2", extra_args=["--shm-size=1g"])[-2:] == [
        "--shm-size=1g",
        "given:2",
    ]


def test_options_are_checked_without_podman() -> None:
    with pytest.raises(ValueError):
        PodmanBackend(pids_limit=0)
    with pytest.raises(ValueError):
        PodmanBackend(cwd="/no/such/directory")
    with pytest.raises(TypeError):
        PodmanBackend(no_such_option=1)


@pytest.mark.parametrize(
    ("code", "oom", "words"),
    [
        (137, True, ["out of memory", "256m", "137"]),
        (137, False, ["SIGKILL", "podman kill", "137"]),
        (139, False, ["SIGSEGV", "139"]),
        (7, False, ["exited with code 7"]),
        (125, False, ["podman could not run"]),
        (-9, False, ["podman client", "signal 9"]),
    ],
)
def test_death_is_described_from_the_exit_code(code: int, oom: bool, words: list[str]) -> None:
    text = describe_end(code, oom, "256m")
    for word in words:
        assert word in text
