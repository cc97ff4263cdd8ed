"""The local backend's bounds on the whole process tree (issue 17, findings 1 and 5).

Each test runs where it can show something: the cgroup mode (the default
where this process may make cgroups), the fallback without cgroups
(``cgroup=False``: address-space limit, ``/proc`` scan with the worker as
subreaper) and the bubblewrap sandbox (its own pid namespace).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from eager_rt.backends import _cgroup
from eager_rt.backends.local import (
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_PIDS_LIMIT,
    LocalBackend,
    LocalSession,
)

from eager_rt.executor import BackendError, ExecResult, Status
from tests import escapes
from tests.local_sessions import MakeSession, local_sessions
from tests.processes import host_can_start_a_process, wait_until_gone
from tests.provision.bwrap import require_bwrap
from tests.provision.cgroup import require_cgroup

pytestmark = pytest.mark.anyio

T = 60.0  # a backstop against a hang, never reached when things work
MIB = 1024**2

#: how each mode is asked for, and what it needs on this machine
MODES: dict[str, dict[str, Any]] = {
    "cgroup": {"cgroup": True},
    "no-cgroup": {"cgroup": False},
    "bwrap": {"isolation": "bwrap"},
}


def _require(mode: str) -> None:
    if mode != "no-cgroup":
        require_cgroup()
    if mode == "bwrap":
        require_bwrap()


@pytest.fixture
async def make_session() -> AsyncIterator[MakeSession]:
    async with local_sessions() as make:
        yield make


def marked(marker: str) -> list[int]:
    """Running processes whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


async def wait_for(predicate: Any, within: float = 15.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(predicate())


def escapees(marker: str) -> str:
    """Code that leaves the worker's process group and session two ways, marked."""
    sleeper = "import time; time.sleep(300)"
    return textwrap.dedent(
        f"""
        import os, subprocess, sys
        subprocess.Popen([sys.executable, '-c', {sleeper!r}, {marker + "-popen"!r}],
                         start_new_session=True)
        pid = os.fork()
        if pid == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable,
                         [sys.executable, '-c', {sleeper!r}, {marker + "-daemon"!r}])
            os._exit(0)
        os.waitpid(pid, 0)
        print('started')
        """
    )


async def with_escapees(make_session: MakeSession, mode: str) -> tuple[LocalSession, str]:
    """A session in ``mode`` whose code left two processes outside its group; their marker."""
    _require(mode)
    marker = f"eager-rt-{uuid.uuid4().hex}"
    s = await make_session(**MODES[mode])
    r = await s.execute(escapees(marker), timeout=T)
    assert r.stdout == "started\n", r
    assert await wait_for(lambda: len(marked(marker)) == 2)
    return s, marker


# --------------------------------------------------------------------------- defaults


async def test_bounded_by_default() -> None:
    session = LocalBackend().session()
    assert session.memory_limit == DEFAULT_MEMORY_LIMIT == 2 * 1024**3
    assert session.pids_limit == DEFAULT_PIDS_LIMIT == 512
    lifted = LocalBackend(memory_limit=None, pids_limit=None).session()
    assert lifted.memory_limit is None and lifted.pids_limit is None
    with pytest.raises(ValueError, match="pids_limit"):
        LocalBackend(pids_limit=0)


async def test_enforcement_says_what_holds(make_session: Any) -> None:
    plain = await make_session(cgroup=False)
    assert plain.enforcement == {
        "memory": f"RLIMIT_AS per process: {DEFAULT_MEMORY_LIMIT} bytes",
        "pids": f"RLIMIT_NPROC for this user: {DEFAULT_PIDS_LIMIT} more tasks",
        "tree_kill": "process scan (worker is child subreaper)",
        "isolation": None,
    }
    r = await plain.execute(AS_LIMIT, timeout=T)
    assert r.stdout == f"({DEFAULT_MEMORY_LIMIT}, {DEFAULT_MEMORY_LIMIT})\n"
    require_cgroup()
    tree = await make_session()
    assert tree.enforcement["memory"] == (
        f"cgroup v{tree.process.tree.version} (the whole process tree): "
        f"{DEFAULT_MEMORY_LIMIT} bytes"
    )
    group = tree.process.tree
    assert group is not None and group.pids() == [tree.pid]  # the worker is in it, alone
    # no per-process cap where the tree has one: address space is not memory
    r = await tree.execute(AS_LIMIT, timeout=T)
    assert r.stdout == f"({resource.RLIM_INFINITY}, {resource.RLIM_INFINITY})\n"


AS_LIMIT = "import resource; print(resource.getrlimit(resource.RLIMIT_AS))"


async def test_the_whole_sandbox_is_in_its_cgroup(make_session: Any) -> None:
    _require("bwrap")
    s = await make_session(isolation="bwrap")
    tree = s.process.tree
    assert tree is not None
    # bwrap, the namespace's init (moved while it waited) and the worker it forked after
    assert s.pid in tree.pids() and len(tree.pids()) == 3


async def test_cgroup_true_fails_to_start_where_cgroups_are_unusable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_cgroup, "create", lambda memory, pids: None)
    session = LocalBackend(cgroup=True).session()
    with pytest.raises(BackendError, match="cgroup=True"):
        await session.start(timeout=60)
    await session.close()


# --------------------------------------------------------------------------- memory


async def test_memory_limit_holds_for_the_whole_tree(make_session: Any) -> None:
    """The reproducer: three children of 400 MiB each under 512 MiB used 1.2 GiB."""
    require_cgroup()
    s = await make_session(memory_limit=512 * MIB)
    code = textwrap.dedent(
        """
        import subprocess, sys, time
        grab = 'b = bytearray(400 << 20); import time; time.sleep(120)'
        children = [subprocess.Popen([sys.executable, '-c', grab]) for _ in range(3)]
        deadline = time.monotonic() + 50
        while all(c.poll() is None for c in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        codes = [c.poll() for c in children]
        for c in children:
            c.kill()
            c.wait()
        print(codes)
        """
    )
    r = await s.execute(code, timeout=T)
    assert r.status is Status.OK, r
    codes = json.loads(r.stdout.replace("None", "null"))
    assert -signal.SIGKILL in codes  # the OOM killer ended one: the tree could not hold 1.2 GiB
    tree = s.process.tree
    assert tree is not None and tree.oom_kills() >= 1
    assert _peak_usage(tree) <= 512 * MIB


def _peak_usage(tree: _cgroup.CgroupTree) -> int:
    if tree.version == 1:
        return int((tree.dirs["memory"] / "memory.max_usage_in_bytes").read_text())
    peak = tree.dirs["unified"] / "memory.peak"
    return int(peak.read_text()) if peak.exists() else 0


@pytest.mark.parametrize("mode", ["cgroup", "bwrap"])
async def test_memory_hog_is_died_out_of_memory_and_restarted(make_session: Any, mode: str) -> None:
    _require(mode)
    s = await make_session(memory_limit=256 * MIB, **MODES[mode])
    await s.execute("kept = 1", timeout=T)
    r = await s.execute("hog = b'x' * (2 << 30)\nprint('survived')", timeout=T)
    assert r.status is Status.DIED, r
    assert r.state_lost and "survived" not in r.stdout
    assert "out of memory" in r.detail and "256 MiB" in r.detail, r.detail
    assert "whole process tree" in r.detail
    assert s.alive
    after = await s.execute("print('kept' in globals())", timeout=T)
    assert after.stdout == "False\n"


# --------------------------------------------------------------------------- tasks


@pytest.mark.parametrize("mode", ["cgroup", "bwrap"])
async def test_fork_bomb_is_stopped_by_the_pids_limit(make_session: Any, mode: str) -> None:
    _require(mode)
    limit = 64
    s = await make_session(pids_limit=limit, **MODES[mode])
    tree = s.process.tree
    assert tree is not None
    task = asyncio.ensure_future(s.execute(escapes.FORK_BOMB, timeout=4.0))
    assert await wait_for(lambda: len(tree.pids()) > 8)
    counts = []
    for _ in range(10):
        counts.append(len(tree.pids()))
        await asyncio.sleep(0.1)
    host_ok = await host_can_start_a_process()  # while the bomb's children spin
    r: ExecResult = await task
    assert r.status is Status.TIMEOUT, r
    assert "bombing" in r.stdout
    assert 0 < max(counts) <= limit
    assert host_ok
    assert s.alive
    # the forks run on after the worker's own loop was interrupted (as in a container);
    # closing the session ends them all
    bombs = tree.pids()
    await s.close()
    assert tree.pids() == []
    for pid in bombs:
        assert await wait_until_gone(pid)


# --------------------------------------------------------------------------- the tree's end


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_close_ends_every_descendant(make_session: Any, mode: str) -> None:
    """``start_new_session=True`` and fork + ``setsid`` children survived close() before."""
    s, marker = await with_escapees(make_session, mode)
    worker = s.pid
    assert worker is not None
    await s.close()
    assert marked(marker) == []
    assert await wait_until_gone(worker)


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_restart_ends_the_old_tree(make_session: Any, mode: str) -> None:
    s, marker = await with_escapees(make_session, mode)
    await s.restart(timeout=60)
    assert marked(marker) == []


_HOST = """
import asyncio, json, sys
from eager_rt.backends.local import LocalBackend

async def main():
    session = LocalBackend(**json.loads(sys.argv[1])).session()
    await session.start(timeout=60)
    with open(sys.argv[2]) as f:  # not in argv: the marker must be the escapees' alone
        code = f.read()
    result = await session.execute(code, timeout=60)
    home = (await session.execute("import os; print(os.environ['HOME'])", timeout=60)).stdout
    print(session.pid, result.status.value, home.strip(), flush=True)
    await asyncio.sleep(300)

asyncio.run(main())
"""


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_a_sigkilled_host_leaves_no_worker(tmp_path: Path, mode: str) -> None:
    """The worker dies with its host (parent-death signal); what it started, per mode."""
    _require(mode)
    marker = f"eager-rt-{uuid.uuid4().hex}"
    script = tmp_path / "host.py"
    script.write_text(_HOST)
    (tmp_path / "code.py").write_text(escapees(marker))
    host = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        json.dumps(MODES[mode]),
        str(tmp_path / "code.py"),
        stdout=asyncio.subprocess.PIPE,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    try:
        assert host.stdout is not None
        line = await asyncio.wait_for(host.stdout.readline(), T)
        worker, status, home = line.decode().split()
        assert status == "ok"
        assert await wait_for(lambda: len(marked(marker)) == 2)
    finally:
        host.kill()
        await host.wait()
    assert await wait_until_gone(int(worker))
    if mode != "bwrap":
        # the dead host's private HOME goes at the next worker start on this machine
        # (any host's: another test run may be the one that does)
        session = LocalBackend(cgroup=False).session()
        await session.start(timeout=60)
        await session.close()
        assert not os.path.exists(home)
    if mode == "bwrap":
        # the pid namespace ends with its init, which dies with bwrap
        assert await wait_for(lambda: marked(marker) == [])
    elif mode == "cgroup":
        # the group outlives the host; the next worker start on this machine empties it
        # (any host's: another test run may be the one that does)
        session = LocalBackend().session()
        await session.start(timeout=60)
        await session.close()
        assert await wait_for(lambda: marked(marker) == [])
    else:
        # without cgroup or namespace, nothing holds descendants that left the group
        assert len(marked(marker)) == 2
        for pid in marked(marker):
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- cgroup v2 files


async def test_cgroup_v2_layout_on_a_fake_hierarchy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The v2 files written and read (this machine's CI has v1; the names must still be right)."""
    base = tmp_path / "user.slice"
    base.mkdir()
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (base / "cgroup.subtree_control").write_text("memory pids\n")
    stale = base / "eager_rt.999999999.0"  # a host pid that cannot exist: a dead host's group
    stale.mkdir()
    monkeypatch.setattr(_cgroup, "ROOT", tmp_path)
    monkeypatch.setattr(_cgroup, "_own_paths", lambda: {"": "/user.slice"})
    tree = _cgroup.create(256 * MIB, 64)
    assert tree is not None and tree.version == 2 and tree.kind == "cgroup v2"
    group = tree.dirs["unified"]
    assert group.parent == base and group.name.startswith(f"eager_rt.{os.getpid()}.")
    assert (group / "memory.max").read_text() == str(256 * MIB)
    assert (group / "memory.swap.max").read_text() == "0"
    assert (group / "pids.max").read_text() == "64"
    assert not stale.exists()  # emptied and removed
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert tree.oom_kills() == 1
    (group / "cgroup.procs").write_text("")
    assert tree.pids() == []
    assert await tree.kill()
    assert (group / "cgroup.kill").read_text() == "1"
    for name in (
        "memory.max",
        "memory.swap.max",
        "pids.max",
        "memory.events",
        "cgroup.procs",
        "cgroup.kill",
    ):
        (group / name).unlink()
    tree.remove()
    assert not group.exists()
