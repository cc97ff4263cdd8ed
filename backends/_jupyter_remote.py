"""A kernel on a Jupyter Kernel Gateway or Enterprise Gateway, over REST and one websocket.

The transport behind ``JupyterBackend(url=..., token=...)``. The REST API makes
and ends kernels (``POST /api/kernels``, ``DELETE /api/kernels/{id}``) and
interrupts them (``POST .../interrupt``); every message to and from the kernel
travels on the websocket ``/api/kernels/{id}/channels`` in the JSON form of
the messaging protocol, each tagged with its channel.

Latency: an execution is a handful of small frames, the worst case for Nagle's
algorithm (a small write waits for the ACK of the previous one, and the peer
delays that ACK by up to 40 ms). Both ends matter. Ours: tornado's websocket
client leaves Nagle *on* after the HTTP upgrade, so we set ``TCP_NODELAY`` once
the connection is up. Theirs: the gateway writes its frames (status busy,
execute_input, execute_reply, status idle) with Nagle on, so its second frame
waits for our ACK of the first, which Linux delays; we re-arm ``TCP_QUICKACK``
after every send and receive so our ACKs leave at once. Measured on loopback,
that is the difference between ~48 ms and a few ms per execution (see
``bench/test_bench_jupyter.py``); ``tcp_nodelay=False`` / ``tcp_quickack=False``
exist to measure it.

A kernel that dies cannot be seen directly from here: the gateway's restarter
notices (after its ``KernelRestarter.time_to_dead``, 3 s by default), restarts
it and says so on iopub with a ``restarting`` (or, if that failed, ``dead``)
status. Either, a closed websocket, or the kernel vanishing from the REST API
(checked every ``watch_interval`` seconds) ends the wait as :class:`KernelDied`.

The gateway itself can fail too: killed (its connections close, new ones are
refused) or frozen (a stopped process, a partition: connections open but
nothing answers). Every REST call is bounded by ``request_timeout``, and so is
the watch's: a gateway that does not answer it in time, or cannot be reached,
ends the wait as :class:`KernelDied` saying so, whatever the websocket shows.
Tornado raises its own timeout error even with ``raise_error=False``, so every
failure to get an HTTP answer at all becomes :class:`GatewayDown`. A gateway
that just failed to answer (within the last ``request_timeout`` seconds) is not
asked again by a restart or by ``close``, which therefore neither hang nor
raise; a later restart asks again, so a gateway that comes back is used again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from eager_rt.clock import now
from eager_rt.executor import BackendError

from ._jupyter_messages import KernelDied, KernelMessage, execute_content, new_message

__all__ = ["GatewayDown", "GatewayKernel"]

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
_DELETE_TRIES = 25
_PING_S = 10.0  # at least: a keep-alive, slower than the watch (see _connect)
_MAX_MESSAGE = 1 << 30
_DELETE_PAUSE_S = 0.2


class GatewayDown(BackendError):
    """No HTTP answer from the gateway at all: refused, reset, or none within the timeout."""


class GatewayKernel:
    """One kernel on a gateway and the websocket to it; ``start`` once, ``close`` once."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        kernel_name: str = "python3",
        env: dict[str, str] | None = None,
        tcp_nodelay: bool = True,
        tcp_quickack: bool = True,
        request_timeout: float = 30.0,
        watch_interval: float = 1.0,
    ) -> None:
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BackendError(f"a gateway URL looks like http://host:port, not {url!r}")
        self.url = urlunsplit(parts)
        self.ws_url = urlunsplit(
            ("wss" if parts.scheme == "https" else "ws", parts.netloc, parts.path, "", "")
        )
        self.token = token
        self.kernel_name = kernel_name
        self.env = env
        self.tcp_nodelay = tcp_nodelay
        self.tcp_quickack = tcp_quickack
        self.request_timeout = request_timeout
        self.watch_interval = watch_interval
        self.kernel_id: str | None = None
        self._session_id = uuid.uuid4().hex
        self._http: Any = None
        self._ws: Any = None
        self._queue: asyncio.Queue[KernelMessage | KernelDied] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._dead: str | None = None
        self._gateway_restarted = False
        self._gone = False  # the gateway answered 404 for our kernel
        self._closed = False
        # the gateway's own last failure to answer, and when (see _silent)
        self._fault: str | None = None
        self._fault_at = 0.0

    # -- lifecycle ---------------------------------------------------------

    @property
    def death(self) -> str | None:
        """Why the kernel died, once it did (None while it lives)."""
        return self._dead

    @property
    def alive(self) -> bool:
        return self._ws is not None and self._dead is None and not self._closed

    @property
    def socket(self) -> socket.socket | None:
        """The websocket's TCP socket (to check its options)."""
        stream = getattr(self._ws, "stream", None)
        sock = getattr(stream, "socket", None)
        return sock if isinstance(sock, socket.socket) else None

    async def start(self, timeout: float | None) -> None:
        from tornado.httpclient import AsyncHTTPClient

        self._http = AsyncHTTPClient(force_instance=True)
        try:
            await self._create(timeout)
            await self._connect(timeout)
        except BaseException:
            await self.close()
            raise
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._watch()))

    async def restart(self, timeout: float | None) -> None:
        """A fresh interpreter under the same kernel id, and a fresh websocket to it.

        When the kernel died the gateway has already restarted it (that is how
        we learnt of the death), so only the websocket is renewed; a kernel the
        gateway gave up on, or forgot, is replaced by a new one.
        """
        death = self._dead
        if self._silent():  # asked moments ago, in vain
            raise GatewayDown(
                f"the gateway at {self.url} is not answering (a later restart asks it again)"
            )
        if self._fault is not None:
            # the gateway failed: whether it answers at all is known within
            # request_timeout, not the start timeout a kernel restart gets
            await self._request("GET", "/api", None, None)
            self._fault = None
        restarted, self._gateway_restarted = self._gateway_restarted, False
        await self._disconnect()
        self._queue = asyncio.Queue()
        self._dead = None
        try:
            if self._gone:  # a restart of a kernel the gateway forgot fails with HTTP 500
                self.kernel_id, self._gone = None, False
            if self.kernel_id is not None and not restarted:
                try:
                    path = f"/api/kernels/{quote(self.kernel_id)}/restart"
                    await self._request("POST", path, {}, timeout)
                except KernelDied:  # 404: the gateway no longer has it
                    self.kernel_id = None
            if self.kernel_id is None:
                await self._create(timeout)
            await self._connect(timeout)
        except BackendError as exc:
            # still dead, and still saying why (the next restart tries again)
            self._dead = death or str(exc)
            raise
        self._tasks.append(asyncio.get_running_loop().create_task(self._watch()))

    async def close(self) -> None:
        """Close the websocket and delete the kernel on the gateway.

        Never raises for a gateway that is gone: a refused connection ends the
        attempt at once; a gateway that just failed to answer is not asked
        (one that stays frozen keeps the kernel until it culls it; nothing
        else can reach it). Only a gateway that answers and refuses, again
        and again, makes this raise.
        """
        if self._closed:
            return
        self._closed = True
        await self._disconnect()
        if self.kernel_id is not None and self._http is not None and not self._silent():
            with contextlib.suppress(GatewayDown):
                await self._delete()
        if self._http is not None:
            self._http.close()

    async def _create(self, timeout: float | None) -> None:
        body: dict[str, Any] = {"name": self.kernel_name}
        if self.env:
            body["env"] = dict(self.env)
        model = await self._request("POST", "/api/kernels", body, timeout)
        self.kernel_id = str(model["id"])

    async def _delete(self) -> None:
        """Delete the kernel, retrying while the gateway is busy restarting it.

        Kernel Gateway 3 answers 500 to a DELETE that lands in the middle of its
        own restart of a dead kernel; giving up there would leak the kernel.
        """
        assert self.kernel_id is not None
        path = f"/api/kernels/{quote(self.kernel_id)}"
        for attempt in range(_DELETE_TRIES):
            try:
                await self._request("DELETE", path, None, None)
                return
            except KernelDied:  # already gone
                return
            except GatewayDown:
                raise  # no one there to ask again
            except BackendError:
                if attempt == _DELETE_TRIES - 1:
                    raise
                await asyncio.sleep(_DELETE_PAUSE_S)

    async def _disconnect(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.close()
            if self._fault is not None:
                # tornado waits 5 s for the peer's closing frame, on a timer a
                # finished event loop never runs: a failed gateway sends none
                ws.stream.close()

    async def _connect(self, timeout: float | None) -> None:
        from tornado.httpclient import HTTPClientError, HTTPRequest
        from tornado.simple_httpclient import HTTPTimeoutError
        from tornado.websocket import websocket_connect

        assert self.kernel_id is not None
        limit = timeout or self.request_timeout
        request = HTTPRequest(
            f"{self.ws_url}/api/kernels/{quote(self.kernel_id)}/channels"
            f"?session_id={self._session_id}",
            headers=self._headers(),
            connect_timeout=limit,
            request_timeout=limit,
        )
        try:
            self._ws = await websocket_connect(
                request,
                # a keep-alive for proxies that drop quiet connections; a frozen
                # gateway is found by the watch first (see the module docstring)
                ping_interval=max(_PING_S, self.request_timeout),
                # outputs (a figure, a dataframe's HTML) can be large
                max_message_size=_MAX_MESSAGE,
            )
        except HTTPTimeoutError as exc:
            raise self._down(
                f"the gateway at {self.url} did not answer the websocket request within {limit:g} s"
            ) from exc
        except HTTPClientError as exc:
            if exc.code == 599:  # no HTTP answer at all
                raise self._down(f"cannot reach the gateway at {self.url}: {exc}") from exc
            raise BackendError(self._refusal(exc.code, "websocket", str(exc))) from exc
        except OSError as exc:
            raise self._down(f"cannot reach the gateway at {self.url}: {exc}") from exc
        self._ws.stream.set_nodelay(self.tcp_nodelay)
        self._quickack()
        self._tasks.append(asyncio.get_running_loop().create_task(self._read()))

    # -- messaging ---------------------------------------------------------

    async def send_execute(
        self, code: str, *, silent: bool = False, user_expressions: dict[str, str] | None = None
    ) -> str:
        content = execute_content(code, silent=silent, user_expressions=user_expressions)
        msg = new_message("execute_request", content, self._session_id)
        await self._send(msg)
        return str(msg["header"]["msg_id"])

    async def send_input(self, text: str) -> None:
        """Answer the kernel's pending input request (an ``input_reply`` on stdin)."""
        await self._send(new_message("input_reply", {"value": text}, self._session_id, "stdin"))

    async def _send(self, msg: dict[str, Any]) -> None:
        if not self.alive:
            raise KernelDied(self._dead or "the kernel is not running")
        try:
            await self._ws.write_message(json.dumps(msg))
        except Exception as exc:  # tornado raises WebSocketClosedError
            self._die(f"the websocket to the gateway closed: {exc}")
            raise KernelDied(str(self._dead)) from exc
        self._quickack()

    async def recv(self, timeout: float | None) -> KernelMessage:
        """The next message from the kernel; :class:`TimeoutError` when none comes in time."""
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:  # noqa: UP041 - not the builtin one on Python 3.10
            raise TimeoutError from None
        if isinstance(item, KernelDied):
            raise item
        return item

    async def interrupt(self) -> None:
        """Ask the gateway to interrupt the kernel; a gateway that is gone ends it as dead."""
        if self.alive and self.kernel_id is not None:
            path = f"/api/kernels/{quote(self.kernel_id)}/interrupt"
            try:
                await self._request("POST", path, {}, None)
            except GatewayDown as exc:
                self._die(self._lost(str(exc)))

    async def _read(self) -> None:
        while True:
            frame = await self._ws.read_message()
            self._quickack()
            if frame is None:
                code, reason = self._ws.close_code, self._ws.close_reason
                if code is None:  # no closing handshake: the gateway or the network failed
                    self._die(await self._cut_off())
                else:
                    self._die(
                        f"the gateway closed the websocket (code {code}: {reason or 'no reason'})"
                    )
                return
            if isinstance(frame, bytes):
                continue  # messages with binary buffers (widgets, comms): not ours
            msg = json.loads(frame)
            kmsg = KernelMessage.from_wire(str(msg.get("channel", "")), msg)
            state = kmsg.content.get("execution_state") if kmsg.msg_type == "status" else None
            if state in ("restarting", "dead") and kmsg.parent_id is None:
                if state == "restarting":
                    self._gateway_restarted = True
                    self._die("the kernel died; the gateway restarted it")
                else:
                    self._die("the kernel died and the gateway could not restart it")
                return
            self._queue.put_nowait(kmsg)

    async def _watch(self) -> None:
        """Notice a kernel removed from the gateway (culled, deleted), or a gateway that failed.

        Each look is bounded by ``request_timeout``: a frozen gateway is given
        up within ``watch_interval + request_timeout`` seconds, busy or idle.
        """
        assert self.kernel_id is not None
        path = f"/api/kernels/{quote(self.kernel_id)}"
        while self._dead is None:
            await asyncio.sleep(self.watch_interval)
            try:
                await self._request("GET", path, None, None)
            except KernelDied as exc:
                self._die(str(exc))
            except GatewayDown as exc:
                self._die(self._lost(str(exc)))
            except BackendError:
                pass  # an error answer: the gateway is there, and hiccups

    async def _cut_off(self) -> str:
        """Why the websocket ended without a closing handshake: ask the gateway itself."""
        try:
            await self._request("GET", "/api", None, None)
        except GatewayDown as exc:
            return self._lost(str(exc))
        except BackendError:
            pass
        return f"the websocket to the gateway at {self.url} was cut without a closing handshake"

    def _lost(self, why: str) -> str:
        """The death detail of a kernel given up with its gateway."""
        return f"{why}; the kernel there and its state are given up"

    def _quickack(self) -> None:
        """ACK what arrives at once instead of after Linux's delayed-ACK timer (up to 40 ms).

        The gateway writes each message as its own small frame without
        TCP_NODELAY, so its second frame waits for our ACK of the first; Linux
        delays that ACK in an interactive exchange and clears the quick-ACK
        flag on its own, hence the re-arming after every send and receive.
        """
        sock = self.socket
        if self.tcp_quickack and sock is not None and _QUICKACK is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    def _die(self, detail: str) -> None:
        if self._dead is None and not self._closed:
            self._dead = detail
            self._queue.put_nowait(KernelDied(detail))

    # -- REST --------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        return headers

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None, timeout: float | None
    ) -> Any:
        """One REST call; JSON in and out. 404 on a kernel path means the kernel is gone."""
        from tornado.httpclient import HTTPClientError, HTTPRequest
        from tornado.simple_httpclient import HTTPTimeoutError

        request = HTTPRequest(
            self.url + path,
            method=method,
            headers=self._headers(),
            body=None if body is None and method != "POST" else json.dumps(body or {}),
            connect_timeout=timeout or self.request_timeout,
            request_timeout=timeout or self.request_timeout,
        )
        limit = timeout or self.request_timeout
        try:
            response = await self._http.fetch(request, raise_error=False)
        except HTTPTimeoutError as exc:  # raised whatever raise_error says
            raise self._down(
                f"the gateway at {self.url} did not answer {method} {path} within {limit:g} s"
            ) from exc
        except (OSError, HTTPClientError) as exc:  # refused, reset; tornado's 599s
            raise self._down(f"cannot reach the gateway at {self.url}: {exc}") from exc
        if response.code == 599:  # tornado's "no HTTP response at all"
            raise self._down(f"cannot reach the gateway at {self.url}: {response.error}")
        self._fault = None  # it answers
        if response.code == 404 and path.startswith("/api/kernels/"):
            self._gone = True
            raise KernelDied(f"the gateway no longer knows kernel {self.kernel_id}")
        if response.code >= 400:
            text = response.body.decode("utf-8", "replace")[:300] if response.body else ""
            raise BackendError(self._refusal(response.code, f"{method} {path}", text))
        if not response.body:
            return None
        return json.loads(response.body)

    def _down(self, why: str) -> GatewayDown:
        """Remember that the gateway gave no answer (see :meth:`_silent`)."""
        self._fault, self._fault_at = why, now()
        return GatewayDown(why)

    def _silent(self) -> bool:
        """The gateway failed to answer within the last ``request_timeout`` seconds."""
        return self._fault is not None and now() - self._fault_at < self.request_timeout

    def _refusal(self, code: int, what: str, text: str) -> str:
        if code in (401, 403):
            token = "the token given" if self.token else "no token (pass token=...)"
            return (
                f"the gateway at {self.url} refused {what} with HTTP {code}: "
                f"it requires a valid auth token and got {token}"
            )
        return f"the gateway at {self.url} answered {what} with HTTP {code}: {text}"
