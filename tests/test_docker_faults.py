"""The Docker engine going away under a session: restarted, stopped, unreachable.

Issue 17, finding 13: an idle session whose container was stopped by a
restart of dockerd reported "cause unknown (ConnectionError(ProtocolError(
'Connection aborted.', FileNotFoundError...)))". It must say that the engine
restarted (or could not be reached) and that the state was lost.

The shared engine is not restarted here (other tests use it): the session
reaches it through a unix-socket proxy this test kills (:mod:`tests.socket_proxy`).
Killing it is what a restart of the engine does to a session: every
connection closes at once, the attach stream with them (so the worker's stdin
closes and the worker ends), and the socket is gone until the engine is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from eager_rt.executor import Status
from tests.containers import docker_engine
from tests.provision.docker import TEST_IMAGE
from tests.socket_proxy import SocketProxy

pytestmark = pytest.mark.anyio

#: a guard against hanging, far above what any step takes (not a timing claim)
GUARD = 120.0
ENGINE_SOCKET = "/var/run/docker.sock"


@pytest.fixture
def engine() -> Iterator[Any]:
    """The real engine, asked directly (not through the proxy)."""
    with docker_engine(f"unix://{ENGINE_SOCKET}") as client:
        yield client


@pytest.fixture
def proxy(engine: Any, tmp_path: Path) -> Iterator[SocketProxy]:
    forwarder = SocketProxy(tmp_path / "engine.sock", ENGINE_SOCKET)
    forwarder.start()
    try:
        yield forwarder
    finally:
        forwarder.kill()


@pytest.fixture
async def session(proxy: SocketProxy) -> AsyncIterator[Any]:
    from eager_rt.backends.docker import DockerSession

    s = DockerSession(image=TEST_IMAGE, base_url=proxy.url)
    await s.start(timeout=GUARD)
    try:
        yield s
    finally:
        if not proxy.path.exists():
            proxy.start()  # so that close() can remove what is left
        await asyncio.wait_for(s.close(), GUARD)


async def until_dead(session: Any) -> None:
    while session.alive:
        await asyncio.sleep(0.05)


async def until_stopped(engine: Any, container: str) -> None:
    while (await asyncio.to_thread(engine.inspect, container))["State"]["Running"]:
        await asyncio.sleep(0.05)


def engine_lost(proxy: SocketProxy) -> str:
    return (
        f"the container's channel closed and the Docker engine at {proxy.url} could not be "
        "reached (No such file or directory): the engine restarted or stopped, which ends "
        "its containers, and the worker's state is lost"
    )


async def test_an_engine_restart_while_idle_says_so(
    session: Any, proxy: SocketProxy, engine: Any
) -> None:
    await session.execute("kept = 1", timeout=60)
    first = session.container_id
    proxy.kill()  # the engine goes away: the attach stream closes, the worker ends
    await asyncio.wait_for(until_dead(session), GUARD)
    proxy.start()  # and comes back
    result = await asyncio.wait_for(session.execute("print('kept' in globals())"), GUARD)
    assert result.status is Status.OK, result
    assert result.stdout == "False\n"
    assert result.state_lost
    assert (
        result.detail
        == f"the container had died while idle ({engine_lost(proxy)}) and was restarted"
    )
    assert session.container_id != first
    assert engine.inspect(first) is None  # the old container was removed on the restart


async def test_an_engine_gone_under_a_busy_execution_ends_it_as_died(
    session: Any, proxy: SocketProxy, engine: Any
) -> None:
    first = session.container_id
    running = asyncio.Event()
    task = asyncio.create_task(
        session.execute(
            "print('busy', flush=True)\nwhile True:\n    pass", on_output=lambda o: running.set()
        )
    )
    await asyncio.wait_for(running.wait(), GUARD)
    proxy.kill()  # and it stays away while the session tries to restart
    result = await asyncio.wait_for(task, GUARD)
    assert result.status is Status.DIED
    assert result.state_lost
    assert result.stdout == "busy\n"
    unreachable = f"the Docker engine at {proxy.url} cannot be reached (No such file or directory)"
    assert result.detail == f"{engine_lost(proxy)}; the restart failed: {unreachable}"
    assert not session.alive
    # the worker ends on its channel's end, busy as it is: the container stops
    await asyncio.wait_for(until_stopped(engine, first), GUARD)
    proxy.start()
    # it could not be removed while the engine was away; close() removes it now
    await asyncio.wait_for(session.close(), GUARD)
    assert engine.inspect(first) is None


async def test_a_container_the_engine_stopped_says_so(session: Any, engine: Any) -> None:
    """An engine that stops or restarts stops its containers as ``docker stop`` does."""
    await session.execute("kept = 1", timeout=60)
    await asyncio.to_thread(engine.api.stop, session.container_id, timeout=10)
    await asyncio.wait_for(until_dead(session), GUARD)
    result = await asyncio.wait_for(session.execute("print('kept' in globals())"), GUARD)
    assert result.status is Status.OK, result
    assert result.stdout == "False\n"
    assert result.state_lost
    assert result.detail == (
        "the container had died while idle (the container was killed by SIGTERM "
        "(docker stop, or the engine stopping or restarting) (exit code 143)) and was restarted"
    )
