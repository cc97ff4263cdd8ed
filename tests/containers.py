"""What the Docker and Podman tests share: the engine's client, and a host killed mid-run.

A container must not outlive the host process that owns it. Both backends'
tests start a real host process whose session is busy in a loop that never
yields, SIGKILL it (so none of its clean-up runs) and then look at the
container from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tests.provision.docker import require_docker

if TYPE_CHECKING:
    from eager_rt.backends._docker_engine import Engine

#: a guard against a hang while the host starts its container (not a timing claim)
START_GUARD = 120.0


@contextlib.contextmanager
def docker_engine(base_url: str | None = None) -> Iterator[Engine]:
    """The real Docker engine, asked directly; the test skips without one (or fails in CI)."""
    require_docker()
    from eager_rt.backends._docker_engine import Engine

    with contextlib.closing(Engine(base_url, timeout=30)) as client:
        yield client


def _busy_owner_script(session_class: str, image: str, name: str) -> str:
    """A host program: start ``session_class`` on ``image``, print its ``name``, run a busy loop.

    ``session_class`` is a dotted path (``eager_rt.backends.docker.DockerSession``);
    ``name`` is the session's attribute that names its container.
    """
    module, _, cls = session_class.rpartition(".")
    return textwrap.dedent(
        f"""
        import asyncio
        from {module} import {cls}

        async def main():
            session = {cls}(image={image!r})
            await session.start(timeout=120)
            print(session.{name}, flush=True)
            await session.execute("print('busy', flush=True)\\nwhile True:\\n    pass",
                                  on_output=lambda o: print(o.text, end="", flush=True))

        asyncio.run(main())
        """
    )


@contextlib.asynccontextmanager
async def busy_owner(session_class: str, image: str, name: str) -> AsyncIterator[str]:
    """Run :func:`_busy_owner_script`; yield its container once the code is busy.

    On exit the host's whole process group (the host, and a client it runs,
    such as podman's) is SIGKILLed: no clean-up code of the host runs.
    """
    process = subprocess.Popen(
        [sys.executable, "-c", _busy_owner_script(session_class, image, name)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), START_GUARD)
        busy = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), START_GUARD)
        assert busy == "busy\n", line
        yield line.strip()
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        if process.stdout is not None:
            process.stdout.close()
