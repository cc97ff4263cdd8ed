"""A Kernel Gateway that freezes or dies, under a running execution and between executions.

Issue 17, finding 12: a frozen gateway (SIGSTOP) made ``arun_stream`` raise
tornado's own ``HTTPTimeoutError`` after 55 s and ``close()`` or a new
session's ``start()`` raise a raw HTTP 599; leaving ``async with`` on a killed
gateway raised ``BackendError`` after ~5 s. Every gateway fault must end in a
``died`` result that says so, within about ``request_timeout`` (small here), and
``close()`` of a session whose gateway is gone must not raise.

Each test starts a gateway of its own: freezing or killing the shared one
would break the tests that use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Iterator

import pytest
from eager_rt.backends._jupyter_remote import GatewayDown, GatewayKernel
from eager_rt.backends.jupyter import JupyterBackend, JupyterSession

from eager_rt import arun_stream
from eager_rt.executor import BackendError, ExecResult, Status
from eager_rt.testing import paced
from tests.processes import wait_until_gone
from tests.provision.jupyter import Gateway, running_gateway

pytestmark = pytest.mark.anyio

#: seconds a gateway may leave a request unanswered in these tests
LIMIT = 2.0
#: a guard against hanging, far above what any step takes (not a timing claim)
GUARD = 90.0
BUSY = "import time\nprint('busy', flush=True)\ntime.sleep(600)\n"


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    """A gateway for this test alone, resumed (if frozen) before it is stopped."""
    with running_gateway() as gw:
        try:
            yield gw
        finally:
            if gw.process.poll() is None:
                os.kill(gw.process.pid, signal.SIGCONT)


def session_on(gateway: Gateway) -> JupyterSession:
    return JupyterBackend(url=gateway.url, token=gateway.token, request_timeout=LIMIT).session()


async def started(gateway: Gateway) -> JupyterSession:
    session = session_on(gateway)
    await session.start(timeout=120)
    return session


async def run_busy_then(session: JupyterSession, signum: int, pid: int) -> ExecResult:
    """Start code that runs for minutes; once it runs, send ``signum`` to the gateway."""
    running = asyncio.Event()
    task = asyncio.create_task(session.execute(BUSY, on_output=lambda o: running.set()))
    await asyncio.wait_for(running.wait(), GUARD)
    os.kill(pid, signum)
    return await asyncio.wait_for(task, GUARD)


async def until_dead(session: JupyterSession) -> None:
    while session.alive:
        await asyncio.sleep(0.05)


async def kernel_pid(session: JupyterSession) -> int:
    result = await session.execute("import os\nprint(os.getpid())\n", timeout=60)
    return int(result.stdout)


def frozen(gateway: Gateway, kernel_id: str) -> str:
    return f"the gateway at {gateway.url} did not answer GET /api/kernels/{kernel_id} within 2 s"


GIVEN_UP = "the kernel there and its state are given up"


def not_answering(gateway: Gateway) -> str:
    return f"the gateway at {gateway.url} is not answering (a later restart asks it again)"


# -- frozen ---------------------------------------------------------------------------


async def test_a_frozen_gateway_ends_the_running_execution_as_died(gateway: Gateway) -> None:
    session = await started(gateway)
    kernel_id = session.kernel.kernel_id
    try:
        result = await run_busy_then(session, signal.SIGSTOP, gateway.process.pid)
        assert result.status is Status.DIED
        assert result.state_lost
        assert result.stdout == "busy\n"  # what it printed before is kept
        assert result.detail == (
            f"{frozen(gateway, kernel_id)}; {GIVEN_UP}; "
            f"the restart failed: {not_answering(gateway)}"
        )
        assert not session.alive
        # a new session on the frozen gateway fails to start, saying why, within the limit
        other = session_on(gateway)
        with pytest.raises(BackendError) as refused:
            await asyncio.wait_for(other.start(), GUARD)
        assert str(refused.value) == (
            f"the gateway at {gateway.url} did not answer POST /api/kernels within 2 s"
        )
        await asyncio.wait_for(other.close(), GUARD)
        # the gateway comes back: the next execute restarts the kernel there
        os.kill(gateway.process.pid, signal.SIGCONT)
        again = await asyncio.wait_for(session.execute("print('back')", timeout=60), GUARD)
        assert again.status is Status.OK, again
        assert again.stdout == "back\n"
        assert again.state_lost and "had died while idle" in again.detail
    finally:
        await asyncio.wait_for(session.close(), GUARD)
    assert kernel_id not in gateway.kernel_ids()  # and close() deleted it


async def test_close_does_not_raise_or_hang_on_a_frozen_gateway(gateway: Gateway) -> None:
    session = await started(gateway)
    kernel_id = session.kernel.kernel_id
    result = await run_busy_then(session, signal.SIGSTOP, gateway.process.pid)
    assert result.status is Status.DIED
    await asyncio.wait_for(session.close(), GUARD)  # the gateway just failed: not asked again
    assert not session.alive
    os.kill(gateway.process.pid, signal.SIGCONT)
    # a frozen gateway could not be told to delete the kernel; it is still there
    assert kernel_id in gateway.kernel_ids()


async def test_a_frozen_gateway_is_noticed_while_idle(gateway: Gateway) -> None:
    session = await started(gateway)
    kernel_id = session.kernel.kernel_id
    try:
        await session.execute("kept = 1", timeout=60)
        os.kill(gateway.process.pid, signal.SIGSTOP)
        await asyncio.wait_for(until_dead(session), GUARD)  # noticed without any request
        result = await asyncio.wait_for(session.execute("print(kept)"), GUARD)
        assert result.status is Status.DIED
        assert result.state_lost
        assert result.detail == (
            f"the kernel had died while idle ({frozen(gateway, kernel_id)}; {GIVEN_UP}); "
            f"the restart failed: {not_answering(gateway)}"
        )
        os.kill(gateway.process.pid, signal.SIGCONT)
        # a gateway that failed to answer is asked again once request_timeout has passed
        await asyncio.sleep(LIMIT)
        again = await asyncio.wait_for(
            session.execute("print('kept' in globals())", timeout=60), GUARD
        )
        assert again.status is Status.OK, again
        assert again.stdout == "False\n"
        assert again.state_lost
    finally:
        await asyncio.wait_for(session.close(), GUARD)


async def test_interrupt_on_a_frozen_gateway_returns_and_the_execution_dies(
    gateway: Gateway,
) -> None:
    session = await started(gateway)
    try:
        running = asyncio.Event()
        task = asyncio.create_task(session.execute(BUSY, on_output=lambda o: running.set()))
        await asyncio.wait_for(running.wait(), GUARD)
        os.kill(gateway.process.pid, signal.SIGSTOP)
        await asyncio.wait_for(session.interrupt(), GUARD)  # does not raise
        result = await asyncio.wait_for(task, GUARD)
        assert result.status is Status.DIED
        assert result.detail.startswith(f"the gateway at {gateway.url} did not answer ")
        assert f"within 2 s; {GIVEN_UP}; the restart failed: " in result.detail
    finally:
        await asyncio.wait_for(session.close(), GUARD)


async def test_arun_stream_reports_a_frozen_gateway_as_died(gateway: Gateway) -> None:
    freeze = f"import os, signal\nos.kill({gateway.process.pid}, signal.SIGSTOP)\n"
    code = ["print('before')\n", freeze, "import time\ntime.sleep(600)\n", "print('never')\n"]
    after_block = False
    async with session_on(gateway) as session:
        result = await asyncio.wait_for(arun_stream(paced(code, tps=50), session), GUARD)
    after_block = True  # leaving the block neither raised nor hung
    assert after_block
    assert result.status == "died"
    assert result.stdout == "before\n"
    assert result.error is not None and result.error.kind == "died"
    assert result.error.evalue.startswith(f"the gateway at {gateway.url} did not answer GET")
    assert "never" not in result.stdout


# -- killed ---------------------------------------------------------------------------


def cut_off(gateway: Gateway) -> str:
    return f"cannot reach the gateway at {gateway.url}: "


async def test_a_killed_gateway_ends_the_running_execution_as_died(gateway: Gateway) -> None:
    after_block = False
    async with await started(gateway) as session:
        pid = await kernel_pid(session)
        result = await run_busy_then(session, signal.SIGKILL, gateway.process.pid)
    after_block = True  # close() on a gone gateway neither raised nor waited
    assert after_block
    assert result.status is Status.DIED
    assert result.state_lost
    assert result.stdout == "busy\n"
    assert result.detail.startswith(cut_off(gateway))
    assert f"; {GIVEN_UP}; the restart failed: " in result.detail
    # the kernel it ran on ends by itself once its gateway is gone
    assert await wait_until_gone(pid, within=GUARD)


async def test_a_killed_gateway_is_noticed_while_idle(gateway: Gateway) -> None:
    session = await started(gateway)
    try:
        os.kill(gateway.process.pid, signal.SIGKILL)
        await asyncio.wait_for(until_dead(session), GUARD)
        for _ in range(2):  # every execute tries the gateway again, and says what it found
            result = await asyncio.wait_for(session.execute("print(1)"), GUARD)
            assert result.status is Status.DIED
            assert result.state_lost
            assert result.detail.startswith(f"the kernel had died while idle ({cut_off(gateway)}")
            assert f"{GIVEN_UP}); the restart failed: " in result.detail
    finally:
        await asyncio.wait_for(session.close(), GUARD)
    assert not session.alive


# -- a server that never answers (no gateway needed) ----------------------------------


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A port whose connections the kernel accepts (from the backlog) and nobody answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


async def test_no_answer_is_gateway_down_on_every_path_and_close_is_quiet() -> None:
    with silent_server() as url:
        session = JupyterBackend(url=url, token="t", request_timeout=0.5).session()
        with pytest.raises(GatewayDown) as created:
            await asyncio.wait_for(session.start(), GUARD)
        assert (
            str(created.value)
            == f"the gateway at {url} did not answer POST /api/kernels within 0.5 s"
        )
        await asyncio.wait_for(session.close(), GUARD)

        kernel = GatewayKernel(url, token="t", request_timeout=0.5)
        kernel.kernel_id = "k1"  # as if created before the gateway froze
        with pytest.raises(GatewayDown) as connected:
            await asyncio.wait_for(kernel._connect(None), GUARD)
        assert str(connected.value) == (
            f"the gateway at {url} did not answer the websocket request within 0.5 s"
        )
        await asyncio.wait_for(kernel.close(), GUARD)
