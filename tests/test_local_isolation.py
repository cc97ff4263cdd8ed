"""What the local backend keeps from the code (issue 17, finding 4, and the bwrap sandbox).

A plain worker gets a minimal environment and a private ``HOME``, and runs in
its own session, but it is a process of this user on this machine: it sees
the host's files and processes and may signal them (docs/isolation.md). The
``isolation="bwrap"`` sandbox is tested here against the escapes the Docker
backend's tests try: network, file system, the host's processes and secrets.
"""

from __future__ import annotations

import os
import signal
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from eager_rt.backends.local import LocalBackend, LocalSession

from eager_rt.executor import BackendError, Status
from tests import escapes
from tests.local_sessions import MakeSession, local_sessions
from tests.provision.bwrap import require_bwrap

pytestmark = pytest.mark.anyio

T = 60.0


@pytest.fixture
async def make_session() -> AsyncIterator[MakeSession]:
    async with local_sessions() as make:
        yield make


@pytest.fixture
async def sandboxed(make_session: Any) -> LocalSession:
    require_bwrap()
    session: LocalSession = await make_session(isolation="bwrap")
    return session


ENVIRON = "import os, json\nprint(json.dumps(dict(os.environ)))"


async def _environ(session: LocalSession) -> dict[str, str]:
    import json

    r = await session.execute(ENVIRON, timeout=T)
    assert r.status is Status.OK, r
    result: dict[str, str] = json.loads(r.stdout)
    return result


# --------------------------------------------------------------------------- environment


@pytest.mark.parametrize("isolation", [None, "bwrap"])
async def test_host_secrets_in_the_environment_do_not_reach_the_code(
    make_session: Any, monkeypatch: pytest.MonkeyPatch, isolation: str | None
) -> None:
    if isolation:
        require_bwrap()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-secret")
    monkeypatch.setenv("LC_EAGER_RT_TEST", "locale-ish")
    monkeypatch.setenv("PYTHONEAGERRTTEST", "1")
    s = await make_session(isolation=isolation)
    env = await _environ(s)
    assert "sk-host-secret" not in str(env) and "host-secret" not in str(env)
    assert env["PATH"] == os.environ["PATH"]
    assert env["LC_EAGER_RT_TEST"] == "locale-ish" and env["PYTHONEAGERRTTEST"] == "1"
    assert env["HOME"] != os.path.expanduser("~")
    allowed = {"PATH", "HOME", "MPLBACKEND", "MPLCONFIGDIR", "PWD", "TMPDIR"}
    assert {k for k in env if not k.startswith(("LC_", "LANG", "PYTHON", "SSL_"))} <= allowed


async def test_inherit_env_and_env_pass_more(
    make_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wanted")
    monkeypatch.setenv("EAGER_RT_A", "a")
    monkeypatch.setenv("EAGER_RT_B", "b")
    s = await make_session(inherit_env=["OPENAI_API_KEY", "EAGER_RT_*"], env={"EXTRA": "x"})
    env = await _environ(s)
    assert env["OPENAI_API_KEY"] == "sk-wanted"
    assert (env["EAGER_RT_A"], env["EAGER_RT_B"], env["EXTRA"]) == ("a", "b", "x")
    everything = await make_session(inherit_env=["*"])
    env = await _environ(everything)
    assert env["OPENAI_API_KEY"] == "sk-wanted" and env["HOME"] == os.environ["HOME"]
    with pytest.raises(TypeError, match="list of names"):
        LocalBackend(inherit_env="OPENAI_API_KEY")


async def test_home_is_private_and_removed_at_close(make_session: Any) -> None:
    s = await make_session()
    home = (await _environ(s))["HOME"]
    r = await s.execute("import os\nopen(os.path.expanduser('~/note'), 'w').write('x')", timeout=T)
    assert r.status is Status.OK
    assert os.path.isfile(os.path.join(home, "note"))
    await s.close()
    assert not os.path.exists(home)


# --------------------------------------------------------------------------- signals


async def test_plain_worker_has_its_own_session_but_may_signal_its_host(
    make_session: Any,
) -> None:
    """What holds without a sandbox: own session and group, and the same user as the host."""
    s = await make_session()
    r = await s.execute(
        "import os\nos.kill(os.getppid(), 0)\nprint(os.getsid(0) == os.getpid(), os.getppid())",
        timeout=T,
    )
    assert r.stdout == f"True {os.getpid()}\n"  # so os.kill(os.getppid(), 9) would end us


async def test_sandboxed_code_cannot_see_or_kill_its_host(sandboxed: LocalSession) -> None:
    host = os.getpid()
    code = textwrap.dedent(
        f"""
        import os
        print(os.getpid(), os.getppid(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))
        try:
            os.kill({host}, 0)
            print('host visible')
        except ProcessLookupError:
            print('host invisible')
        try:
            open('/proc/{host}/environ').read()
            print('environ readable')
        except OSError as exc:
            print('environ unreadable', type(exc).__name__)
        try:
            os.kill(os.getppid(), 9)
            print('parent signalled')
        except OSError as exc:
            print('parent refused', type(exc).__name__)
        """
    )
    r = await sandboxed.execute(code, timeout=T)
    assert r.status is Status.OK, r
    ids, visible, environ, parent = r.stdout.splitlines()
    assert ids.startswith("2 1 [1, 2")  # only the namespace's own processes
    assert visible == "host invisible"
    assert environ == "environ unreadable FileNotFoundError"  # the host's secrets stay home
    # the namespace's init ignores signals from inside: nothing happens to it or to us
    assert parent in {"parent signalled", "parent refused PermissionError"}
    again = await sandboxed.execute("print('still here')", timeout=T)
    assert again.stdout == "still here\n" and sandboxed.alive


@pytest.mark.parametrize("cgroup", [None, False])
async def test_interrupt_reaches_the_sandboxed_worker(
    make_session: Any, cgroup: bool | None
) -> None:
    import asyncio

    require_bwrap()
    sandboxed = await make_session(isolation="bwrap", cgroup=cgroup)
    task = asyncio.ensure_future(
        sandboxed.execute("import time\nx = 1\nprint('on', flush=True)\ntime.sleep(60)", timeout=T)
    )
    await asyncio.sleep(1.0)
    await sandboxed.interrupt()
    r = await task
    assert r.status is Status.INTERRUPTED, r
    kept = await sandboxed.execute("print(x)", timeout=T)
    assert kept.stdout == "1\n"


# --------------------------------------------------------------------------- escapes


async def test_sandbox_has_no_network(sandboxed: LocalSession) -> None:
    with escapes.host_server() as server:
        targets = [escapes.host_ip(), "127.0.0.1", "example.com"]
        code = escapes.connect_attempts(targets, server.port)
        r = await sandboxed.execute(code, timeout=T)
        assert not server.reached()  # the host's server never saw the sandbox
    assert r.status is Status.OK, r
    lines = r.stdout.splitlines()
    assert lines[0] == "['lo']"
    assert escapes.connected(r.stdout) == []
    assert any(line.startswith("refused example.com") for line in lines)  # no DNS either


async def test_sandbox_sees_the_host_read_only(make_session: Any, tmp_path: Path) -> None:
    require_bwrap()
    marker = Path.cwd() / f".eager-rt-marker-{os.getpid()}"
    outside = ["/etc/passwd", "/usr/lib/evil.py", "/evil", "/root/evil", "/run/evil", str(marker)]
    code = escapes.write_attempts(outside, ["/sandbox/ok.txt", "/tmp/ok.txt", "relative.txt"])
    code += "print(os.getcwd(), os.environ['HOME'], sorted(os.listdir('.')))\n"
    s = await make_session(isolation="bwrap")
    r = await s.execute(code, timeout=T)
    assert r.status is Status.OK, r
    lines = r.stdout.splitlines()
    assert escapes.denied(r.stdout) == outside
    assert lines[-1] == "/sandbox /sandbox ['ok.txt', 'relative.txt']"
    assert not marker.exists()
    # fresh at every start: nothing of the last worker's files
    await s.restart(timeout=60)
    r = await s.execute("import os\nprint(os.listdir('.'), os.listdir('/tmp'))", timeout=T)
    assert r.stdout.startswith("[] ")


@pytest.fixture
def host_secrets() -> Any:
    """A directory of secrets outside /tmp (the sandbox has a /tmp of its own)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=".eager-rt-secrets-", dir=Path(__file__).parent))
    (path / "token").write_text("host-secret")
    try:
        yield path
    finally:
        shutil.rmtree(path)


async def test_sandbox_hides_host_sockets_and_secrets(
    make_session: Any, host_secrets: Path
) -> None:
    require_bwrap()
    code = textwrap.dedent(
        f"""
        import os
        print(sorted(os.listdir('/run')), os.path.exists('/var/run/docker.sock'))
        print(os.listdir({str(host_secrets)!r}))
        try:
            print(repr(open('/etc/shadow').read()))
        except OSError as exc:
            print('unreadable', exc.strerror)
        """
    )
    shown = await make_session(isolation="bwrap")
    r = await shown.execute(code, timeout=T)
    assert r.stdout.splitlines()[1] == "['token']"  # read-only, but there
    s = await make_session(isolation="bwrap", hide=[str(host_secrets), "/etc/shadow"])
    r = await s.execute(code, timeout=T)
    assert r.status is Status.OK, r
    run, hidden, shadow = r.stdout.splitlines()
    assert run == "[] False"  # the host's daemons' sockets (docker.sock) are not there
    assert hidden == "[]"
    assert shadow in {"''", "unreadable Permission denied"}


async def test_sandbox_copies_cwd_in_and_never_writes_back(
    make_session: Any, tmp_path: Path
) -> None:
    require_bwrap()
    (tmp_path / "input.txt").write_text("from the host")
    s = await make_session(isolation="bwrap", cwd=tmp_path)
    r = await s.execute(
        "print(open('input.txt').read())\nopen('input.txt', 'w').write('changed')", timeout=T
    )
    assert r.stdout == "from the host\n", r
    assert (tmp_path / "input.txt").read_text() == "from the host"


async def test_sandbox_runs_numpy_pandas_and_figures(sandboxed: LocalSession) -> None:
    code = textwrap.dedent(
        """
        import numpy as np, pandas as pd, matplotlib.pyplot as plt
        df = pd.DataFrame({'x': np.arange(4)})
        plt.plot(df.x)
        plt.show()
        print(int(df.x.sum()))
        """
    )
    r = await sandboxed.execute(code, timeout=T)
    assert r.status is Status.OK, r
    assert r.stdout == "6\n"
    assert any("image/png" in o.data for o in r.outputs if o.data)


async def test_sandbox_options_are_checked_at_construction() -> None:
    with pytest.raises(ValueError, match="only with isolation='bwrap'"):
        LocalBackend(network=True)
    with pytest.raises(ValueError, match="top-level directory"):
        LocalBackend(isolation="bwrap", workdir="/home/user")
    with pytest.raises(ValueError, match="isolation"):
        LocalBackend(isolation="docker")


async def test_network_option_keeps_the_hosts_network(make_session: Any) -> None:
    require_bwrap()
    s = await make_session(isolation="bwrap", network=True)
    r = await s.execute(
        "import socket\nprint(len([n for _, n in socket.if_nameindex()]) > 1)", timeout=T
    )
    assert r.stdout == "True\n", r


def test_signal_words() -> None:
    # bwrap exits 128 + n for a worker killed by signal n; the detail names the signal
    from eager_rt.backends._bwrap import Sandbox
    from eager_rt.backends.local import LocalWorker

    worker = LocalWorker(
        cwd=None, env={}, memory_limit=None, pids_limit=None, cgroup=False, sandbox=Sandbox()
    )
    assert worker.describe_returncode(128 + signal.SIGKILL) == (
        "the worker was killed by SIGKILL (out of memory?)"
    )
    assert worker.describe_returncode(3) == "the worker exited with code 3"


async def test_sandbox_runs_a_virtualenv_under_tmp(make_session: Any, tmp_path: Path) -> None:
    """The sandbox has its own /tmp: an interpreter there is bound where it is, read-only."""
    require_bwrap()
    import venv

    venv.EnvBuilder(with_pip=False).create(tmp_path / "env")
    python = tmp_path / "env" / "bin" / "python"
    s = await make_session(isolation="bwrap", python=str(python))
    r = await s.execute("import sys\nprint(sys.prefix)", timeout=T)
    assert r.status is Status.OK, r
    assert os.path.realpath(r.stdout.strip()) == os.path.realpath(tmp_path / "env")


async def test_sandbox_without_bwrap_fails_to_start_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from eager_rt.backends import _bwrap

    monkeypatch.setattr(_bwrap, "bwrap_path", lambda: None)
    session = LocalBackend(isolation="bwrap").session()
    with pytest.raises(BackendError, match=r"scripts/setup-bwrap\.sh"):
        await session.start(timeout=60)
    await session.close()
