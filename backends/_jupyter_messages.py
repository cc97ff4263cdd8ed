"""Jupyter messaging protocol <-> eager_rt values, shared by the local and remote kernel transports.

A transport (``_jupyter_local``, ``_jupyter_remote``) only moves messages; this
module says what they mean: which iopub messages become :class:`Output` values,
how an ``error`` becomes an :class:`ErrorInfo` (ANSI colours stripped, the failing
line found in IPython's ``Cell In[n], line m`` frames). The code each kernel
runs right after it starts is :mod:`._ipython_setup`'s, shared with E2B.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eager_rt.executor import ErrorInfo, Output

__all__ = [
    "KernelDied",
    "KernelMessage",
    "error_info",
    "new_message",
    "output_from_iopub",
    "strip_ansi",
]

PROTOCOL_VERSION = "5.3"

# CSI sequences (colours, cursor moves) and the two-byte escapes IPython's
# formatters may emit; OSC hyperlinks end in BEL or ST.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CELL_FRAME = re.compile(r"Cell In\[(\d+)\], line (\d+)")


class KernelDied(Exception):
    """Raised by a transport when its kernel is gone; the message is the human detail."""


@dataclass(frozen=True, slots=True)
class KernelMessage:
    """One message from a kernel, reduced to what the session looks at."""

    channel: str  #: "iopub", "shell" or "stdin"
    msg_type: str
    parent_id: str | None
    content: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, channel: str, msg: dict[str, Any]) -> KernelMessage:
        """From a message dict as ``jupyter_client`` or a gateway's websocket delivers it."""
        header = msg.get("header") or {}
        parent = msg.get("parent_header") or {}
        return cls(
            channel=channel,
            msg_type=str(header.get("msg_type") or msg.get("msg_type") or ""),
            parent_id=parent.get("msg_id"),
            content=dict(msg.get("content") or {}),
            metadata=dict(msg.get("metadata") or {}),
        )


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences."""
    return _ANSI.sub("", text)


def error_info(content: dict[str, Any], execution_count: int | None) -> ErrorInfo:
    """An ``error`` message (or error ``execute_reply``) as an :class:`ErrorInfo`.

    IPython names every frame of a cell ``Cell In[<execution count>], line <n>``.
    The first such frame of *this* execution's count is the top-level statement
    of the executed code that was running, the one the runtime must name (the
    local backend reports the same); frames of cells run earlier, say a function
    defined in a previous chunk, carry their own count and are skipped.
    """
    traceback = [strip_ansi(str(line)) for line in content.get("traceback") or []]
    lineno: int | None = None
    for line in traceback:
        for match in _CELL_FRAME.finditer(line):
            count, number = int(match.group(1)), int(match.group(2))
            if lineno is None and (execution_count is None or count == execution_count):
                lineno = number
    return ErrorInfo(
        ename=str(content.get("ename", "")),
        evalue=str(content.get("evalue", "")),
        traceback=traceback,
        lineno=lineno,
    )


def output_from_iopub(msg: KernelMessage) -> Output | None:
    """The :class:`Output` an iopub message carries, or None for bookkeeping messages.

    ``execute_result`` (a bare expression under notebook semantics) and
    ``update_display_data`` are displays like any other: the runtime has no
    notion of an output prompt or of a display id to update in place.
    """
    content = msg.content
    if msg.msg_type == "stream":
        text = str(content.get("text", ""))
        if content.get("name") == "stderr":
            return Output(kind="stderr", text=text)
        return Output(kind="stdout", text=text)
    if msg.msg_type in ("display_data", "execute_result", "update_display_data"):
        return Output(
            kind="display",
            data=dict(content.get("data") or {}),
            metadata=dict(content.get("metadata") or {}),
        )
    if msg.msg_type == "clear_output":
        return Output(kind="clear", metadata={"wait": bool(content.get("wait", False))})
    return None


def new_message(
    msg_type: str, content: dict[str, Any], session_id: str, channel: str = "shell"
) -> dict[str, Any]:
    """A client message in the JSON form a gateway's websocket accepts."""
    msg_id = uuid.uuid4().hex
    return {
        "header": {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "username": "eager_rt",
            "session": session_id,
            "date": datetime.now().astimezone().isoformat(),
            "version": PROTOCOL_VERSION,
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": channel,
        "buffers": [],
    }


def execute_content(
    code: str, *, silent: bool = False, user_expressions: dict[str, str] | None = None
) -> dict[str, Any]:
    """The content of an ``execute_request``.

    Stdin is offered: host tool replies travel on it (see ``_kernel_tools``);
    ``input()`` in user code still fails at once, the kernel's setup sees to it.
    """
    return {
        "code": code,
        "silent": silent,
        "store_history": not silent,
        "user_expressions": dict(user_expressions or {}),
        "allow_stdin": True,
        "stop_on_error": False,
    }
