"""Run E2B's own code-interpreter server on loopback, to check the backend against the real thing.

``tests.e2b_server`` reproduces E2B's protocols; this runs the original: the
``template/server`` of a checkout of e2b-dev/code-interpreter (FastAPI under
uvicorn) in front of a Jupyter Server, as a sandbox runs them, so that what
the backend relies on (tool calls announced as display results, replies
delivered through the default context) is proven against E2B's code and not
only against ours. The local server still plays the control plane::

    # /var/tmp/e2b-venv: its server's requirements and the template's kernel
    # packages as the checkout pins them (scripts/e2b-sdk-tests.sh makes it)
    python -m tests.e2b_server.upstream --source CHECKOUT --python /var/tmp/e2b-venv/bin/python
    # prints {"url": "http://127.0.0.1:49999"}; in another shell:
    EAGER_RT_E2B_UPSTREAM=http://127.0.0.1:49999 pytest tests/conformance -k e2b-upstream

What it sets up, and why: the server talks to ``localhost:8888`` (hard-coded
in its ``messaging.py``), so the Jupyter Server must listen there; its start-up
makes a ``python`` and a ``javascript`` context in ``/home/user``, so that
directory must exist and a kernel spec must answer to each name (the
JavaScript one is a Python kernel with a ``process.chdir`` stand-in, enough
for the server's ``cd``); ``E2B_LOCAL=1`` makes it skip asking envd for the
sandbox's variables; the kernels get the template's IPython settings and its
start-up scripts (``template/startup_scripts``, run from the checkout). It
serves until its stdin ends, then stops both servers and their kernels.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

JUPYTER_PORT = 8888  # fixed by the server's messaging.py
HOME = Path("/home/user")  # the contexts' working directory in the template
_START_S = 60.0
_STOP_S = 20.0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.e2b_server.upstream")
    parser.add_argument("--source", required=True, help="a checkout of e2b-dev/code-interpreter")
    parser.add_argument("--python", default=sys.executable, help="has the server's requirements")
    parser.add_argument("--port", type=int, default=49999, help="the code interpreter's port")
    return parser.parse_args(argv)


def _kernel_specs(root: Path, python: str) -> None:
    """``python`` and a ``javascript`` stand-in, both IPython kernels."""
    stand_in = "process = __import__('types').SimpleNamespace(chdir=lambda path: None)"
    specs = {
        "python": [],
        "javascript": [f"--IPKernelApp.exec_lines={stand_in}"],
    }
    for name, extra in specs.items():
        folder = root / "kernels" / name
        folder.mkdir(parents=True)
        argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}", *extra]
        spec = {"argv": argv, "display_name": name, "language": "python"}
        (folder / "kernel.json").write_text(json.dumps(spec))


def _wait(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited ({process.returncode}): {log.read_text()[-1500:]}")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=2.0) as response,
        ):
            if response.status < 500:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {_START_S:g} s: {log.read_text()[-1500:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT twice is how a Jupyter Server shuts down with its kernels; kill as a last resort."""
    for sig in (signal.SIGINT, signal.SIGINT, signal.SIGTERM):
        if process.poll() is not None:
            return
        process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(_STOP_S / 3)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(_STOP_S)


def serve(args: argparse.Namespace) -> None:
    template = Path(args.source) / "template"
    server_dir = template / "server"
    if not (server_dir / "main.py").exists():
        raise SystemExit(f"{args.source} is not a checkout of e2b-dev/code-interpreter")
    HOME.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="eager_rt-e2b-upstream-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        _kernel_specs(work / "jupyter", args.python)
        profile = work / "ipython" / "profile_default"
        profile.mkdir(parents=True)
        shutil.copy(template / "ipython_kernel_config.py", profile)
        shutil.copytree(template / "startup_scripts", profile / "startup")
        env = {
            **os.environ,
            "JUPYTER_PATH": str(work / "jupyter"),
            "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
            "IPYTHONDIR": str(work / "ipython"),
            "E2B_LOCAL": "1",
        }
        jupyter_log = work / "jupyter.log"
        with jupyter_log.open("wb") as out:
            jupyter = subprocess.Popen(
                [
                    args.python,
                    "-m",
                    "jupyter_server",
                    f"--config={template / 'jupyter_server_config.py'}",
                    "--IdentityProvider.token=",
                    "--ServerApp.ip=127.0.0.1",
                    f"--ServerApp.port={JUPYTER_PORT}",
                    "--ServerApp.port_retries=0",
                    "--no-browser",
                ],
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        processes.append(jupyter)
        _wait(f"http://127.0.0.1:{JUPYTER_PORT}/api", jupyter, jupyter_log)
        server_log = work / "server.log"
        with server_log.open("wb") as out:
            server = subprocess.Popen(
                [
                    args.python,
                    "-m",
                    "uvicorn",
                    "main:app",
                    "--host=127.0.0.1",
                    f"--port={args.port}",
                    "--workers=1",
                    "--no-access-log",
                    "--timeout-keep-alive=640",
                ],
                cwd=server_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        processes.insert(0, server)
        url = f"http://127.0.0.1:{args.port}"
        _wait(url + "/health", server, server_log)
        print(json.dumps({"url": url, "logs": str(work)}), flush=True)
        # SIGTERM too ends in the clean-up below: the servers run in sessions of
        # their own and would outlive this process
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.buffer.read()
    finally:
        for process in processes:
            _stop(process)
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    serve(_parse(argv))


if __name__ == "__main__":
    main()
