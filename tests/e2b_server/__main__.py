"""Run the local E2B server: ``python -m tests.e2b_server [--port 0] [--api-key KEY] ...``.

Prints one JSON line ``{"port": N}`` on stdout once it listens, then serves
until any of: stdin reaches end of file (the parent that started it is gone),
``POST /_admin/shutdown``, ``--idle-timeout`` seconds without a request, or
``--max-lifetime`` seconds in all. Every kernel is shut down on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
import time

from tests.e2b_server.app import E2BApp
from tests.e2b_server.wire import HTTPServer


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.e2b_server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="e2b_local_test_key")
    parser.add_argument("--keepalive", type=float, default=5.0, help="seconds between keepalives")
    parser.add_argument("--delay", type=float, default=0.0, help="added round trip, seconds")
    parser.add_argument("--create-delay", type=float, default=0.0, help="sandbox boot, seconds")
    parser.add_argument("--idle-timeout", type=float, default=600.0)
    parser.add_argument(
        "--kernel-python", default=None, help="the kernels' interpreter (default: this one)"
    )
    parser.add_argument("--max-lifetime", type=float, default=3600.0)
    return parser.parse_args(argv)


def _watch_parent(loop: asyncio.AbstractEventLoop, gone: asyncio.Event) -> None:
    """Block on stdin in a daemon thread; end of file means the parent is gone."""

    def read() -> None:
        with contextlib.suppress(Exception):
            sys.stdin.buffer.read()
        loop.call_soon_threadsafe(gone.set)

    threading.Thread(target=read, name="parent-watch", daemon=True).start()


async def serve(args: argparse.Namespace) -> None:
    app = E2BApp(
        args.api_key,
        keepalive_s=args.keepalive,
        create_delay_s=args.create_delay,
        kernel_python=args.kernel_python,
    )
    server = HTTPServer(app, "127.0.0.1", args.port)
    server.delay_s = args.delay

    def set_delay(seconds: float) -> None:
        server.delay_s = seconds

    app.set_delay = set_delay
    await app.start()
    await server.start()
    print(json.dumps({"port": server.port}), flush=True)
    started = time.monotonic()
    parent_gone = asyncio.Event()
    _watch_parent(asyncio.get_running_loop(), parent_gone)
    try:
        while not (app.closing.is_set() or parent_gone.is_set()):
            now = time.monotonic()
            if now - started > args.max_lifetime:
                break
            if now - server.last_activity > args.idle_timeout and not app.sandboxes:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(app.closing.wait(), 0.2)
    finally:
        await server.close()
        await app.close()


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
