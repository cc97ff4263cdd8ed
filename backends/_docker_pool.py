"""A warm pool of pre-started worker containers, so a session starts in milliseconds.

A container's cold start (create, attach, start, interpreter boot, worker
boot) costs a few hundred milliseconds; the pool pays it in a background
thread before anyone asks. A pooled container is attached and running, and
has already been sent the worker's source, so its worker sits compiled and
imported, waiting for its init frame: handing it to a session is a pop from a
deque plus one init/ready exchange. Every take wakes the refill thread.

Pool containers carry the owner labels like any other (the reaper removes
them if the host process dies), and since their attach connection is open,
stdin closes with the process and the worker ends on its own anyway.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import deque
from collections.abc import Callable

from eager_rt.backends._docker_engine import Container, ContainerSpec, Engine
from eager_rt.backends._protocol import worker_payload

__all__ = ["WarmPool"]

_RETRY_S = 5.0  # after a failed start, wait this long before trying again


class WarmPool:
    """Keeps ``size`` started containers of one :class:`ContainerSpec` ready.

    ``engine_factory`` makes the pool's own engine client, used only from the
    refill thread. Nothing starts until :meth:`start` is called.
    """

    def __init__(self, engine_factory: Callable[[], Engine], spec: ContainerSpec, size: int):
        if size < 0:
            raise ValueError("pool_size must be >= 0")
        self.spec = spec
        self.size = size
        self.last_error: BaseException | None = None  #: why the last refill failed, if it did
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self._ready: deque[Container] = deque()
        self._discard: list[Container] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        # a pool its owner forgot to close still removes its containers at
        # interpreter exit (the refill thread keeps it alive until then)
        self._finalizer = weakref.finalize(self, WarmPool._at_exit, weakref.ref(self))

    @staticmethod
    def _at_exit(ref: weakref.ref[WarmPool]) -> None:
        pool = ref()
        if pool is not None:
            pool.close(timeout=10.0)

    @property
    def ready(self) -> int:
        """Containers waiting to be taken right now."""
        with self._cond:
            return len(self._ready)

    def start(self) -> None:
        """Begin filling (idempotent)."""
        with self._cond:
            if self._closed or self.size == 0 or self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._fill_loop, name="eager_rt-docker-pool", daemon=True
            )
            self._thread.start()

    def take(self) -> Container | None:
        """A ready container, or None when the pool is empty (the caller starts one itself)."""
        with self._cond:
            while self._ready:
                container = self._ready.popleft()
                if container.socket_at_eof():  # died in the pool (docker kill, engine restart)
                    self._discard.append(container)
                    continue
                self._cond.notify_all()
                return container
            self._cond.notify_all()
            return None

    def wait_full(self, timeout: float) -> bool:
        """Block until the pool holds ``size`` containers; False on timeout or failure."""
        with self._cond:
            return (
                self._cond.wait_for(
                    lambda: (
                        self._closed or len(self._ready) >= self.size or self.last_error is not None
                    ),
                    timeout,
                )
                and len(self._ready) >= self.size
            )

    def close(self, timeout: float = 60.0) -> None:
        """Stop refilling and remove every pooled container. Blocking; idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._cond:
            leftovers = list(self._ready) + self._discard
            self._ready.clear()
            self._discard.clear()
        engine = self._engine
        if leftovers:
            with contextlib.suppress(Exception):
                engine = engine or self._engine_factory()
                self._engine = engine
            for container in leftovers:
                container.close_socket()
                if engine is not None:
                    with contextlib.suppress(Exception):
                        engine.remove(container.id)
        if engine is not None:
            with contextlib.suppress(Exception):
                engine.close()
        self._engine = None
        self._finalizer.detach()

    # ------------------------------------------------------------------ refill thread

    def _fill_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._closed or len(self._ready) < self.size or bool(self._discard)
                )
                if self._closed:
                    return
                discard, self._discard = self._discard, []
            try:
                engine = self._engine or self._engine_factory()
                self._engine = engine
                for dead in discard:
                    dead.close_socket()
                    with contextlib.suppress(Exception):
                        engine.remove(dead.id)
                with self._cond:
                    wanted = not self._closed and len(self._ready) < self.size
                if not wanted:
                    continue
                container = engine.start_container(self.spec, role="pool", preload=worker_payload())
            except Exception as exc:  # noqa: BLE001 - kept for the caller; retried later
                with self._cond:
                    self.last_error = exc
                    self._cond.notify_all()
                    self._cond.wait_for(lambda: self._closed, _RETRY_S)
                continue
            with self._cond:
                self.last_error = None
                if not self._closed:
                    self._ready.append(container)
                    self._cond.notify_all()
                    continue
            # closed while we were starting it
            container.close_socket()
            with contextlib.suppress(Exception):
                engine.remove(container.id)
            return
