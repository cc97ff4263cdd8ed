"""Routing of the local E2B server: control plane, envd, code interpreter, test admin.

One loopback port answers everything, told apart the way E2B's own proxy does
when the SDK talks to ``https://sandbox.<domain>``: a request that carries
``E2b-Sandbox-Id`` / ``E2b-Sandbox-Port`` headers goes to that sandbox's port
(49983 envd, 49999 code interpreter); one without them is a control-plane API
call (``X-API-KEY`` authenticated). Paths under ``/_admin/`` belong to the
tests: scripted faults, the event log, the added network delay.

Protocol sources (e2b-dev/code-interpreter and the e2b Python SDK):
``template/server/main.py`` (routes, status codes, bodies),
``template/server/messaging.py`` (execution items, keepalive, env vars,
interrupt on disconnect), ``template/server/stream.py`` (NDJSON lines and the
final ``end_of_execution``), ``e2b/api/client/api/sandboxes/post_v2_sandboxes.py``
and ``models/sandbox.py`` (creation request and response),
``e2b/sandbox_async/main.py`` (``is_running`` = envd ``GET /health``, 502 means
gone) and ``e2b/exceptions.py`` ("was not found" in a 502 body means killed).

Like the real server, a sandbox lists its default ``python`` and
``javascript`` contexts from the start. Deviations: a context's kernel starts
at its first use instead of at boot (invisible but for the time the first
use takes); the JavaScript context is listed but not served (executing there
answers 500). Each sandbox's ``/home/user`` is a temporary directory of its
own: its kernels see it mounted on ``/home/user`` (a bubblewrap mount
namespace, so ``os.getcwd()`` answers as in a real sandbox and no directory is
made on the host), or, where bubblewrap cannot run, under its own path
(``kernel.kernel_specs``); the contexts report ``/home/user`` either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from tests.e2b_server.kernel import NOT_SERVED, REAL_HOME, KernelContext, kernel_specs
from tests.e2b_server.wire import ConnectionCut, Request, Response, StreamResponse

__all__ = ["FAULT_KINDS", "E2BApp"]

ENVD_PORT = "49983"
JUPYTER_PORT = "49999"
MAX_SANDBOXES = 32
MAX_CONTEXTS = 8
ENVD_VERSION = "0.2.4"

#: the names ``run_code(language=...)`` accepts for a default context (contexts.py)
_LANGUAGES = {"js": "javascript", "ts": "typescript", "typescript": "javascript"}

#: scripted faults, applied to the next ``POST /execute`` of a sandbox
FAULT_KINDS = ("http_502", "cut", "stall", "slow", "unexpected_end", "drop_end")


@dataclass
class Sandbox:
    id: str
    template: str
    env: dict[str, str]
    home: str
    expires_at: float
    envd_token: str = field(default_factory=lambda: secrets.token_hex(16))
    contexts: dict[str, KernelContext] = field(default_factory=dict)
    default_context: str | None = None
    faults: deque[dict[str, Any]] = field(default_factory=deque)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    default_contexts: dict[str, str] = field(default_factory=dict)  # language -> context id
    killed: bool = False


class E2BApp:
    def __init__(
        self,
        api_key: str,
        keepalive_s: float = 5.0,
        create_delay_s: float = 0.0,
        kernel_python: str | None = None,
    ) -> None:
        self.api_key = api_key
        self._specs_dir = tempfile.mkdtemp(prefix="e2b-local-kernels-")
        self.specs = kernel_specs(self._specs_dir, kernel_python or sys.executable)
        self.keepalive_s = keepalive_s
        self.create_delay_s = create_delay_s
        self.sandboxes: dict[str, Sandbox] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=10_000)
        #: wired to the HTTP server by ``__main__``
        self.set_delay: Callable[[float], None] = lambda seconds: None
        self._reaper: asyncio.Task[None] | None = None
        self.closing = asyncio.Event()

    def log(self, event: str, **fields: Any) -> None:
        self.events.append({"event": event, "t": time.time(), **fields})

    async def start(self) -> None:
        self._reaper = asyncio.ensure_future(self._reap())

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(BaseException):
                await self._reaper
        for sandbox_id in list(self.sandboxes):
            await self._kill(sandbox_id, "server shutdown")
        shutil.rmtree(self._specs_dir, ignore_errors=True)

    async def _reap(self) -> None:
        """Sandboxes die at their timeout, like real ones (keeps the server bounded)."""
        while True:
            await asyncio.sleep(0.5)
            now = time.time()
            for sandbox in list(self.sandboxes.values()):
                if sandbox.expires_at <= now:
                    await self._kill(sandbox.id, "timeout")

    # -- dispatch ----------------------------------------------------------

    async def __call__(self, request: Request) -> Response | StreamResponse:
        if request.path.startswith("/_admin/"):
            return await self._admin(request)
        sandbox_id = request.headers.get("e2b-sandbox-id")
        if sandbox_id is None:
            return await self._control_plane(request)
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None:
            return Response.of_json(
                {"code": 502, "message": f"The sandbox {sandbox_id} was not found"}, 502
            )
        port = request.headers.get("e2b-sandbox-port")
        if port == ENVD_PORT:
            return self._envd(sandbox, request)
        if port == JUPYTER_PORT:
            return await self._jupyter(sandbox, request)
        return Response.of_json(
            {"code": 502, "message": f"The sandbox is running but port {port} is not open"}, 502
        )

    # -- control plane -------------------------------------------------------

    async def _control_plane(self, request: Request) -> Response:
        if request.headers.get("x-api-key") != self.api_key:
            return Response.of_json({"code": 401, "message": "Invalid API key"}, 401)
        parts = request.path.strip("/").split("/")
        if request.method == "POST" and parts in (["sandboxes"], ["v2", "sandboxes"]):
            return await self._create(request.json() or {})
        if parts[:1] == ["v2"]:
            parts = parts[1:]
        if len(parts) >= 2 and parts[0] == "sandboxes":
            sandbox_id = parts[1]
            if request.method == "DELETE" and len(parts) == 2:
                killed = await self._kill(sandbox_id, "kill")
                if not killed:
                    return Response.of_json({"code": 404, "message": "sandbox not found"}, 404)
                return Response(204)
            if request.method == "POST" and parts[2:] == ["connect"]:
                return self._connect(sandbox_id, request.json() or {})
            if request.method == "POST" and parts[2:] == ["timeout"]:
                sandbox = self.sandboxes.get(sandbox_id)
                if sandbox is None:
                    return Response.of_json({"code": 404, "message": "sandbox not found"}, 404)
                seconds = float(request.json()["timeout"])
                sandbox.expires_at = time.time() + seconds
                self.log("set_timeout", sandbox_id=sandbox_id, seconds=seconds)
                return Response(204)
        return Response.of_json({"code": 404, "message": f"no route {request.path}"}, 404)

    async def _create(self, body: dict[str, Any]) -> Response:
        if len(self.sandboxes) >= MAX_SANDBOXES:
            return Response.of_json({"code": 429, "message": "too many sandboxes"}, 429)
        if self.create_delay_s:
            await asyncio.sleep(self.create_delay_s)
        sandbox = Sandbox(
            id="i" + secrets.token_hex(10),
            template=str(body.get("templateID", "code-interpreter-v1")),
            env={str(k): str(v) for k, v in (body.get("envVars") or {}).items()},
            home=tempfile.mkdtemp(prefix="e2b-local-home-"),
            expires_at=time.time() + float(body.get("timeout") or 300),
        )
        for language in ("python", "javascript"):  # the server's own, made as it boots
            context = self._context(sandbox, None, language)
            sandbox.contexts[context.id] = context
            sandbox.default_contexts[language] = context.id
        sandbox.default_context = sandbox.default_contexts["python"]
        self.sandboxes[sandbox.id] = sandbox
        self.log("create", sandbox_id=sandbox.id, template=sandbox.template, env=sandbox.env)
        return Response.of_json(self._sandbox_json(sandbox), 201)

    def _sandbox_json(self, sandbox: Sandbox) -> dict[str, Any]:
        return {
            "templateID": sandbox.template,
            "sandboxID": sandbox.id,
            "clientID": "local",
            "envdVersion": ENVD_VERSION,
            "envdAccessToken": sandbox.envd_token,
            "trafficAccessToken": None,
            "domain": None,
        }

    def _connect(self, sandbox_id: str, body: dict[str, Any]) -> Response:
        """``POST /sandboxes/{id}/connect``: a running sandbox's details, its timeout extended."""
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None:
            return Response.of_json({"code": 404, "message": "sandbox not found"}, 404)
        if body.get("timeout"):
            sandbox.expires_at = max(sandbox.expires_at, time.time() + float(body["timeout"]))
        self.log("connect", sandbox_id=sandbox_id)
        return Response.of_json(self._sandbox_json(sandbox), 200)

    async def _kill(self, sandbox_id: str, reason: str) -> bool:
        sandbox = self.sandboxes.pop(sandbox_id, None)
        if sandbox is None:
            return False
        self.log("kill", sandbox_id=sandbox_id, reason=reason)
        sandbox.killed = True  # its streams are cut, as when a sandbox's VM goes away
        await asyncio.gather(*(c.close() for c in sandbox.contexts.values()))
        shutil.rmtree(sandbox.home, ignore_errors=True)
        return True

    # -- envd ----------------------------------------------------------------

    def _envd(self, sandbox: Sandbox, request: Request) -> Response:
        if request.headers.get("x-access-token") != sandbox.envd_token:
            return Response.of_json({"code": 401, "message": "invalid access token"}, 401)
        if request.method == "GET" and request.path == "/health":
            return Response(204)
        if request.method == "GET" and request.path == "/envs":
            return Response.of_json(sandbox.env)
        return Response.of_json({"code": 404, "message": "not served by the local server"}, 404)

    # -- code interpreter ------------------------------------------------------

    def _context(self, sandbox: Sandbox, cwd: str | None, language: str) -> KernelContext:
        path = sandbox.home if cwd in (None, "", REAL_HOME) else str(cwd)
        emit = self._context_event(sandbox)
        return KernelContext(
            path,
            sandbox.env,
            self.keepalive_s,
            emit,
            home=sandbox.home,
            specs=self.specs,
            language=language,
        )

    async def _new_context(self, sandbox: Sandbox, cwd: str | None) -> KernelContext:
        if len(sandbox.contexts) >= MAX_CONTEXTS:
            raise RuntimeError("too many contexts in this sandbox")
        context = self._context(sandbox, cwd, "python")
        try:
            await context.ensure_started()
        except BaseException:
            await context.close()
            raise
        if sandbox.id not in self.sandboxes:  # killed while the kernel started
            await context.close()
            raise RuntimeError("sandbox was killed")
        sandbox.contexts[context.id] = context
        self.log("context", sandbox_id=sandbox.id, context_id=context.id, pid=context.pid)
        return context

    def _context_event(self, sandbox: Sandbox) -> Any:
        def emit(event: str, fields: dict[str, Any]) -> None:
            self.log(event, sandbox_id=sandbox.id, **fields)

        return emit

    def _context_json(self, sandbox: Sandbox, context: KernelContext) -> dict[str, str]:
        cwd = REAL_HOME if context.cwd == sandbox.home else context.cwd
        return {"id": context.id, "language": context.language, "cwd": cwd}

    async def _jupyter(self, sandbox: Sandbox, request: Request) -> Response | StreamResponse:
        parts = request.path.strip("/").split("/")
        method = request.method
        if method == "GET" and parts == ["health"]:
            return Response.of_json("OK")
        if method == "POST" and parts == ["execute"]:
            return await self._execute(sandbox, request)
        if parts[:1] == ["contexts"]:
            if method == "POST" and len(parts) == 1:
                body = request.json() or {}
                language = (body.get("language") or "python").lower().strip()
                if language != "python":
                    return Response.of_text(f"language {language} is not served locally", 500)
                try:
                    context = await self._new_context(sandbox, body.get("cwd"))
                except Exception as exc:  # noqa: BLE001 - reported like the real server
                    return Response.of_text(str(exc), 500)
                return Response.of_json(self._context_json(sandbox, context))
            if method == "GET" and len(parts) == 1:
                return Response.of_json(
                    [self._context_json(sandbox, c) for c in sandbox.contexts.values()]
                )
            context_id = parts[1] if len(parts) > 1 else ""
            existing = sandbox.contexts.get(context_id)
            if existing is None:
                return Response.of_text(f"Context {context_id} not found", 404)
            if method == "POST" and parts[2:] == ["restart"]:
                if existing.restarting:
                    # Jupyter refuses while its restarter is at work; E2B's server
                    # had already closed its kernel connection: the context is lost
                    existing.broken = True
                    self.log("restart_refused", sandbox_id=sandbox.id, context_id=context_id)
                    return Response.of_text(f"Failed to restart context {context_id}", 500)
                self.log("restart", sandbox_id=sandbox.id, context_id=context_id)
                try:
                    await existing.restart()
                except Exception as exc:  # noqa: BLE001 - reported like the real server
                    return Response.of_text(f"Failed to restart context {context_id}: {exc}", 500)
                return Response.of_json(None)
            if method == "DELETE" and len(parts) == 2:
                del sandbox.contexts[context_id]
                await existing.close()
                return Response.of_json(None)
        return Response.of_json({"detail": "Not Found"}, 404)

    async def _execute(self, sandbox: Sandbox, request: Request) -> Response | StreamResponse:
        try:
            body = request.json()
            code = body["code"]
            if not isinstance(code, str):
                raise TypeError("code must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            return Response.of_json({"detail": f"invalid request: {exc}"}, 422)
        context_id = body.get("context_id")
        language = body.get("language")
        if context_id and language:
            return Response.of_text("Only one of context_id or language can be provided", 400)
        fault = sandbox.faults.popleft() if sandbox.faults else None
        self.log(
            "execute",
            sandbox_id=sandbox.id,
            context_id=context_id,
            code=code,
            fault=None if fault is None else fault["kind"],
        )
        if fault is not None and fault["kind"] == "http_502":
            return Response.of_text("Bad Gateway: upstream sandbox port did not answer", 502)
        if context_id:
            context = sandbox.contexts.get(context_id)
        else:
            asked = str(language or "python").lower().strip()
            wanted = _LANGUAGES.get(asked, asked)
            default = sandbox.default_contexts.get(wanted)
            if default is None:
                return Response.of_text(f"Failed to create context: no kernel for {wanted}", 500)
            context = sandbox.contexts.get(default)
        if context is None:
            return Response.of_text(f"Context {context_id} not found", 404)
        if context.language != "python":
            return Response.of_text(NOT_SERVED.format(language=context.language), 500)
        if context.broken:
            return StreamResponse(_cut(), headers={"content-type": "application/json"})
        env_vars = body.get("env_vars") or None
        return StreamResponse(
            self._lines(sandbox, context, code, env_vars, fault),
            headers={"content-type": "application/json"},
        )

    async def _lines(
        self,
        sandbox: Sandbox,
        context: KernelContext,
        code: str,
        env_vars: dict[str, str] | None,
        fault: dict[str, Any] | None,
    ) -> AsyncIterator[bytes]:
        kind = None if fault is None else fault["kind"]
        after = 0 if fault is None else int(fault.get("after_lines", 0))
        sent = 0
        items = context.execute(code, env_vars)
        try:
            if sandbox.killed:
                raise ConnectionCut(reset=False)
            if kind == "slow":
                # The cell is slow to produce anything; keepalives still flow.
                deadline = time.monotonic() + float(fault["seconds"])  # type: ignore[index]
                while (left := deadline - time.monotonic()) > 0:
                    await asyncio.sleep(min(left, self.keepalive_s))
                    if deadline - time.monotonic() > 0:
                        yield b'{"type": "keepalive"}\n'
            async for item in items:
                if sandbox.killed:  # the sandbox went away mid-stream: no proper end
                    raise ConnectionCut(reset=False)
                if sent == after and kind in ("cut", "stall", "unexpected_end", "drop_end"):
                    if kind == "drop_end":
                        # The body ends cleanly but early: no end_of_execution line.
                        self.log("drop_end", sandbox_id=sandbox.id, after_lines=sent)
                        return
                    if kind == "cut":
                        self.log("cut", sandbox_id=sandbox.id, after_lines=sent)
                        raise ConnectionCut(reset=bool(fault.get("reset")))  # type: ignore[union-attr]
                    if kind == "stall":
                        self.log("stall", sandbox_id=sandbox.id, after_lines=sent)
                        await asyncio.sleep(float(fault["seconds"]))  # type: ignore[index]
                    if kind == "unexpected_end":
                        self.log("unexpected_end", sandbox_id=sandbox.id, after_lines=sent)
                        context.lose_connection()
                    kind = None
                yield (json.dumps(item) + "\n").encode()
                sent += 1
            yield b'{"type": "end_of_execution"}\n'
        except asyncio.CancelledError:
            self.log("disconnect", sandbox_id=sandbox.id, context_id=context.id, after_lines=sent)
            raise
        finally:
            await items.aclose()

    # -- test admin ------------------------------------------------------------

    async def _admin(self, request: Request) -> Response:
        path = request.path
        if path == "/_admin/events" and request.method == "GET":
            return Response.of_json(list(self.events))
        if path == "/_admin/faults" and request.method == "POST":
            body = request.json()
            sandbox = self.sandboxes.get(body.get("sandbox_id", ""))
            if sandbox is None:
                return Response.of_json({"detail": "no such sandbox"}, 404)
            if body.get("kind") not in FAULT_KINDS:
                return Response.of_json({"detail": f"kind must be one of {FAULT_KINDS}"}, 422)
            sandbox.faults.append(dict(body))
            return Response(204)
        if path == "/_admin/config" and request.method == "POST":
            body = request.json()
            if "delay_s" in body:
                self.set_delay(float(body["delay_s"]))
            if "create_delay_s" in body:
                self.create_delay_s = float(body["create_delay_s"])
            if "keepalive_s" in body:
                self.keepalive_s = float(body["keepalive_s"])
                for sandbox in self.sandboxes.values():
                    for context in sandbox.contexts.values():
                        context.keepalive_s = self.keepalive_s
            return Response(204)
        if path == "/_admin/kernels" and request.method == "GET":
            return Response.of_json(
                {s.id: {c.id: c.pid for c in s.contexts.values()} for s in self.sandboxes.values()}
            )
        if path == "/_admin/shutdown" and request.method == "POST":
            self.closing.set()
            return Response(204)
        return Response.of_json({"detail": "no such admin route"}, 404)


async def _cut() -> AsyncIterator[bytes]:
    """The body of an execution in a context E2B's server lost: the connection drops."""
    raise ConnectionCut(reset=False)
    yield b""  # an async generator all the same
