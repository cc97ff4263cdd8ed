"""A local stand-in for E2B, so the unmodified ``e2b_code_interpreter`` SDK runs offline.

It answers the three services the SDK talks to when it creates, uses and
kills a sandbox: the control-plane API (``POST /v2/sandboxes``, ``DELETE
/sandboxes/{id}``), envd (``GET /health``) and the code-interpreter server
(``POST /execute`` streaming NDJSON, ``/contexts`` create / list / restart /
delete, ``GET /health``), with code run by real ipykernels, in sandboxes that
look like the code-interpreter template's from inside (``/home/user``, its
default contexts, its IPython start-up behaviour). See ``app.py`` for
the routes and where each was checked, ``kernel.py`` for the Jupyter message
translation, ``wire.py`` for the HTTP layer and its scripted faults.

:class:`LocalE2B` starts it as a subprocess and exposes the knobs tests need;
:meth:`LocalE2B.sdk_options` gives the keyword options that point the SDK at it
(``api_url`` for the control plane, ``sandbox_url`` for every sandbox port,
both real ``ConnectionConfig`` settings, so nothing in the SDK is patched).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from eager_rt.closing import Closing

__all__ = ["LocalE2B"]

ROOT = Path(__file__).resolve().parents[2]


class LocalE2B(Closing):
    """A running local E2B server process; use as a context manager."""

    api_key = "e2b_local_test_key"

    def __init__(
        self,
        *,
        keepalive_s: float = 5.0,
        delay_s: float = 0.0,
        create_delay_s: float = 0.0,
        idle_timeout_s: float = 600.0,
        start_timeout_s: float = 30.0,
        kernel_python: str | None = None,
    ) -> None:
        cmd = [
            sys.executable,
            "-m",
            "tests.e2b_server",
            "--api-key",
            self.api_key,
            "--keepalive",
            str(keepalive_s),
            "--delay",
            str(delay_s),
            "--create-delay",
            str(create_delay_s),
            "--idle-timeout",
            str(idle_timeout_s),
        ]
        if kernel_python is not None:  # the kernels' interpreter: the template's environment
            cmd += ["--kernel-python", kernel_python]
        env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
        self._proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
        )
        try:
            line = self._read_port_line(start_timeout_s)
            self.port = int(json.loads(line)["port"])
        except BaseException:
            self.close()
            raise
        self.url = f"http://127.0.0.1:{self.port}"
        self._admin = httpx.Client(base_url=self.url, timeout=30.0)

    def _read_port_line(self, timeout: float) -> str:
        import selectors

        assert self._proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise TimeoutError(f"local E2B server did not start within {timeout} s")
        line = self._proc.stdout.readline().decode()
        if not line:
            raise RuntimeError(f"local E2B server exited with {self._proc.wait(5)}")
        return line

    def sdk_options(self) -> dict[str, Any]:
        """Connection options for ``AsyncSandbox.create`` (and our backend) aimed at this server."""
        return {"api_key": self.api_key, "api_url": self.url, "sandbox_url": self.url}

    # -- test knobs ----------------------------------------------------------

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self._admin.get("/_admin/events").json()
        return [e for e in events if kind is None or e["event"] == kind]

    def fault(self, sandbox_id: str, kind: str, **params: Any) -> None:
        """Script a fault for the next ``/execute`` of ``sandbox_id``.

        ``http_502``: refused by the proxy, nothing runs. ``cut``
        (``after_lines``, ``reset``): the connection drops mid-body.
        ``stall`` (``after_lines``, ``seconds``): not a byte, not even a
        keepalive, for that long. ``slow`` (``seconds``): the cell produces
        nothing for that long, keepalives flowing. ``unexpected_end``
        (``after_lines``): the server loses its kernel connection (what the
        real server reports as ``UnexpectedEndOfExecution``). ``drop_end``
        (``after_lines``): the body ends cleanly without ``end_of_execution``.
        """
        body = {"sandbox_id": sandbox_id, "kind": kind, **params}
        self._admin.post("/_admin/faults", json=body).raise_for_status()

    def configure(self, **settings: float) -> None:
        """``delay_s`` (added round trip), ``create_delay_s``, ``keepalive_s``."""
        self._admin.post("/_admin/config", json=settings).raise_for_status()

    def kernels(self) -> dict[str, dict[str, int | None]]:
        """sandbox id -> context id -> kernel pid, for every live sandbox."""
        result: dict[str, dict[str, int | None]] = self._admin.get("/_admin/kernels").json()
        return result

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()  # the server stops when its stdin ends
            try:
                self._proc.wait(20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        admin = getattr(self, "_admin", None)
        if admin is not None:
            admin.close()
