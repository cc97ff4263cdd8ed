"""The Docker backend beyond the shared contract: isolation, faults, files, labels, pool.

Every test runs on a real engine with the image ``scripts/setup-docker.sh``
builds; without one they skip (or fail when ``EAGER_RT_REQUIRE_DOCKER=1``).
Escape tests check both sides: the code inside is stopped, and the host is
untouched.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eager_rt.executor import BackendError, Status
from tests import escapes
from tests.containers import busy_owner, docker_engine
from tests.processes import host_can_start_a_process
from tests.provision.docker import TEST_IMAGE

pytestmark = pytest.mark.anyio

MiB = 1 << 20


@pytest.fixture
def engine() -> Iterator[Any]:
    with docker_engine() as client:
        yield client


@pytest.fixture
async def backend(engine: Any) -> AsyncIterator[Any]:
    """A backend without a warm pool (the pool has its own tests)."""
    from eager_rt.backends.docker import DockerBackend

    b = DockerBackend(image=TEST_IMAGE, pool_size=0)
    try:
        yield b
    finally:
        await b.aclose()


def owned_by_me(engine: Any) -> list[dict[str, Any]]:
    """Containers (running or not) whose owner label is this process."""
    from eager_rt.backends._docker_engine import LABEL_OWNER_PID

    return [c for c in engine.list_owned() if c["Labels"].get(LABEL_OWNER_PID) == str(os.getpid())]


# --------------------------------------------------------------------------- hardening


async def test_hardened_by_default(backend: Any, engine: Any) -> None:
    async with backend.session() as session:
        code = textwrap.dedent(
            """
            import os
            status = dict(line.split(':', 1) for line in open('/proc/self/status'))
            print(os.getuid(), os.getgid(), os.getcwd(), os.environ['HOME'])
            print(status['CapEff'].strip(), status['NoNewPrivs'].strip())
            """
        )
        result = await session.execute(code, timeout=60)
        assert result.status is Status.OK, result
        ids, caps = result.stdout.splitlines()
        assert ids == "65534 65534 /work /work"
        assert caps == "0000000000000000 1"
        host = engine.inspect(session.container_id)["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Memory"] == 1024 * MiB
    assert host["MemorySwap"] == 1024 * MiB  # no swap on top
    assert host["PidsLimit"] == 256
    assert host["NanoCpus"] == 1_000_000_000
    assert host["Init"] is True
    assert set(host["Tmpfs"]) == {"/work", "/tmp"}


async def test_hardening_is_overridable(backend: Any, engine: Any) -> None:
    session = backend.session(
        user=None, read_only=False, mem_limit="300m", pids_limit=50, cpus=0.5, cap_drop=()
    )
    async with session:
        result = await session.execute("import os\nprint(os.getuid())", timeout=60)
        assert result.stdout == "0\n"  # the image's own user
        host = engine.inspect(session.container_id)["HostConfig"]
    assert host["ReadonlyRootfs"] is False
    assert host["Memory"] == 300 * MiB
    assert host["PidsLimit"] == 50
    assert host["NanoCpus"] == 500_000_000
    assert not host["CapDrop"]


async def test_network_access_fails(backend: Any) -> None:
    address = escapes.host_ip()
    with escapes.host_server() as server:
        async with backend.session() as session:
            code = escapes.connect_attempts([address, "example.com"], server.port)
            result = await session.execute(code, timeout=60)
        assert not server.reached()  # the host's server never saw the container
    assert result.status is Status.OK, result
    lines = result.stdout.splitlines()
    assert lines[0] == "['lo']"  # no interface but loopback
    assert escapes.connected(result.stdout) == []
    assert any(line.startswith("refused example.com") for line in lines)  # no DNS either
    if address is not None:
        assert any(line.startswith(f"refused {address}") for line in lines)


async def test_writing_outside_the_work_dir_fails(backend: Any, tmp_path: Path) -> None:
    marker = tmp_path / "host-marker"
    outside = ["/etc/passwd", "/usr/lib/evil.py", "/evil", "/root/evil", str(marker)]
    code = escapes.write_attempts(outside, ["/work/ok.txt", "/tmp/ok.txt", "relative.txt"])
    async with backend.session() as session:
        result = await session.execute(code, timeout=60)
        assert result.status is Status.OK, result
        assert escapes.denied(result.stdout) == outside
        assert await session.get_file("relative.txt") == b"fine"
    assert not marker.exists()  # the host's file system is not the container's


async def test_fork_bomb_is_stopped_by_the_pids_limit(backend: Any, engine: Any) -> None:
    limit = 64
    async with backend.session(pids_limit=limit) as session:
        result = await session.execute(escapes.FORK_BOMB, timeout=3.0)
        assert result.status is Status.TIMEOUT
        assert "bombing" in result.stdout
        stats = await asyncio.to_thread(
            engine.api.stats, session.container_id, stream=False, one_shot=True
        )
        assert 0 < stats["pids_stats"]["current"] <= limit
        assert await host_can_start_a_process()  # while the bomb's children spin
        container = session.container_id
    # closing removes the container and every process in it
    assert engine.inspect(container) is None


async def test_memory_hog_is_killed_and_reported_as_oom(backend: Any) -> None:
    async with backend.session(mem_limit="256m") as session:
        await session.execute("kept = 1", timeout=60)
        first = session.container_id
        result = await session.execute("hog = b'x' * (2 << 30)\nprint('survived')", timeout=120)
        assert result.status is Status.DIED
        assert result.state_lost
        assert "out of memory" in result.detail
        assert "256 MiB" in result.detail
        assert "survived" not in result.stdout
        # replaced by a fresh container, which works
        assert session.alive
        assert session.container_id != first
        after = await session.execute("print('kept' in globals())", timeout=60)
        assert after.stdout == "False\n"


async def test_docker_kill_is_detected_at_once(backend: Any, engine: Any) -> None:
    async with backend.session() as session:
        container = session.container_id
        code = "import time\nprint('sleeping', flush=True)\ntime.sleep(3600)\n"
        seen = asyncio.Event()
        task = asyncio.create_task(
            session.execute(code, on_output=lambda o: seen.set() if "sleeping" in o.text else None)
        )
        await asyncio.wait_for(seen.wait(), 60)
        await asyncio.to_thread(engine.api.kill, container)
        # no timeout was given: only death detection can end this execution
        result = await asyncio.wait_for(task, 60)
        assert result.status is Status.DIED
        assert "SIGKILL" in result.detail and "docker kill" in result.detail
        assert "out of memory" not in result.detail
        assert result.state_lost
        assert session.alive and session.container_id != container
    assert engine.inspect(container) is None


async def test_timeout_on_stubborn_code_replaces_the_container(backend: Any, engine: Any) -> None:
    stubborn = (
        "import time\n"
        "while True:\n"
        "    try:\n"
        "        time.sleep(0.05)\n"
        "    except KeyboardInterrupt:\n"
        "        pass\n"
    )
    async with backend.session(interrupt_grace=0.5) as session:
        old = session.container_id
        result = await session.execute(stubborn, timeout=1.0)
        assert result.status is Status.TIMEOUT
        assert result.state_lost
        assert session.container_id not in (None, old)
        assert engine.inspect(old) is None
        ok = await session.execute("print('fresh')", timeout=60)
        assert ok.stdout == "fresh\n"


async def test_missing_image_is_a_backend_error(backend: Any) -> None:
    session = backend.session(image="eager-rt-no-such-image:none")
    with pytest.raises(BackendError, match="eager-rt-no-such-image"):
        await session.start(timeout=60)
    assert not session.alive
    await session.close()


async def test_image_without_the_interpreter_fails_to_start_with_the_reason(backend: Any) -> None:
    session = backend.session(python="python-missing")
    with pytest.raises(BackendError, match="python-missing"):
        await session.start(timeout=60)
    assert not session.alive
    await session.close()


# --------------------------------------------------------------------------- files


async def test_files_in_and_out(backend: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "numbers.csv").write_text("x\n1\n2\n3\n")
    (data / "sub" / "note.txt").write_text("nested")
    code = textwrap.dedent(
        """
        import pandas as pd
        df = pd.read_csv('data/numbers.csv')
        print(int(df.x.sum()), open('data/sub/note.txt').read(), open('blob.bin', 'rb').read())
        import os
        os.makedirs('out', exist_ok=True)
        df.assign(y=df.x * 10).to_csv('out/result.csv', index=False)
        open('out/log.txt', 'w').write('done')
        """
    )
    async with backend.session() as session:
        await session.upload(data)
        await session.put_file("blob.bin", b"\x00\x01binary")
        result = await session.execute(code, timeout=120)
        assert result.status is Status.OK, result
        assert result.stdout == "6 nested b'\\x00\\x01binary'\n"
        assert await session.get_file("out/result.csv") == b"x,y\n1,10\n2,20\n3,30\n"
        assert await session.get_file("/work/out/log.txt") == b"done"
        local = await session.download("out", tmp_path / "back")
        assert (local / "log.txt").read_text() == "done"
        assert (local / "result.csv").read_text().startswith("x,y\n")
        with pytest.raises(FileNotFoundError):
            await session.get_file("missing.txt")
        with pytest.raises(IsADirectoryError):
            await session.get_file("out")


async def test_cwd_is_copied_into_the_work_dir(backend: Any, tmp_path: Path) -> None:
    (tmp_path / "input.txt").write_text("from the host")
    async with backend.session(cwd=tmp_path) as session:
        result = await session.execute(
            "print(open('input.txt').read())\nopen('input.txt', 'w').write('changed')", timeout=60
        )
        assert result.stdout == "from the host\n"
    assert (tmp_path / "input.txt").read_text() == "from the host"  # copied, not mounted


# --------------------------------------------------------------------------- lifecycle


async def test_containers_carry_owner_labels(backend: Any, engine: Any) -> None:
    from eager_rt.backends._docker_engine import (
        LABEL_OWNER_HOST,
        LABEL_OWNER_PID,
        LABEL_OWNER_START,
        LABEL_SESSION,
    )

    async with backend.session(labels={"team": "analytics"}) as session:
        labels = engine.inspect(session.container_id)["Config"]["Labels"]
        # ours, the caller's, and the image's own (inherited by the engine)
        assert labels.items() >= session.container_labels.items()
        assert labels["team"] == "analytics"
        assert labels[LABEL_OWNER_PID] == str(os.getpid())
        assert labels[LABEL_OWNER_HOST] == socket.gethostname()
        assert labels[LABEL_OWNER_START]
        assert labels[LABEL_SESSION].startswith("eager-rt-")
        assert [c["Id"] for c in owned_by_me(engine)] == [session.container_id]


async def test_no_container_left_after_close(engine: Any) -> None:
    from eager_rt.backends.docker import DockerBackend

    backend = DockerBackend(image=TEST_IMAGE, pool_size=2)
    sessions = [backend.session() for _ in range(2)]
    for s in sessions:
        await s.start(timeout=120)
    await backend.warm_up()
    assert len(owned_by_me(engine)) == 4  # two sessions, two pooled
    for s in sessions:
        await s.close()
    assert len(owned_by_me(engine)) == 2  # the pool's
    await backend.aclose()
    assert owned_by_me(engine) == []


async def test_containers_of_a_killed_host_process_are_reaped(backend: Any, engine: Any) -> None:
    """Issue 17, finding 5: a container busy when its host died ran on until the next start."""
    session = "eager_rt.backends.docker.DockerSession"
    async with busy_owner(session, TEST_IMAGE, "container_id") as container:
        assert engine.inspect(container)["State"]["Running"]
    # its attach stream, hence its stdin, closed with the owner, and the worker
    # ends on that even while the code is busy ...
    deadline = time.monotonic() + 60
    while engine.inspect(container)["State"]["Running"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not engine.inspect(container)["State"]["Running"]
    # ... and the next start (the backend's first use reaps, or an explicit reap) removes it
    await backend.reap()
    assert engine.inspect(container) is None


async def test_reaper_spares_containers_of_live_owners(backend: Any, engine: Any) -> None:
    async with backend.session() as session:
        assert session.container_id not in await backend.reap()
        assert engine.inspect(session.container_id)["State"]["Running"]


async def test_warm_pool_hands_out_a_started_container(engine: Any) -> None:
    from eager_rt.backends._docker_engine import LABEL_ROLE
    from eager_rt.backends.docker import DockerBackend

    backend = DockerBackend(image=TEST_IMAGE, pool_size=1)
    try:
        await backend.warm_up()
        pooled = [c for c in owned_by_me(engine) if c["Labels"][LABEL_ROLE] == "pool"]
        assert len(pooled) == 1 and pooled[0]["State"] == "running"
        async with backend.session() as session:
            assert session.last_start_pooled
            assert session.container_id == pooled[0]["Id"]
            result = await session.execute("print('warm')", timeout=60)
            assert result.stdout == "warm\n"
            # the pool refills behind it
            await backend.warm_up()
            refill = [c for c in owned_by_me(engine) if c["Labels"][LABEL_ROLE] == "pool"]
            assert len(refill) == 2 and session.container_id in {c["Id"] for c in refill}
        # a session that changes the container cannot use the pool
        async with backend.session(mem_limit="512m") as other:
            assert not other.last_start_pooled
    finally:
        await backend.aclose()
    assert owned_by_me(engine) == []


async def test_prestart_overlaps_and_start_waits_for_it(backend: Any, engine: Any) -> None:
    session = backend.prestart()
    try:
        assert not session.alive  # still starting in the background
        await session.start(timeout=120)  # waits for the prestart, starts nothing new
        assert session.alive
        assert [c["Id"] for c in owned_by_me(engine)] == [session.container_id]
        result = await session.execute("print('ready')", timeout=60)
        assert result.stdout == "ready\n"
    finally:
        await session.close()
    assert owned_by_me(engine) == []


async def test_close_during_prestart_leaves_nothing(backend: Any, engine: Any) -> None:
    session = backend.prestart()
    await asyncio.sleep(0.05)  # the container is being created in a thread
    await session.close()
    assert not session.alive
    assert owned_by_me(engine) == []


# --------------------------------------------------------------------------- without an engine


def test_default_spec_is_hardened() -> None:
    from eager_rt.backends.docker import build_spec

    spec = build_spec(image="some:image")
    config = dict(spec.host_config)
    assert config["network_mode"] == "none"
    assert config["read_only"] is True
    assert config["cap_drop"] == ["ALL"]
    assert config["security_opt"] == ["no-new-privileges"]
    assert config["mem_limit"] == config["memswap_limit"] == "1g"
    assert config["pids_limit"] == 256
    assert config["nano_cpus"] == 1_000_000_000
    assert config["init"] is True
    assert config["log_config"] == {"type": "none"}
    assert config["tmpfs"]["/work"].startswith("rw,size=512m,uid=65534,gid=65534")
    assert spec.user == "65534:65534"
    assert spec.working_dir == dict(spec.environment)["HOME"] == "/work"
    overridden = build_spec(image="x", network_mode="bridge", host_config={"shm_size": "1g"})
    assert dict(overridden.host_config)["network_mode"] == "bridge"
    assert dict(overridden.host_config)["shm_size"] == "1g"


def test_image_comes_from_option_then_environment_then_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from eager_rt.backends.docker import DEFAULT_IMAGE, IMAGE_ENV, build_spec

    monkeypatch.delenv(IMAGE_ENV, raising=False)
    assert build_spec().image == DEFAULT_IMAGE == "python:3.12-slim"
    monkeypatch.setenv(IMAGE_ENV, "mine:1")
    assert build_spec().image == "mine:1"
    assert build_spec(image="given:2").image == "given:2"


def test_backend_checks_options_without_an_engine() -> None:
    from eager_rt.backends.docker import DockerBackend

    with pytest.raises(ValueError):
        DockerBackend(pids_limit=0)
    with pytest.raises(ValueError):
        DockerBackend(pool_size=-1)
    with pytest.raises(TypeError):
        DockerBackend(no_such_option=1)


@pytest.mark.parametrize(
    ("state", "memory", "words"),
    [
        ({"OOMKilled": True, "ExitCode": 137}, 256 * MiB, ["out of memory", "256 MiB", "137"]),
        ({"OOMKilled": False, "ExitCode": 137}, None, ["SIGKILL", "docker kill", "137"]),
        ({"OOMKilled": False, "ExitCode": 143}, None, ["SIGTERM", "engine stopping or restarting"]),
        ({"OOMKilled": False, "ExitCode": 139}, None, ["SIGSEGV", "139"]),
        ({"OOMKilled": False, "ExitCode": 7}, None, ["exited with code 7"]),
        (None, None, ["removed"]),
    ],
)
def test_death_is_described_from_the_container_state(
    state: dict[str, Any] | None, memory: int | None, words: list[str]
) -> None:
    from eager_rt.backends._docker_engine import describe_state

    text = describe_state(state, memory)
    for word in words:
        assert word in text


def test_owner_of_this_process_is_alive_and_a_dead_one_is_not() -> None:
    from eager_rt.backends._docker_engine import LABEL_OWNER_PID, owner_alive, owner_labels

    mine = owner_labels()
    assert owner_alive(mine)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)
    assert not owner_alive({**mine, LABEL_OWNER_PID: str(child.pid)})
    # a reused pid is told apart by its start time
    assert not owner_alive({**mine, "eager_rt.owner_start": "1"})
    assert owner_alive({**mine, "eager_rt.owner_host": "some-other-machine"})


@given(
    frames=st.lists(st.tuples(st.sampled_from([1, 2]), st.binary(max_size=300)), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_demuxer_reassembles_frames_split_anywhere(
    frames: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    from eager_rt.backends._docker_engine import Demuxer

    stream = b"".join(
        bytes([kind, 0, 0, 0]) + len(data).to_bytes(4, "big") + data for kind, data in frames
    )
    out: list[bytes] = []
    err: list[bytes] = []
    demux = Demuxer(out.append, err.append)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    for start, end in itertools.pairwise(points):
        demux.feed(stream[start:end])
    assert b"".join(out) == b"".join(d for k, d in frames if k == 1)
    assert b"".join(err) == b"".join(d for k, d in frames if k == 2)
    assert demux.pending == 0
