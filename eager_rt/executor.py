"""The executor interface: the one narrow cut between the runtime and every backend.

The runtime (``eager_rt.runtime``) only ever talks to a :class:`Session`; it never
knows whether the code runs in a local subprocess, a container, a Jupyter kernel
or a cloud sandbox. Like an httpx transport, this layer deals in plain values:
code goes in as a string, an :class:`ExecResult` comes out, and output is
streamed through a callback while the code runs. Everything friendlier lives
above it.

A backend is a factory of sessions (it may hold shared resources such as an
engine client or a warm pool). Backends are discovered by name through the
entry-point group ``eager_rt.backends`` (see :mod:`eager_rt.registry`).

All methods are async; :mod:`eager_rt.sync` gives the blocking facade.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Literal

from eager_rt.closing import AsyncClosing

__all__ = [
    "Backend",
    "BackendError",
    "ErrorInfo",
    "ExecResult",
    "Output",
    "OutputCallback",
    "Session",
    "SessionDead",
    "Status",
    "ToolHandler",
    "display_bundles",
    "stream_text",
]


class Status(enum.StrEnum):
    """How one execution ended."""

    OK = "ok"
    ERROR = "error"  #: the code raised; ``ExecResult.error`` says what
    TIMEOUT = "timeout"  #: the per-execution timeout fired (see ``state_lost``)
    INTERRUPTED = "interrupted"  #: ``Session.interrupt()`` stopped it
    DIED = "died"  #: the worker/kernel/container went away while it ran


OutputKind = Literal["stdout", "stderr", "display", "clear"]


@dataclass(frozen=True, slots=True)
class Output:
    """One piece of output, in the order the code produced it.

    ``stdout``/``stderr`` carry ``text``; ``display`` carries a MIME bundle in
    ``data`` (``{"image/png": <base64 str>, "text/plain": ...}``, the Jupyter
    convention, so bundles pass between backends unchanged); ``clear`` asks a
    front end to clear what was displayed before (Jupyter ``clear_output``).

    ``line``: the first line, in the executed code, of the top-level
    statement that was running when the code wrote this, for code of
    several statements (None: one statement, or not known, like another
    thread's output on a worker backend); a view of a batch shows each
    output under its own statement. Not compared: it says where, not what.
    """

    kind: OutputKind
    text: str = ""
    data: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    line: int | None = field(default=None, compare=False)


OutputCallback = Callable[[Output], None]

#: Runs one tool call made by the code: a request ``{"tool", "args", "call"}`` (plain
#: JSON, see :mod:`eager_rt.tools`) in, the reply for the sandbox out. A backend
#: calls it while the code waits for the reply.
ToolHandler = Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]


def stream_text(outputs: Sequence[Output], kind: Literal["stdout", "stderr"]) -> str:
    """Everything one stream printed, in order."""
    return "".join(o.text for o in outputs if o.kind == kind)


def display_bundles(outputs: Sequence[Output]) -> list[dict[str, Any]]:
    """The MIME bundles that were displayed, in order."""
    return [o.data for o in outputs if o.kind == "display" and o.data is not None]


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An exception raised by user code, as plain values.

    ``lineno`` is the line, 1-based *within the executed code string*, of the
    *outermost* frame that belongs to that code, i.e. the top-level statement
    that was running when it raised (for a SyntaxError of the code itself: the
    error's line), when the backend can tell. The runtime pads each batch to
    its stream line and uses ``lineno`` to say which statement failed.
    """

    ename: str
    evalue: str
    traceback: list[str] = field(default_factory=list)
    lineno: int | None = None


@dataclass(slots=True)
class ExecResult:
    """The full outcome of one :meth:`Session.execute` call.

    ``started``/``ended`` are :func:`eager_rt.clock.now` readings taken on the
    host, so they compare directly with the runtime's own timestamps.
    ``state_lost`` is true when the session had to be restarted to recover (a
    timeout the code ignored, a dead worker): variables defined before are gone.
    """

    status: Status
    outputs: list[Output] = field(default_factory=list)
    error: ErrorInfo | None = None
    started: float = 0.0
    ended: float = 0.0
    state_lost: bool = False
    detail: str = ""  #: a human sentence for non-ok results ("killed by SIGKILL (out of memory?)")

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @property
    def stdout(self) -> str:
        return stream_text(self.outputs, "stdout")

    @property
    def stderr(self) -> str:
        return stream_text(self.outputs, "stderr")

    @property
    def displays(self) -> list[dict[str, Any]]:
        return display_bundles(self.outputs)

    @property
    def duration(self) -> float:
        return self.ended - self.started


class BackendError(RuntimeError):
    """A backend could not do what was asked (start, restart, reach its service)."""


class SessionDead(BackendError):
    """The session is not alive; start or restart it first."""


class Session(ABC):
    """One persistent interpreter state: imports and variables survive between executions.

    Contract every backend honours (the conformance suite in ``tests/`` checks it):

    * ``execute`` never raises for anything the *code* does. Exceptions, timeouts,
      interrupts and a dying worker all come back as an :class:`ExecResult` with
      the matching :class:`Status`. It raises :class:`SessionDead` only when
      called on a session that is not alive, and :class:`BackendError` when the
      backend itself fails (for example a service that cannot be reached).
    * Output is delivered to ``on_output`` as it happens, and also collected in
      ``ExecResult.outputs`` in the same order.
    * On timeout the session first interrupts; if the code does not stop within
      ``interrupt_grace`` seconds the session is restarted and the result says
      ``state_lost=True``. After a ``died`` result the session has been restarted
      too (``state_lost=True``) when ``auto_restart`` is on, else it is not alive.
    * ``execute`` calls are serial: a second call while one runs waits for its
      turn (first come, first served), and its ``timeout`` starts with its turn.
    * If the task awaiting ``execute`` is cancelled, the session interrupts the
      running code (killing and restarting the worker if it will not stop) before
      the cancellation propagates, so no code keeps running behind the caller's back.
    * ``close`` is idempotent and leaves no process, container or kernel behind.
    """

    #: name of the backend that made this session (for reports)
    backend_name: ClassVar[str] = "?"

    @property
    @abstractmethod
    def alive(self) -> bool:
        """True once started and until closed or dead."""

    @abstractmethod
    async def start(self, timeout: float | None = None) -> None:
        """Bring the interpreter up; a no-op when already alive."""

    @abstractmethod
    async def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
        tools: ToolHandler | None = None,
    ) -> ExecResult:
        """Run ``code`` in the session's global namespace and report how it ended.

        ``tools`` answers the host tool calls the code makes while it runs
        (the stubs that make them are defined by :func:`eager_rt.tools.stub_source`);
        without it such a call raises ``ToolError`` in the code.
        """

    async def peek(
        self, names: Sequence[str], *, timeout: float | None = 10.0
    ) -> dict[str, Any] | None:
        """The values bound to ``names`` that are plain data, read without running code.

        Plain data: str, int, float, bool, None, bytes, and lists, tuples and
        str-keyed dicts of them, of bounded size; other names are left out.
        Served between executions (it waits for its turn like ``execute``).
        None: this backend cannot read values without running code; the
        runtime's speculation then uses literal arguments only.
        """
        return None

    @abstractmethod
    async def interrupt(self) -> None:
        """Raise KeyboardInterrupt in the running code; state is kept. No-op when idle."""

    @abstractmethod
    async def restart(self, timeout: float | None = None) -> None:
        """Throw the state away and start a fresh interpreter."""

    @abstractmethod
    async def close(self) -> None:
        """Release everything the session holds. Idempotent."""

    async def __aenter__(self) -> Session:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class Backend(AsyncClosing):
    """A named factory of sessions, configured once (image, URL, API key, pool size ...).

    Subclasses are registered under the entry-point group ``eager_rt.backends``;
    their constructor takes keyword options only, all with defaults, so
    ``get_backend("local")()`` always works.
    """

    name: ClassVar[str] = "?"

    def __init__(self, **options: Any) -> None:  # noqa: B027 - subclasses take their options
        """Backends take keyword options only, every one with a default."""

    @abstractmethod
    def session(self, **options: Any) -> Session:
        """A new, not yet started, session."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release shared resources (pools, clients). Sessions are closed by their owners."""
