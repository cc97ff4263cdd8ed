"""One agent turn: run what the model is writing, and hand it back a tool result.

An agent loop asks a model for code, runs it, and sends the outcome back for
the next turn. :func:`arun_turn` / :func:`run_turn` do the middle part eagerly:
the model's stream (an SDK stream object, one of our adapters, or plain code
pieces) goes through the runtime, statements run while the model is still
writing, and the outcome comes back as a :class:`TurnResult` that is ready to
send: ``text`` for the model, ``data`` for programs.

The code may call host tools (``tools=``, as for
:func:`~eager_rt.runtime.arun_stream`); on failure the text also lists the
side-effecting calls that already ran (``RunResult.ledger``), so the model
does not repeat them when it continues.

On failure the result gives what the paper found repairs best from: the code
that ran, the failing statement with its traceback, and a plain statement that
nothing after it ran; the code generated after it is left out on purpose (the
model rewrites from the cut, not from its own continuation). A stream that
fails (dropped connection, provider error, malformed tool arguments) still
reports what ran before the failure.

:data:`STREAMABLE_CODE_PROMPT` is a system-prompt fragment that makes models
write code eager execution can overlap: top-level statements in order, rather
than everything inside a ``main()`` called on the last line.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from eager_rt.events import Event, ExecutionFinished, ExecutionStarted, ToolCallFinished
from eager_rt.executor import ExecResult, Output, Session
from eager_rt.result import RunResult
from eager_rt.runtime import arun_stream
from eager_rt.sources.fences import Segment
from eager_rt.sources.llm import (
    AsyncModelSource,
    ModelSource,
    ModelStreamError,
    StreamStats,
    ToolCallRecord,
    model_source,
)
from eager_rt.sources.tool_json import ToolArgumentsError
from eager_rt.sync import SyncSession
from eager_rt.tools import Tool, ToolCall

__all__ = ["STREAMABLE_CODE_PROMPT", "TurnResult", "arun_turn", "as_source", "run_turn"]

STREAMABLE_CODE_PROMPT = """\
Your Python code is executed statement by statement while you are still writing it, \
in one persistent session (variables, imports and definitions stay available). \
To make that fast and safe:
- Write the work as top-level statements in the order it should run. Do not wrap the \
program in a main() function called at the end, and do not use an \
`if __name__ == "__main__":` block: nothing inside them can start until you finish writing.
- Define a function or class right before its first use, and keep loops short; a long \
top-level loop or `with` block only runs once it is complete.
- Print intermediate results as you go (shapes, heads, key numbers) rather than all at the end.
- If a statement fails, execution stops there and you get the error together with the \
code that already ran; continue from that point rather than starting over.
"""


#: The opening of a code-running tool's description, for every adapter: what
#: the tool is; the agent's other tools are functions inside it.
RUN_CODE_INTRO = (
    "Run Python code in a persistent CPython session (the standard library and the "
    "installed packages are available; variables, imports and definitions stay defined "
    "between calls) and get back what it prints. The agent's other tools are Python "
    "functions in that session: call them from the code."
)
#: The whole description of a code-running tool: what it is, then how to write for it.
RUN_CODE_DESCRIPTION = RUN_CODE_INTRO + "\n\n" + STREAMABLE_CODE_PROMPT


@dataclass(slots=True)
class TurnResult:
    """The outcome of one turn, as text for the model and as plain data."""

    status: str  #: ``RunResult.status``, or ``stream_error`` / ``bad_arguments``
    text: str  #: the tool result to send to the model
    data: dict[str, Any]  #: the same, structured (JSON-ready)
    run: RunResult | None  #: None when the stream failed before the run could finish
    stream: StreamStats | None  #: None for plain code pieces
    outputs: list[Output] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def _calls(self) -> list[ToolCallRecord]:
        if self.stream is None:
            return []
        return [c for c in self.stream.tool_calls if c.runs and c.call_id]

    def _call_ids(self) -> list[str]:
        return [c.call_id for c in self._calls() if c.call_id]

    def openai_chat_messages(self) -> list[dict[str, Any]]:
        """``role: tool`` messages answering every code tool call (Chat Completions)."""
        return [
            {"role": "tool", "tool_call_id": cid, "content": self._text_for(i)}
            for i, cid in enumerate(self._call_ids())
        ]

    def openai_responses_items(self) -> list[dict[str, Any]]:
        """``function_call_output`` (or ``custom_tool_call_output``) items for the next request."""
        return [
            {
                "type": "custom_tool_call_output" if call.raw else "function_call_output",
                "call_id": call.call_id,
                "output": self._text_for(i),
            }
            for i, call in enumerate(self._calls())
        ]

    def anthropic_content(self) -> list[dict[str, Any]]:
        """``tool_result`` blocks for the next user message (Anthropic Messages)."""
        return [
            {
                "type": "tool_result",
                "tool_use_id": cid,
                "content": self._text_for(i),
                "is_error": not self.ok,
            }
            for i, cid in enumerate(self._call_ids())
        ]

    def _text_for(self, i: int) -> str:
        # all calls ran as one program in one session: the first answer holds the outcome
        return self.text if i == 0 else "Ran together with the previous call; see its result."


def as_source(
    stream: Any,
    *,
    started: float | None = None,
    on_segment: Callable[[Segment], None] | None = None,
    code_tools: Collection[str] | None = None,
    argument: str = "code",
    fences: bool = True,
) -> Any:
    """A token source for the runtime from whatever the caller holds.

    Our adapters pass through; SDK streams (sync or async, any supported API)
    are wrapped with API detection; anything else is taken as code pieces.
    ``code_tools`` names the model's tool calls whose ``argument`` is code
    (None: every tool call).
    """
    if isinstance(stream, ModelSource | AsyncModelSource):
        return stream
    if isinstance(stream, str):
        raise TypeError("pass an iterable of code pieces, not one string (wrap it in a list)")
    module = type(stream).__module__.split(".", 1)[0]
    if module in ("openai", "anthropic", "litellm"):
        return model_source(
            stream,
            started=started,
            on_segment=on_segment,
            tools=code_tools,
            argument=argument,
            fences=fences,
        )
    if isinstance(stream, AsyncIterable | Iterable):
        return stream
    raise TypeError(f"not a model stream or an iterable of code pieces: {stream!r}")


async def arun_turn(
    stream: Any,
    session: Session,
    *,
    started: float | None = None,
    on_segment: Callable[[Segment], None] | None = None,
    on_event: Callable[[Event], None] | None = None,
    code_tools: Collection[str] | None = None,
    argument: str = "code",
    fences: bool = True,
    exec_timeout: float | None = None,
    max_output_chars: int = 8000,
    tools: Iterable[Tool | Callable[..., Any]] | None = None,
    **runtime_options: Any,
) -> TurnResult:
    """Run the model's code eagerly on ``session`` and build the tool result.

    ``started``: an :func:`eager_rt.clock.now` reading taken before the request,
    so time to first token includes the request. ``max_output_chars`` bounds
    the output quoted in ``text`` (head and tail kept; ``data`` has it all).
    ``code_tools``: the names of the model's tool calls that carry code (see
    :func:`as_source`). ``tools``: host functions the code may call, and any
    other option of :func:`~eager_rt.runtime.arun_stream` (``approve``,
    ``speculate``, ``hold_side_effects`` ...) passes through.
    """
    if tools is not None:
        tools = list(tools)
        if any(isinstance(t, str) for t in tools):
            raise TypeError(
                "tools= takes host functions the code may call; the names of the "
                "model's tool calls that carry code go in code_tools="
            )
        runtime_options["tools"] = tools
    source = as_source(
        stream,
        started=started,
        on_segment=on_segment,
        code_tools=code_tools,
        argument=argument,
        fences=fences,
    )
    stats = source.stats if isinstance(source, ModelSource | AsyncModelSource) else None
    ran: list[tuple[str, ExecResult]] = []
    started_code: dict[int, str] = {}
    calls: list[ToolCall] = []  # as they finish: what ran, even if the run is cancelled

    def watch(event: Event) -> None:
        if isinstance(event, ToolCallFinished):
            calls.append(event.call)
        elif isinstance(event, ExecutionStarted):
            started_code[event.batch] = event.code
        elif isinstance(event, ExecutionFinished):
            ran.append((started_code.pop(event.batch, ""), event.result))
        if on_event is not None:
            on_event(event)

    try:
        run = await arun_stream(
            source, session, exec_timeout=exec_timeout, on_event=watch, **runtime_options
        )
    except (ModelStreamError, ToolArgumentsError) as exc:
        cut = "".join(started_code.values())  # started, then cancelled with the run
        return _stream_failure(exc, ran, cut, stats, max_output_chars, calls)
    cause = run.error.cause if run.error is not None and run.error.kind == "source" else None
    if isinstance(cause, ModelStreamError | ToolArgumentsError):
        # the runtime finished every complete statement before the cut; nothing was cancelled
        assert run.error is not None
        return _stream_failure(
            cause, ran, "", stats, max_output_chars, run.tool_calls, not_run=run.error.not_run
        )
    return _from_run(run, stats, max_output_chars)


def run_turn(
    stream: Any,
    session: SyncSession,
    *,
    timeout: float | None = None,
    **options: Any,
) -> TurnResult:
    """Blocking twin of :func:`arun_turn`; ``timeout`` bounds the whole turn."""
    return session.portal.call(arun_turn(stream, session.session, **options), timeout)


# -- building the result ---------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[... {cut} characters of output left out ...]\n{text[-half:]}"


def _render_outputs(outputs: list[Output], limit: int) -> str:
    parts: list[str] = []
    for o in outputs:
        if o.kind in ("stdout", "stderr"):
            parts.append(o.text)
        elif o.kind == "display" and o.data:
            kinds = ", ".join(sorted(k for k in o.data if k != "text/plain"))
            plain = o.data.get("text/plain")
            parts.append(f"[display: {kinds or 'text/plain'}]" + (f" {plain}" if plain else ""))
            parts.append("\n")
    return _clip("".join(parts), limit)


def _outputs_data(outputs: list[Output]) -> list[dict[str, Any]]:
    return [{"kind": o.kind, "text": o.text, "data": o.data} for o in outputs]


def _side_effects(calls: list[ToolCall]) -> list[ToolCall]:
    """The ledger of ``calls``: side-effecting calls that ran (see ``RunResult.ledger``)."""
    return [c for c in calls if c.ran and not c.read_only]


def _ledger_text(calls: list[ToolCall]) -> str:
    """A sentence listing the side effects that happened, so a repair does not repeat them."""
    lines = []
    for c in _side_effects(calls):
        shown = ", ".join(f"{k}={_clip_repr(v)}" for k, v in c.arguments.items())
        outcome = "returned" if c.ok else f"failed ({c.error})" if c.ok is False else "unfinished"
        lines.append(f"- {c.tool}({shown}): {outcome}")
    if not lines:
        return ""
    return "These calls of tools with side effects already ran; do not repeat them:\n" + "\n".join(
        lines
    )


def _clip_repr(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _calls_data(calls: list[ToolCall]) -> list[dict[str, Any]]:
    from eager_rt.backends import _tool_wire as wire

    return [
        {
            "id": c.id,
            "tool": c.tool,
            "arguments": wire.encode(c.arguments),
            "ok": c.ok,
            "error": c.error,
            "read_only": c.read_only,
            "approved": c.approved,
            "speculative": c.speculative,
            "wasted": c.wasted,
        }
        for c in calls
    ]


def _fence(code: str) -> str:
    body = code if code.endswith("\n") or not code else code + "\n"
    return f"```python\n{body}```"


def _from_run(run: RunResult, stats: StreamStats | None, limit: int) -> TurnResult:
    outputs = list(run.outputs)
    shown = _render_outputs(outputs, limit)
    error = run.error
    lines: list[str] = []
    if error is None:
        if run.status == "no_code":
            lines.append("The response contained no Python code to run.")
        else:
            lines.append("The code ran without errors.")
            lines.append(f"Output:\n{shown}" if shown.strip() else "It printed nothing.")
    else:
        where = f" at line {error.lineno}" if error.lineno else ""
        headline = {
            "syntax": f"The code has a syntax error{where}; nothing from that statement on ran.",
            "timeout": f"A statement{where} exceeded the time limit and was stopped.",
            "died": f"The interpreter died while running the statement{where}.",
            "interrupted": f"The statement{where} was interrupted.",
        }.get(error.kind, f"The code raised an exception{where}.")
        lines.append(headline)
        if error.code_before.strip():
            lines.append("Code that ran before it:\n" + _fence(error.code_before))
        else:
            lines.append("No code ran before it.")
        if error.statement.strip():
            lines.append("The failing statement:\n" + _fence(error.statement))
        trace = _traceback_text(error.traceback) or f"{error.ename}: {error.evalue}"
        lines.append(f"Error:\n{_clip(trace, limit)}")
        if shown.strip():
            lines.append(f"Output before the error:\n{shown}")
        lines.append(_not_run_sentence(run, error.not_run))
        ledger = _ledger_text(run.tool_calls)
        if ledger:
            lines.append(ledger)
        if error.state_lost:
            lines.append(
                "The session was restarted to recover: variables defined earlier are gone."
            )
    data: dict[str, Any] = {
        "status": run.status,
        "code": run.code,
        "code_ran": run.executed_code,
        "outputs": _outputs_data(outputs),
        "stdout": run.stdout,
        "stderr": run.stderr,
        "error": None
        if error is None
        else {
            "kind": error.kind,
            "ename": error.ename,
            "evalue": error.evalue,
            "lineno": error.lineno,
            "statement": error.statement,
            "traceback": error.traceback,
            "code_before": error.code_before,
            "not_run_chars": len(error.not_run),
            "state_lost": error.state_lost,
        },
        "stream_closed_early": run.stream_closed_early,
        "tool_calls": _calls_data(run.tool_calls),
        "ledger": [c.id for c in _side_effects(run.tool_calls)],
        "metrics": {k: getattr(run, k) for k in ("ttft_s", "gen_s", "exec_s", "nel_s", "e2el_s")},
        "stream": None if stats is None else stats.to_dict(),
    }
    return TurnResult(run.status, "\n\n".join(lines), data, run, stats, outputs)


def _traceback_text(lines: list[str]) -> str:
    """Backends give traceback lines with or without their newlines; normalise."""
    return "\n".join(line.rstrip("\n") for line in lines).strip()


def _not_run_sentence(run: RunResult, not_run: str) -> str:
    if run.stream_closed_early:
        return (
            "Nothing after the failing statement ran: generation was stopped there, "
            "so continue from this point."
        )
    if not_run.strip():
        n = not_run.count("\n") + (0 if not_run.endswith("\n") else 1)
        return f"Nothing after the failing statement ran ({n} more line(s) were not executed)."
    return "Nothing after the failing statement ran."


def _stream_failure(
    exc: Exception,
    ran: list[tuple[str, ExecResult]],
    cut: str,
    stats: StreamStats | None,
    limit: int,
    calls: list[ToolCall],
    not_run: str | None = None,
) -> TurnResult:
    """``not_run``: what the runtime did not run, when it finished the run itself."""
    outputs = [o for _, result in ran for o in result.outputs]
    shown = _render_outputs(outputs, limit)
    code_ran = "".join(code for code, _ in ran)
    if isinstance(exc, ModelStreamError):
        status = "stream_error"
        headline = f"The model's response stream failed ({exc.kind}): {exc.message}."
    else:
        status = "bad_arguments"
        headline = f"The tool call's arguments were not valid: {exc}."
    failed = [r for _, r in ran if not r.ok]
    lines = [headline]
    if code_ran.strip():
        lines.append("Code that ran before the failure:\n" + _fence(code_ran))
        if failed and failed[0].error is not None:
            e = failed[0].error
            lines.append(f"It raised {e.ename}: {e.evalue}")
        if shown.strip():
            lines.append(f"Output:\n{shown}")
    else:
        lines.append("No code ran to completion.")
    if cut.strip():
        lines.append(
            "This code was running when the stream failed and was interrupted:\n" + _fence(cut)
        )
    if not_run is not None and not not_run.strip():
        lines.append(
            "Every statement received ran; the response ended there, so the program may be "
            "unfinished."
        )
    else:
        lines.append(
            "The incomplete statement at the point of failure was not run, nor anything after it."
        )
    ledger = _ledger_text(calls)
    if ledger:
        lines.append(ledger)
    data: dict[str, Any] = {
        "status": status,
        "code": "" if stats is None else stats.code,
        "code_ran": code_ran,
        "code_interrupted": cut,
        "outputs": _outputs_data(outputs),
        "stdout": "".join(o.text for o in outputs if o.kind == "stdout"),
        "stderr": "".join(o.text for o in outputs if o.kind == "stderr"),
        "error": {
            "kind": getattr(exc, "kind", type(exc).__name__),
            "ename": type(exc).__name__,
            "evalue": str(exc),
            "pos": getattr(exc, "pos", None),
        },
        "stream_closed_early": False,
        "tool_calls": _calls_data(calls),
        "ledger": [c.id for c in _side_effects(calls)],
        "metrics": None,
        "stream": None if stats is None else stats.to_dict(),
    }
    return TurnResult(status, "\n\n".join(lines), data, None, stats, outputs)
