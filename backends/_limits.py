"""The bounds every execution gets by default, on every backend: written once, here.

Generated code is untrusted, so a session is bounded unless its user says
otherwise: an execution may run ``exec_timeout`` seconds of wall time (then the
recovery policy of :mod:`~eager_rt.backends._recovery` interrupts it) and keep
``max_output`` bytes of output (text in UTF-8, display bundles by their
values); what comes past the cap is dropped, counted, and said in one notice,
``[... N bytes of output dropped]``, at the end of that execution's output.
Both are session options a user can raise or turn off (``None``).

A backend takes a :class:`Limits` from its options and, per execution, an
:class:`OutputBudget` that admits or drops each :class:`~eager_rt.executor.Output`
as it arrives. The worker backends also enforce the cap inside the worker, so
dropped output never crosses the channel; the host's budget is then the
backstop that keeps the host bounded whatever the other end sends.
"""

from __future__ import annotations

from dataclasses import dataclass

from eager_rt.backends import _protocol as protocol

from eager_rt.executor import Output, OutputKind

__all__ = [
    "DEFAULT_EXEC_TIMEOUT",
    "DEFAULT_MAX_OUTPUT",
    "Limits",
    "OutputBudget",
    "dropped_notice",
]

#: seconds of wall time one execution gets when ``execute`` is given no timeout
DEFAULT_EXEC_TIMEOUT = 300.0
#: bytes of output one execution keeps; past it output is dropped with a notice
DEFAULT_MAX_OUTPUT = 10 * 2**20


@dataclass(frozen=True, slots=True)
class Limits:
    """A session's default bounds; ``None`` turns one off."""

    #: wall-time seconds per execution, used when ``execute(timeout=None)``
    exec_timeout: float | None = DEFAULT_EXEC_TIMEOUT
    #: bytes of output kept per execution (and per idle spell, for background output)
    max_output: int | None = DEFAULT_MAX_OUTPUT

    def __post_init__(self) -> None:
        if self.exec_timeout is not None and not self.exec_timeout > 0:
            raise ValueError(
                f"exec_timeout must be > 0 seconds or None, not {self.exec_timeout!r}"
            )
        if self.max_output is not None and (
            isinstance(self.max_output, bool)
            or not isinstance(self.max_output, int)
            or self.max_output < 0
        ):
            raise ValueError(
                f"max_output must be a number of bytes >= 0 or None, not {self.max_output!r}"
            )

    def timeout(self, given: float | None) -> float | None:
        """The timeout an execution runs under: the caller's, else the default."""
        return self.exec_timeout if given is None else given

    def budget(self) -> OutputBudget:
        return OutputBudget(self.max_output)


def dropped_notice(dropped: int) -> str:
    """The one sentence that says output was cut, wherever it was cut."""
    return f"[... {dropped} bytes of output dropped]\n"


def output_size(output: Output) -> int:
    """What ``output`` counts against ``max_output``."""
    if output.kind == "display":
        return protocol.display_size(output.data or {})
    return protocol.output_size(output.text)


class OutputBudget:
    """What one execution may still keep of its output, and what it dropped.

    :meth:`admit` keeps an output whole while it fits, keeps the head of the
    text that crosses the cap, and drops everything after; :meth:`notice` is
    the output that says how much was dropped, in the stream where dropping
    began (``stdout`` when a display was the first to go).
    """

    __slots__ = ("_notice_kind", "dropped", "left")

    def __init__(self, max_output: int | None) -> None:
        self.left = max_output
        self.dropped = 0
        self._notice_kind: OutputKind = "stdout"

    def admit(self, output: Output) -> Output | None:
        """``output`` as far as it fits (None: nothing of it is kept)."""
        left = self.left
        if left is None:
            return output
        size = output_size(output)
        if size <= left:
            self.left = left - size
            return output
        kept = None
        if output.kind in ("stdout", "stderr") and left:
            head = protocol.cut_text(output.text, left)
            if head:
                kept = Output(output.kind, text=head, line=output.line)
                size -= protocol.output_size(head)
        self.left = 0
        self.add_dropped(output.kind, size)
        return kept

    def add_dropped(self, kind: str, count: int) -> None:
        """``count`` bytes of ``kind`` output were dropped (here, or before they were sent)."""
        if count <= 0:
            return
        if not self.dropped and kind in ("stdout", "stderr"):
            self._notice_kind = "stderr" if kind == "stderr" else "stdout"
        self.dropped += count

    def notice(self) -> Output | None:
        """The truncation notice, once something was dropped."""
        if not self.dropped:
            return None
        return Output(self._notice_kind, text=dropped_notice(self.dropped))

    def take_notice(self) -> Output | None:
        """The notice for what was dropped so far, counted from zero again afterwards."""
        notice = self.notice()
        self.dropped = 0
        return notice
