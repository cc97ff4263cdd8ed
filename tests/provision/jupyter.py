"""The Jupyter backend, on local kernels and on a real Jupyter Kernel Gateway.

``jupyter`` needs ``jupyter_client`` and ``ipykernel``; ``jupyter-remote``
starts ``jupyter kernelgateway`` (PyPI ``jupyter_kernel_gateway``) once per test
session on a free loopback port, with an auth token, and stops it afterwards.
The gateway's restarter checks its kernels every ``time_to_dead`` seconds (3 by
default); the tests' gateway uses 1 s so that a kernel death is noticed quickly.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eager_rt.executor import Backend
from eager_rt.registry import get_backend, open_backend

from . import unavailable

BACKEND = "jupyter"
VARIANTS = {"jupyter": "jupyter_backend", "jupyter-remote": "jupyter_remote_backend"}

REQUIRE_VAR = "EAGER_RT_REQUIRE_JUPYTER"
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Gateway:
    """A running Kernel Gateway: where it listens and the token it demands."""

    url: str
    token: str
    process: subprocess.Popen[bytes]

    def get(self, path: str, token: str | None = None, timeout: float = 10.0) -> object:
        """GET ``path`` as JSON, with the gateway's token unless another one is given."""
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"token {token or self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def delete_kernel(self, kernel_id: str, timeout: float = 30.0) -> None:
        """Delete a kernel behind its session's back (to test that the session notices)."""
        request = urllib.request.Request(
            f"{self.url}/api/kernels/{kernel_id}",
            method="DELETE",
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout):
            pass

    def kernel_ids(self) -> set[str]:
        kernels = self.get("/api/kernels")
        assert isinstance(kernels, list)
        return {str(k["id"]) for k in kernels}


def _missing_jupyter() -> str | None:
    for module in ("jupyter_client", "ipykernel"):
        if importlib.util.find_spec(module) is None:
            return f"the {module} package is not installed (pip install 'eager_rt[jupyter]')"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_answering(
    url: str, token: str, process: subprocess.Popen[bytes], log: Path
) -> str | None:
    """None once the gateway at ``url`` answers an authorised request, else why it never will."""
    deadline = time.monotonic() + _START_TIMEOUT_S
    request = urllib.request.Request(url + "/api", headers={"Authorization": f"token {token}"})
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-800:]
            return f"the gateway exited with status {process.returncode}: {tail}"
        try:
            with urllib.request.urlopen(request, timeout=2.0) as response:
                if response.status == 200:
                    return None
        except urllib.error.HTTPError as exc:
            return f"the gateway answered {exc.code} to an authorised request"
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return f"the gateway did not answer at {url} within {_START_TIMEOUT_S:g} s"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # the gateway shuts its kernels down on SIGTERM
        try:
            process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_STOP_TIMEOUT_S)


@contextlib.contextmanager
def running_gateway(time_to_dead: float = 1.0) -> Iterator[Gateway]:
    """Start a Kernel Gateway on a free loopback port with a fresh token; stop it on exit.

    Skips (or fails, under ``EAGER_RT_REQUIRE_JUPYTER=1``) when it cannot start.
    The benchmarks use it too.
    """
    missing = _missing_jupyter() or (
        None
        if importlib.util.find_spec("kernel_gateway")
        else "the jupyter_kernel_gateway package is not installed"
    )
    if missing:
        unavailable("Jupyter Kernel Gateway", missing, REQUIRE_VAR)
    token = secrets.token_hex(16)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="eager_rt-gateway-") as tmp:
        log = Path(tmp) / "gateway.log"
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": tmp}
        command = [
            sys.executable,
            "-m",
            "kernel_gateway",
            "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={port}",
            "--KernelGatewayApp.port_retries=0",
            f"--KernelGatewayApp.auth_token={token}",
            "--JupyterWebsocketPersonality.list_kernels=True",
            f"--KernelRestarter.time_to_dead={time_to_dead}",
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        try:
            reason = _wait_until_answering(url, token, process, log)
            if reason is not None:
                unavailable("Jupyter Kernel Gateway", reason, REQUIRE_VAR)
            yield Gateway(url=url, token=token, process=process)
        finally:
            _stop(process)


@pytest.fixture(scope="session")
def kernel_gateway() -> Iterator[Gateway]:
    """A real Jupyter Kernel Gateway on loopback, for the whole test session."""
    with running_gateway() as gateway:
        yield gateway


@pytest.fixture
async def jupyter_backend() -> AsyncIterator[Backend]:
    missing = _missing_jupyter()
    if missing:
        unavailable("Jupyter kernels", missing, REQUIRE_VAR)
    backend = get_backend("jupyter")()
    try:
        yield backend
    finally:
        await backend.aclose()


@pytest.fixture
async def jupyter_remote_backend(kernel_gateway: Gateway) -> AsyncIterator[Backend]:
    backend = open_backend("jupyter", url=kernel_gateway.url, token=kernel_gateway.token)
    try:
        yield backend
    finally:
        await backend.aclose()
