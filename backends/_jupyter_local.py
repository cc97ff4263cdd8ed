"""A kernel on this machine, started and watched through ``jupyter_client``.

The transport behind ``JupyterBackend`` when no gateway URL is given. It owns
one kernel process, its ZeroMQ channels, and a watch on the process: on Linux a
pidfd in the event loop wakes us the instant the kernel exits (``os._exit``, a
segfault, the OOM killer), elsewhere the process is polled. Either way the
death reaches whoever waits for messages as :class:`KernelDied` instead of
leaving them to wait for a reply that will never come.

The kernel's own stderr (not the user's, which travels on iopub) goes to a
temporary file so that its last lines can explain a death.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
from typing import IO, Any

from eager_rt.executor import BackendError

from ._jupyter_messages import KernelDied, KernelMessage, execute_content

__all__ = ["LocalKernel"]

_POLL_S = 0.05  # process poll period where pidfd is unavailable
_DRAIN_S = 0.05  # grace for in-flight messages after the process exits
_LOG_TAIL = 600  # characters of the kernel's stderr quoted in a death detail


class LocalKernel:
    """One local kernel process and its channels; ``start`` once, ``close`` once."""

    def __init__(
        self,
        kernel_name: str = "python3",
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.kernel_name = kernel_name
        self.cwd = cwd
        self.env = env
        self._km: Any = None
        self._kc: Any = None
        self._log: IO[bytes] | None = None
        self._queue: asyncio.Queue[KernelMessage | KernelDied] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._pidfd: int | None = None
        self._dead: str | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------

    @property
    def death(self) -> str | None:
        """Why the kernel died, once it did (None while it lives)."""
        return self._dead

    @property
    def alive(self) -> bool:
        return self._kc is not None and self._dead is None and not self._closed

    @property
    def pid(self) -> int | None:
        process = self._process()
        return None if process is None else int(process.pid)

    async def start(self, timeout: float | None) -> None:
        try:
            from jupyter_client.manager import AsyncKernelManager
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise BackendError(
                f"the jupyter backend needs jupyter_client and ipykernel: {exc}. "
                "Install them with: pip install 'eager_rt[jupyter]'"
            ) from exc
        env = {**os.environ, **(self.env or {})}
        where = {"cwd": self.cwd} if self.cwd else {}
        # the kernel inherits no terminal: its stdout is noise, its stderr a clue
        self._log = tempfile.TemporaryFile(prefix="eager_rt-kernel-")  # noqa: SIM115 - closed in _stop
        self._km = AsyncKernelManager(kernel_name=self.kernel_name)
        try:
            await asyncio.wait_for(
                self._km.start_kernel(
                    env=env,
                    **where,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=self._log,
                ),
                timeout,
            )
            self._kc = self._km.client()
            self._kc.start_channels()
            self._watch_process()
            await self._kc.wait_for_ready(timeout=timeout or 60.0)
        except Exception as exc:
            detail = self._dead or str(exc) or type(exc).__name__
            await self._stop()
            raise BackendError(f"kernel {self.kernel_name!r} did not start: {detail}") from exc
        loop = asyncio.get_running_loop()
        for channel in ("iopub", "shell", "stdin"):
            self._tasks.append(loop.create_task(self._pump(channel)))

    async def restart(self, timeout: float | None) -> None:
        """A new kernel process in place of the old one (a restart of a local kernel is a kill)."""
        await self._stop()
        self._queue = asyncio.Queue()
        self._dead = None
        await self.start(timeout)

    async def close(self) -> None:
        """Stop the channels and kill the kernel; nothing of it survives this call."""
        if self._closed:
            return
        self._closed = True
        await self._stop()

    async def _stop(self) -> None:
        self._unwatch_process()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        km, kc, log = self._km, self._kc, self._log
        self._km = self._kc = self._log = None
        if kc is not None:
            kc.stop_channels()
        if km is not None:
            process = _process_of(km)
            with contextlib.suppress(Exception):
                await km.shutdown_kernel(now=True)
            if process is not None and process.poll() is None:  # belt and braces
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    await asyncio.to_thread(process.wait, 5.0)
        if log is not None:
            log.close()

    # -- messaging ---------------------------------------------------------

    async def send_execute(
        self, code: str, *, silent: bool = False, user_expressions: dict[str, str] | None = None
    ) -> str:
        if not self.alive:
            raise KernelDied(self._dead or "the kernel is not running")
        content = execute_content(code, silent=silent, user_expressions=user_expressions)
        msg = self._kc.session.msg("execute_request", content)
        self._kc.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    async def send_input(self, text: str) -> None:
        """Answer the kernel's pending input request (an ``input_reply`` on stdin)."""
        if not self.alive:
            raise KernelDied(self._dead or "the kernel is not running")
        self._kc.input(text)

    async def recv(self, timeout: float | None) -> KernelMessage:
        """The next message from iopub, shell or stdin; :class:`TimeoutError` when none comes."""
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:  # noqa: UP041 - not the builtin one on Python 3.10
            raise TimeoutError from None
        if isinstance(item, KernelDied):
            raise item
        return item

    async def interrupt(self) -> None:
        if self.alive:
            await self._km.interrupt_kernel()

    async def _pump(self, channel: str) -> None:
        source = getattr(self._kc, channel + "_channel")
        while True:
            msg = await source.get_msg()
            self._queue.put_nowait(KernelMessage.from_wire(channel, msg))

    # -- death watch -------------------------------------------------------

    def _process(self) -> subprocess.Popen[bytes] | None:
        return _process_of(self._km)

    def _watch_process(self) -> None:
        process = self._process()
        loop = asyncio.get_running_loop()
        if process is not None and hasattr(os, "pidfd_open"):
            try:
                self._pidfd = os.pidfd_open(process.pid)
            except OSError:
                self._pidfd = None
            if self._pidfd is not None:
                loop.add_reader(self._pidfd, self._on_exit)
                return
        self._tasks.append(loop.create_task(self._poll_process()))

    def _unwatch_process(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    async def _poll_process(self) -> None:
        while True:
            process = self._process()
            running = process.poll() is None if process is not None else await self._km.is_alive()
            if not running:
                self._on_exit()
                return
            await asyncio.sleep(_POLL_S)

    def _on_exit(self) -> None:
        self._unwatch_process()
        if self._dead is not None or self._closed:
            return
        self._dead = self._death_detail()
        # what the kernel sent just before it died may still sit in the ZeroMQ
        # buffers: let the pumps deliver it before the news of the death
        died = KernelDied(self._dead)
        asyncio.get_running_loop().call_later(_DRAIN_S, self._queue.put_nowait, died)

    def _death_detail(self) -> str:
        process = self._process()
        code = process.poll() if process is not None else None
        if code is None:
            what = "the kernel process exited"
        elif code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = " (out of memory?)" if name == "SIGKILL" else ""
            what = f"the kernel was killed by {name}{hint}"
        else:
            what = f"the kernel exited with status {code}"
        tail = self._log_tail()
        return f"{what}; its last words: {tail}" if tail else what

    def _log_tail(self) -> str:
        if self._log is None or self._log.closed:
            return ""
        try:
            size = self._log.seek(0, os.SEEK_END)
            self._log.seek(max(0, size - _LOG_TAIL))
            text = self._log.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [
            line
            for line in text.strip().splitlines()
            if line.strip() and "running over TCP without encryption" not in line
        ]
        return " | ".join(lines[-3:])


def _process_of(km: Any) -> subprocess.Popen[bytes] | None:
    """The kernel's process, when the kernel manager's provisioner launched one here."""
    process = getattr(getattr(km, "provisioner", None), "process", None)
    return process if isinstance(process, subprocess.Popen) else None
