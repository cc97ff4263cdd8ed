"""One code context of the local E2B server: a real ipykernel driven over ZMQ.

The real code-interpreter server (``template/server/messaging.py`` in
e2b-dev/code-interpreter) talks to a Jupyter Server kernel over its websocket
and turns Jupyter messages into the NDJSON items of ``POST /execute``. This
module does the same translation against a kernel started with
``jupyter_client``, keeping the real server's rules:

* one execution at a time per context (a lock held while the stream runs);
* ``execute_input`` -> ``number_of_executions``; ``stream`` -> ``stdout`` /
  ``stderr`` with the message date as timestamp; ``display_data`` and
  ``execute_result`` -> ``result`` (with ``is_main_result``); the first
  ``error`` (or an error ``execute_reply``) -> ``error`` with the traceback
  lines joined; ``abort`` -> ``ExecutionAborted``; ``idle`` ends it;
* a keepalive item whenever nothing came for ``keepalive_s`` seconds;
* the sandbox's environment variables are prepended, as ``os.environ``
  assignments, to the first execution of a context, and per-request variables
  to that request (and removed again by a silent execution afterwards);
* a kernel that dies is restarted, and the running execution gets a
  ``ContextRestarting`` error (what Jupyter's restarter makes the real server
  report); executions sent meanwhile wait for the new kernel (Jupyter queues
  them), and a restart asked for meanwhile is refused, which leaves the
  context unusable, as E2B's server does (it closed its kernel connection
  before Jupyter refused);
* a client that goes away interrupts the kernel.

The kernel runs with the template's IPython settings (``NoColor`` tracebacks,
no sequence truncation) and the template's start-up behaviour
(``startup.py``: ``e2b/data``, ``e2b/chart`` and JSON formatters, images
displayed when saved). A context's kernel starts at its first use, so the
default contexts a sandbox lists from the start cost nothing until used.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

__all__ = ["REAL_HOME", "KernelContext", "kernel_specs"]

#: the working directory of a sandbox's contexts, and their ``HOME``
REAL_HOME = "/home/user"
KERNEL_NAME = "e2b-python"

STARTUP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "startup.py")
KERNEL_ARGS = [
    "--InteractiveShell.colors=NoColor",
    "--PlainTextFormatter.max_seq_length=0",
    "--HistoryManager.enabled=False",
    f"--IPKernelApp.exec_files={STARTUP}",
]
NOT_SERVED = "the local E2B server runs Python kernels only; {language} is listed, not served"

# Result keys the server lifts out of a MIME bundle (template/server/api/models/result.py).
_RESULT_KEYS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
    "e2b/data": "data",
    "e2b/chart": "chart",
}

_END = {"type": "end_of_execution"}
_UNEXPECTED_END = {"type": "unexpected_end_of_execution"}


def result_item(data: dict[str, Any], is_main_result: bool) -> dict[str, Any]:
    """A ``result`` item the way the real server's pydantic model serializes one."""
    data = dict(data)
    item: dict[str, Any] = {"type": "result"}
    for mime, key in _RESULT_KEYS.items():
        value = data.pop(mime, None)
        quoted = isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] in "'\""
        if key == "text" and quoted:
            value = value[1:-1]  # the server strips one layer of quotes
        if value is not None:
            item[key] = value
    item["extra"] = data
    item["is_main_result"] = is_main_result
    return item


def _error(name: str, value: str, traceback: str = "") -> dict[str, Any]:
    return {"type": "error", "name": name, "value": value, "traceback": traceback}


@dataclass
class _Execution:
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    in_background: bool = False
    input_accepted: bool = False
    errored: bool = False


def _env_snippet(env: dict[str, str]) -> str:
    return "\n".join(f"import os; os.environ[{k!r}] = {v!r}" for k, v in env.items())


class KernelContext:
    """A context id, a language, a cwd, and the kernel behind them."""

    def __init__(
        self,
        cwd: str,
        global_env: dict[str, str],
        keepalive_s: float,
        on_event: Callable[[str, dict[str, Any]], None],
        *,
        home: str,
        specs: KernelSpecManager,
        language: str = "python",
    ) -> None:
        self.id = str(uuid.uuid4())
        self.language = language
        self.cwd = cwd
        self.home = home
        #: a restart was refused while Jupyter restarted the kernel: the context is lost
        self.broken = False
        self._started = False
        self._start_lock = asyncio.Lock()
        self._up = asyncio.Event()  # the kernel answers: executions may be sent
        self.keepalive_s = keepalive_s
        self._sandbox_env = global_env
        self._global_env_sent = False
        self._on_event = on_event
        self._km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
        self._namespaced = bool(specs.get_kernel_spec(KERNEL_NAME).metadata.get("home_namespace"))
        self._kc: Any = None
        self._lock = asyncio.Lock()
        self._executions: dict[str, _Execution] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._cleanup: asyncio.Task[None] | None = None
        self._restarting = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------

    @property
    def restarting(self) -> bool:
        """Jupyter is bringing a dead kernel back (a restart asked for now is refused)."""
        return self._restarting

    async def ensure_started(self) -> None:
        """Start the kernel unless it runs: contexts are listed at once, started at first use."""
        if self.language != "python":
            raise RuntimeError(NOT_SERVED.format(language=self.language))
        async with self._start_lock:
            if self._started or self._closed:
                return
            await self._start()
            self._started = True
            self._on_event("context_started", {"context_id": self.id, "pid": self.pid})

    async def _start(self) -> None:
        home = self.home
        env = {k: v for k, v in os.environ.items() if not k.startswith(("E2B_", "EAGER_RT_"))}
        env["HOME"] = REAL_HOME if self._namespaced else home
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("MPLBACKEND", None)
        # the spec's {cwd} is the sandbox's home: mounted on /home/user when namespaced
        await self._km.start_kernel(extra_arguments=KERNEL_ARGS, cwd=home, env=env)
        await self._connect()
        self._up.set()
        self._tasks.append(asyncio.ensure_future(self._watch()))
        if self.cwd != home:
            await self._silent(f"%cd {self.cwd}")

    async def _connect(self) -> None:
        self._kc = self._km.client()
        self._kc.start_channels()
        await self._kc.wait_for_ready(timeout=120)
        for reader in (self._read_iopub, self._read_shell):
            self._tasks.append(asyncio.ensure_future(reader(self._kc)))

    async def _disconnect(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._kc is not None:
            self._kc.stop_channels()
            self._kc = None

    async def restart(self) -> None:
        """``POST /contexts/{id}/restart``: a fresh kernel, the same id, a new connection."""
        if not self._started:
            await self.ensure_started()
            return
        await self._disconnect()
        self._fail_running(_error("ContextRestarting", "Context was restarted"), _UNEXPECTED_END)
        await self._km.restart_kernel(now=True)
        self._global_env_sent = False  # the real server makes a new websocket object
        await self._connect()
        self._tasks.append(asyncio.ensure_future(self._watch()))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._disconnect()
        if self._cleanup is not None:
            self._cleanup.cancel()
        self._fail_running(None, _UNEXPECTED_END)
        if self._started:
            with contextlib.suppress(Exception):
                await self._km.shutdown_kernel(now=True)

    async def interrupt(self) -> None:
        self._on_event("interrupt", {"context_id": self.id})
        with contextlib.suppress(Exception):
            await self._km.interrupt_kernel()

    def lose_connection(self) -> None:
        """What the real server does when its kernel websocket drops mid-execution.

        The running execution gets a ``WebSocketError`` and then ends with
        ``UnexpectedEndOfExecution``; the kernel itself is not told and keeps
        running the code.
        """
        self._on_event("connection_lost", {"context_id": self.id})
        for msg_id in list(self._executions):
            execution = self._executions.pop(msg_id)
            execution.queue.put_nowait(
                _error(
                    "WebSocketError",
                    "The connections was lost, rerun the code to get the results",  # sic
                )
            )
            execution.queue.put_nowait(_UNEXPECTED_END)

    @property
    def pid(self) -> int | None:
        provisioner = self._km.provisioner
        process = getattr(provisioner, "process", None)
        return None if process is None else int(process.pid)

    def _fail_running(self, error: dict[str, Any] | None, end: dict[str, Any]) -> None:
        for execution in self._executions.values():
            if error is not None:
                execution.queue.put_nowait(error)
            execution.queue.put_nowait(end)

    async def _watch(self) -> None:
        """Jupyter's restarter in miniature: a dead kernel is reported and replaced."""
        while True:
            await asyncio.sleep(0.1)
            if self._restarting or await self._km.is_alive():
                continue
            self._restarting = True
            self._up.clear()
            try:
                self._on_event("kernel_died", {"context_id": self.id})
                self._fail_running(_error("ContextRestarting", "Context was restarted"), _END)
                await self._km.restart_kernel(now=True)
                await self._nudge()
            finally:
                self._restarting = False
                self._up.set()
            self._on_event("kernel_restarted", {"context_id": self.id, "pid": self.pid})

    async def _nudge(self) -> None:
        """Until the new kernel answers on iopub too (what Jupyter Server's nudge makes sure of).

        Its ports are the old ones, so the channels reconnect by themselves;
        a ``kernel_info`` request whose busy and idle come back on iopub shows
        that they did, and that no execution's messages would be missed.
        """
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            msg_id = self._kc.kernel_info()
            self._executions[msg_id] = _Execution(in_background=True)
            try:
                ended = await asyncio.wait_for(self._executions[msg_id].queue.get(), 0.5)
                if ended is _END:
                    return
            except (TimeoutError, asyncio.TimeoutError):  # noqa: UP041 - distinct on 3.10
                continue
            finally:
                self._executions.pop(msg_id, None)

    # -- messages ----------------------------------------------------------

    async def _read_iopub(self, kc: Any) -> None:
        while True:
            msg = await kc.get_iopub_msg()
            self._route(msg)

    async def _read_shell(self, kc: Any) -> None:
        while True:
            msg = await kc.get_shell_msg()
            self._route(msg)

    def _route(self, msg: dict[str, Any]) -> None:
        parent = msg.get("parent_header", {}).get("msg_id")
        execution = self._executions.get(parent) if parent else None
        if execution is None:
            return
        put = execution.queue.put_nowait
        kind = msg["msg_type"]
        content = msg["content"]
        if kind == "error":
            if not execution.errored:
                execution.errored = True
                put(_error(content["ename"], content["evalue"], "".join(content["traceback"])))
        elif kind == "stream":
            date = msg["header"]["date"]
            stamp = date.isoformat() if isinstance(date, datetime.datetime) else str(date)
            put({"type": content["name"], "text": content["text"], "timestamp": stamp})
        elif kind in ("display_data", "execute_result"):
            put(result_item(content["data"], kind == "execute_result"))
        elif kind == "status":
            state = content["execution_state"]
            if state == "busy" and execution.in_background:
                execution.input_accepted = True
            elif state == "idle" and execution.input_accepted:
                put(_END)
        elif kind == "execute_reply":
            status = content["status"]
            if status == "error" and not execution.errored:
                execution.errored = True
                put(
                    _error(
                        content.get("ename", ""),
                        content.get("evalue", ""),
                        "".join(content.get("traceback", [])),
                    )
                )
            elif status == "abort":  # sic: ipykernel says "aborted", which the real server misses
                put(_error("ExecutionAborted", "Execution was aborted"))
                put(_END)
        elif kind == "execute_input":
            put({"type": "number_of_executions", "execution_count": content["execution_count"]})
            execution.input_accepted = True

    async def _items(self, msg_id: str) -> AsyncIterator[dict[str, Any]]:
        queue = self._executions[msg_id].queue
        while True:
            # Not wait_for: on 3.11 it can swallow a cancellation that lands
            # together with its timeout, and a cancelled stream must stop.
            getter = asyncio.ensure_future(queue.get())
            try:
                done, _ = await asyncio.wait({getter}, timeout=self.keepalive_s)
            finally:
                if not getter.done():
                    getter.cancel()
            if not done:
                yield {"type": "keepalive"}
                continue
            item = getter.result()
            if item is _END or item.get("type") == "end_of_execution":
                return
            if item.get("type") == "unexpected_end_of_execution":
                yield _error(
                    "UnexpectedEndOfExecution",
                    "Connection to the execution was closed before the execution was finished",
                )
                return
            yield item

    def _send(self, code: str, silent: bool) -> str:
        msg_id: str = self._kc.execute(
            code, silent=silent, store_history=True, allow_stdin=False, stop_on_error=True
        )
        return msg_id

    async def _silent(self, code: str) -> None:
        msg_id = self._send(code, silent=True)
        self._executions[msg_id] = _Execution(in_background=True)
        try:
            async for _item in self._items(msg_id):
                pass
        finally:
            self._executions.pop(msg_id, None)

    async def execute(
        self, code: str, env_vars: dict[str, str] | None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The items of one execution, without the final ``end_of_execution`` line."""
        async with self._lock:
            await self.ensure_started()
            await self._up.wait()  # Jupyter queues what comes while it restarts the kernel
            if self._cleanup is not None:
                with contextlib.suppress(Exception):
                    await self._cleanup
                self._cleanup = None
            global_snippet = ""
            if not self._global_env_sent:
                self._global_env_sent = True
                global_snippet = _env_snippet(self._sandbox_env)
            env_snippet = _env_snippet(env_vars) if env_vars else ""
            if global_snippet or env_snippet:
                # Same layout as the real server, blank line included: user
                # code of this execution starts that many lines further down.
                indent = _indentation(code)
                prefix = "\n".join(
                    indent + line if line.strip() else line
                    for line in f"{global_snippet}\n{env_snippet}".split("\n")
                )
                code = f"{prefix}\n{code}"
            msg_id = self._send(code, silent=False)
            self._executions[msg_id] = _Execution()
            try:
                async for item in self._items(msg_id):
                    yield item
            except (asyncio.CancelledError, GeneratorExit):
                # The client went away: interrupt so the next execution is not
                # stuck behind this one (what the real server does since #213).
                await asyncio.shield(self.interrupt())
                raise
            finally:
                self._executions.pop(msg_id, None)
            if env_vars:
                self._cleanup = asyncio.ensure_future(self._reset_env(env_vars))

    async def _reset_env(self, env_vars: dict[str, str]) -> None:
        lines = []
        for key in env_vars:
            if key in self._sandbox_env:
                lines.append(_env_snippet({key: self._sandbox_env[key]}))
            else:
                lines.append(f"import os; del os.environ[{key!r}]")
        await self._silent("\n".join(lines))


def _indentation(code: str) -> str:
    for line in code.split("\n"):
        if line.strip():
            return line[: len(line) - len(line.lstrip())]
    return ""


def kernel_specs(root: str, python: str) -> KernelSpecManager:
    """The one kernel spec of the server's contexts, written under ``root``.

    Its kernels run on ``python`` (the E2B template's own environment, when a
    test wants its package versions). Where bubblewrap can make a mount
    namespace, each kernel gets its sandbox's home mounted on ``/home/user``,
    so that the working directory reads as in a real sandbox while every
    sandbox keeps its own files (``/home`` is a fresh tmpfs in there with the
    host's other entries bound back); elsewhere the kernel runs in that home
    under its own path.
    """
    launch = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    prefix = _home_namespace()
    spec = {
        "argv": [*prefix, *launch],
        "display_name": "Python (local E2B)",
        "language": "python",
        "metadata": {"home_namespace": bool(prefix)},
    }
    folder = os.path.join(root, "kernels", KERNEL_NAME)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "kernel.json"), "w") as out:
        json.dump(spec, out)
    return KernelSpecManager(kernel_dirs=[os.path.join(root, "kernels")])


def _home_namespace() -> list[str]:
    """The bubblewrap prefix that mounts the kernel's cwd on ``/home/user``, or [] if none works."""
    bwrap = shutil.which("bwrap")
    if bwrap is None or os.environ.get("EAGER_RT_E2B_NO_NAMESPACE"):
        return []
    others = [] if not os.path.isdir("/home") else sorted(os.listdir("/home"))
    binds = [arg for e in others if e != "user" for arg in ("--bind", f"/home/{e}", f"/home/{e}")]
    # Jupyter interrupts a kernel by SIGINT to its process group: bwrap must
    # not die of it (taking the kernel with it), so it starts with SIGINT
    # ignored; ipykernel sets its own handler while a cell runs.
    keep_on_sigint = ["/bin/sh", "-c", 'trap "" INT; exec "$0" "$@"']
    prefix = [*keep_on_sigint, bwrap, "--dev-bind", "/", "/", "--tmpfs", "/home", *binds]
    prefix += ["--bind", "{cwd}", REAL_HOME, "--chdir", REAL_HOME, "--die-with-parent"]
    probe = [a.replace("{cwd}", tempfile.gettempdir()) for a in prefix]
    try:
        done = subprocess.run([*probe, "true"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return prefix if done.returncode == 0 else []
