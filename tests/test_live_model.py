"""The live views' one set of rules (:mod:`eager_rt.live_model`): events in, states out.

Hand-made event sequences pin each rule; runs of the real runtime on a
:class:`~eager_rt.testing.FakeSession` (virtual time) check the rules hold on
the sequences the runtime really sends: batching, serial mode, a failure that
interrupts generation.
"""

from __future__ import annotations

from typing import Any

from eager_rt.chunk import Chunk, SyntaxErrorInfo
from eager_rt.events import (
    ChunkDetected,
    Event,
    ExecutionFinished,
    ExecutionStarted,
    Interrupted,
    OutputEvent,
    ToolCallFinished,
)
from eager_rt.executor import ErrorInfo, ExecResult, Output, Status
from eager_rt.live_model import LiveModel, State, describe_tool_call
from eager_rt.runtime import Mode, arun_stream
from eager_rt.testing import FakeSession, Rule, paced, run_virtual
from eager_rt.tools import ToolCall


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def model(clock: Clock | None = None) -> LiveModel:
    shown: list[dict[str, Any]] = []

    def show(data: dict[str, Any]) -> str:
        shown.append(data)
        return f"[display {len(shown)}]"

    live = LiveModel(show_display=show, clock=clock or Clock())
    live.shown = shown  # type: ignore[attr-defined]
    return live


def statements(live: LiveModel, *codes: str, first_line: int = 1) -> None:
    """Stream ``codes`` and detect each as one statement, in order."""
    offset, line = len(live.text), first_line
    for code in codes:
        live.code(code)
        index = len(live.order)
        chunk = Chunk(code, index, offset, offset + len(code), offset + len(code.rstrip()),
                      line, "statement")  # fmt: skip
        live.apply(ChunkDetected(chunk, 0.0))
        offset += len(code)
        line += code.count("\n")


def ok() -> ExecResult:
    return ExecResult(Status.OK)


def error(lineno: int | None) -> ExecResult:
    return ExecResult(Status.ERROR, error=ErrorInfo("ValueError", "bad", lineno=lineno))


def test_a_statement_goes_detected_running_done_with_its_output_under_it() -> None:
    live = model()
    statements(live, "x = 1\n")
    assert live.states() == [(0, "detected")]
    live.apply(ExecutionStarted(0, (0,), "x = 1\n", 0.0))
    statements(live, "print(x)\n", first_line=2)  # written while x = 1 runs: it waits
    assert live.states() == [(0, "running"), (1, "queued")]
    live.apply(ExecutionFinished(0, ok(), 0.0))
    # nothing runs any more: the one waiting behind it is simply detected again
    assert live.states() == [(0, "done"), (1, "detected")]
    live.apply(ExecutionStarted(1, (1,), "print(x)\n", 0.0))
    live.apply(OutputEvent(1, Output("stdout", text="1\n"), 0.0))
    live.apply(OutputEvent(1, Output("stderr", text="warn\n"), 0.0))
    live.apply(ExecutionFinished(1, ok(), 0.0))
    assert live.states() == [(0, "done"), (1, "done")]
    assert [b.pieces for b in live.blocks_under(1)] == [[("stdout", "1\n"), ("stderr", "warn\n")]]
    assert live.blocks_under(0)[0].pieces == []
    assert live.counts() == {"done": 2}


def test_a_batch_runs_its_statements_together_and_shows_its_output_under_the_last() -> None:
    live = model()
    statements(live, "a = 1\n", "b = 2\n", "print(a + b)\n")
    live.apply(ExecutionStarted(0, (0, 1, 2), "...", 0.0))
    assert live.states() == [(0, "running"), (1, "running"), (2, "running")]
    assert [live.statements[i].batch for i in range(3)] == [0, 0, 0]
    live.apply(OutputEvent(0, Output("stdout", text="3\n"), 0.0))
    live.apply(ExecutionFinished(0, ok(), 0.0))
    assert live.states() == [(0, "done"), (1, "done"), (2, "done")]
    assert live.blocks_under(2)[0].pieces == [("stdout", "3\n")]
    assert live.blocks_under(0) == [] and live.blocks_under(1) == []


def test_a_failing_batch_marks_the_statement_at_the_error_line_and_not_the_rest() -> None:
    live = model()
    statements(live, "a = 1\n", "b = int('x')\n", "c = 3\n")
    live.apply(ExecutionStarted(0, (0, 1, 2), "...", 0.0))
    statements(live, "d = 4\n", first_line=4)
    assert live.statements[3].state == "queued"
    live.apply(OutputEvent(0, Output("stdout", text="before\n"), 0.0))
    live.apply(ExecutionFinished(0, error(2), 0.0))
    assert live.states() == [(0, "done"), (1, "failed"), (2, "not_run"), (3, "detected")]
    # the output goes under the last statement that ran, the error alone under the failing one
    assert live.blocks_under(0)[0].pieces == [("stdout", "before\n")]
    assert live.blocks_under(1) == []


def test_a_batch_failing_at_its_first_statement_shows_its_output_under_it() -> None:
    live = model()
    statements(live, "a = f()\n", "b = 2\n")
    live.apply(ExecutionStarted(0, (0, 1), "...", 0.0))
    live.apply(OutputEvent(0, Output("stdout", text="in f\n"), 0.0))
    live.apply(ExecutionFinished(0, error(1), 0.0))
    assert live.states() == [(0, "failed"), (1, "not_run")]
    assert live.blocks_under(0)[0].pieces == [("stdout", "in f\n")]


def test_a_failure_without_a_line_is_put_on_the_batch_s_last_statement() -> None:
    live = model()
    statements(live, "a = 1\n", "b = 2\n")
    live.apply(ExecutionStarted(0, (0, 1), "...", 0.0))
    live.apply(ExecutionFinished(0, error(None), 0.0))
    assert live.states() == [(0, "done"), (1, "failed")]


def test_a_syntax_error_is_failed_with_its_message_and_trivia_is_not_a_statement() -> None:
    live = model()
    live.code("x = (\n# end\n")
    bad = Chunk("x = (\n", 0, 0, 6, 5, 1, "syntax_error",
                error=SyntaxErrorInfo("'(' was never closed", 1, 5))  # fmt: skip
    trivia = Chunk("# end\n", 1, 6, 12, 6, 2, "trivia")
    live.apply(ChunkDetected(bad, 0.0))
    live.apply(ChunkDetected(trivia, 0.0))
    assert live.states() == [(0, "failed")]
    assert live.statements[0].note == "SyntaxError: '(' was never closed"
    assert live.detected_end == 12  # the trivia is detected: no code is left undetected
    assert live.detected_end_line == 1  # but no statement starts past the first line


def test_a_statement_s_lines_skip_the_blank_lines_it_carries() -> None:
    live = model()
    live.code("x = 1\n\n\nfor i in range(2):\n    print(i)\n")
    live.apply(ChunkDetected(Chunk("x = 1\n", 0, 0, 6, 5, 1, "statement"), 0.0))
    loop = "\n\nfor i in range(2):\n    print(i)\n"
    live.apply(ChunkDetected(Chunk(loop, 1, 6, 6 + len(loop), 37, 2, "statement"), 0.0))
    statement = live.statements[1]
    assert (statement.first, statement.last) == (3, 4)
    assert live.at_line(3) is statement and live.at_line(1) is None and live.at_line(2) is None
    assert live.ending_at(4) == [statement] and live.ending_at(3) == []
    assert live.detected_end_line == 5


def test_displays_are_shown_once_as_they_arrive_and_clear_output_clears_the_block() -> None:
    live = model()
    statements(live, "show()\n")
    live.apply(ExecutionStarted(0, (0,), "show()\n", 0.0))
    live.apply(OutputEvent(0, Output("stdout", text="10%\n"), 0.0))
    live.apply(OutputEvent(0, Output("display", data={"text/plain": "fig"}), 0.0))
    live.apply(OutputEvent(0, Output("clear"), 0.0))
    live.apply(OutputEvent(0, Output("display", data={"text/plain": "fig2"}), 0.0))
    live.apply(OutputEvent(0, Output("stdout", text="100%\n"), 0.0))
    assert live.shown == [{"text/plain": "fig"}, {"text/plain": "fig2"}]  # type: ignore[attr-defined]
    assert live.blocks_under(0)[0].pieces == [("display", "[display 2]"), ("stdout", "100%\n")]


def test_output_of_an_unknown_execution_is_ignored() -> None:
    live = model()
    statements(live, "x = 1\n")
    live.apply(OutputEvent(7, Output("stdout", text="stray\n"), 0.0))
    live.apply(ExecutionFinished(7, ok(), 0.0))
    assert live.blocks == {} and live.states() == [(0, "detected")]


def test_a_tool_call_goes_under_the_running_statement_or_into_the_notes() -> None:
    live = model()
    statements(live, "print(double(2))\n")
    call = ToolCall(1, "double", {"x": 2}, started=1.0, ended=1.25, ok=True)
    live.apply(ExecutionStarted(0, (0,), "...", 0.0))
    live.apply(ToolCallFinished(call, 0.0))
    assert live.blocks_under(0)[0].pieces == [("tool", "tool double() #1 returned in 0.250s\n")]
    live.apply(ExecutionFinished(0, ok(), 0.0))
    failed = ToolCall(2, "fetch", {}, started=2.0, ok=False, error="OSError: down",
                      speculative=True, claimed=False)  # fmt: skip
    live.apply(ToolCallFinished(failed, 0.0))
    assert [(n.tone, n.text) for n in live.notes] == [
        ("tool", "tool fetch() #2 failed: OSError: down")
    ]
    assert describe_tool_call(failed, speculation=True).endswith(" (speculative, unclaimed)")


def test_a_tool_call_of_a_batch_goes_under_the_statement_that_made_it() -> None:
    live = model()
    statements(live, "a = double(1)\n", "b = double(2)\n", "c = 3\n")
    live.apply(ExecutionStarted(0, (0, 1, 2), "...", 0.0))
    for number, line in ((1, 1), (2, 2)):
        call = ToolCall(number, "double", {"x": number}, started=0.0, ended=0.5, ok=True, line=line)
        live.apply(ToolCallFinished(call, 0.0))
    live.apply(ExecutionFinished(0, ok(), 0.0))
    assert [b.pieces for b in live.blocks_under(0)] == [
        [("tool", "tool double() #1 returned in 0.500s\n")]
    ]
    assert [b.pieces for b in live.blocks_under(1)] == [
        [("tool", "tool double() #2 returned in 0.500s\n")]
    ]
    assert [b.pieces for b in live.blocks_under(2) if b.pieces] == []


def test_the_status_facts_follow_the_run() -> None:
    clock = Clock()
    live = model(clock)
    clock.now = 1.0
    live.start_clock()
    assert live.doing() == "waiting for the first token" and live.rate() is None
    clock.now = 2.0
    live.code("x = 1\n")
    assert live.rate() is None  # one piece is no rate yet
    clock.now = 2.5
    live.code("y = 2\n")
    live.apply(ChunkDetected(Chunk("x = 1\n", 0, 0, 6, 5, 1, "statement"), 0.0))
    live.apply(ChunkDetected(Chunk("y = 2\n", 1, 6, 12, 11, 2, "statement"), 0.0))
    assert live.rate() == 2.0 and live.pieces == 2
    assert live.doing() == "model writing"
    live.apply(ExecutionStarted(0, (0,), "x = 1\n", 0.0))
    assert live.doing() == "running line 1, model writing"
    live.generation_ended()
    live.apply(ExecutionFinished(0, ok(), 0.0))
    live.apply(ExecutionStarted(1, (0, 1), "...", 0.0))
    assert live.doing() == "running lines 1-2"
    live.apply(ExecutionFinished(1, ok(), 0.0))
    assert live.doing() == "idle"
    clock.now = 4.0
    assert live.elapsed() == 3.0
    live.stop("stopped")
    clock.now = 9.0
    assert live.elapsed() == 3.0 and live.doing() == "finished"  # frozen at the end


def test_stopping_fails_what_runs_and_leaves_the_rest_not_run() -> None:
    live = model()
    statements(live, "a = 1\n", "slow()\n", "after()\n")
    live.apply(ExecutionStarted(0, (0,), "a = 1\n", 0.0))
    live.apply(ExecutionFinished(0, ok(), 0.0))
    live.apply(ExecutionStarted(1, (1,), "slow()\n", 0.0))
    version = live.version
    live.stop("stopped: interrupted")
    assert live.version > version
    assert live.states() == [(0, "done"), (1, "failed"), (2, "not_run")]
    assert live.statements[1].note == "stopped: interrupted"
    assert not live.generating and live.running is None
    live.stop("again")  # a finished run is not settled twice
    assert live.statements[1].note == "stopped: interrupted"


def test_prose_before_and_after_the_code_are_kept_apart() -> None:
    live = model()
    live.prose("Here it is.\n")
    live.code("x = 1\n")
    live.prose("Done.\n")
    assert (live.prose_before, live.prose_after) == ("Here it is.\n", "Done.\n")


# ------------------------------------------------------------------ with the real runtime


def observe(
    code: list[str], rules: list[Rule], *, mode: Mode = "eager", batching: bool = True,
    tps: float = 10,
) -> tuple[LiveModel, list[list[tuple[int, State]]], list[Event]]:  # fmt: skip
    """Run ``code`` through the runtime into a model; the states after every event."""
    live = model()
    seen: list[list[tuple[int, State]]] = []
    events: list[Event] = []

    def on_event(event: Event) -> None:
        live.apply(event)
        events.append(event)
        seen.append(live.states())

    async def main() -> None:
        session = FakeSession(rules)
        source = paced(code, tps=tps)

        async def watched() -> Any:
            async for piece in source:
                live.code(piece)
                yield piece
            live.generation_ended()

        await arun_stream(watched(), session, mode=mode, batching=batching, on_event=on_event)

    run_virtual(main())
    return live, seen, events


def test_eager_runs_overlap_generation_and_batch_what_waited() -> None:
    code = ["slow()\n", "a = 1\n", "b = 2\n", "print(a + b)\n"]
    rules = [Rule("slow(", cost=2.0), Rule("print(", stdout="3\n")]
    live, seen, _ = observe(code, rules)
    assert "queued" in {s for states in seen for _, s in states}
    assert live.states() == [(0, "done"), (1, "done"), (2, "done"), (3, "done")]
    # the three written while slow() ran went together, and the output came under the last
    assert [b.chunks for b in live.blocks.values()] == [(0,), (1, 2, 3)]
    assert live.blocks_under(3)[0].pieces == [("stdout", "3\n")]
    assert live.finished and live.doing() == "finished"


def test_each_statement_of_a_batch_shows_its_own_output() -> None:
    code = ["slow()\n", "print('a')\n", "b = 2\n", "print('c')\n"]
    rules = [Rule("slow(", cost=2.0), Rule("print('a')", stdout="a\n"),
             Rule("print('c')", stdout="c\n")]  # fmt: skip
    live, _, events = observe(code, rules)
    assert [b.chunks for b in live.blocks.values()] == [(0,), (1, 2, 3)]
    outputs = [e.output for e in events if isinstance(e, OutputEvent)]
    assert [(o.text, o.line) for o in outputs] == [("a\n", 2), ("c\n", 4)]
    assert [b.pieces for b in live.blocks_under(1)] == [[("stdout", "a\n")]]
    assert live.blocks_under(2) == []
    assert [b.pieces for b in live.blocks_under(3) if b.pieces] == [[("stdout", "c\n")]]


def test_output_no_statement_claims_stays_under_the_batch_anchor() -> None:
    live = model()
    statements(live, "a = 1\n", "print(a)\n", "b = 2\n")
    live.apply(ExecutionStarted(0, (0, 1, 2), "a = 1\nprint(a)\nb = 2\n", 0.0))
    live.apply(OutputEvent(0, Output("stdout", "1\n", line=2), 0.0))
    live.apply(OutputEvent(0, Output("stderr", "from a thread\n"), 0.0))
    live.apply(OutputEvent(0, Output("stdout", "before the code\n", line=0), 0.0))
    live.apply(ExecutionFinished(0, error(3), 0.0))
    assert live.states() == [(0, "done"), (1, "done"), (2, "failed")]
    assert [b.pieces for b in live.blocks_under(1)] == [
        [("stdout", "1\n")],
        [("stderr", "from a thread\n"), ("stdout", "before the code\n")],
    ]
    assert live.blocks_under(2) == [] and live.blocks_under(0) == []


def test_clear_output_clears_every_statement_of_its_execution() -> None:
    live = model()
    statements(live, "print(1)\n", "print(2)\n")
    live.apply(ExecutionStarted(0, (0, 1), "print(1)\nprint(2)\n", 0.0))
    live.apply(OutputEvent(0, Output("stdout", "1\n", line=1), 0.0))
    live.apply(OutputEvent(0, Output("stdout", "2\n", line=2), 0.0))
    live.apply(OutputEvent(0, Output("clear"), 0.0))
    live.apply(OutputEvent(0, Output("stdout", "again\n", line=2), 0.0))
    assert [b.pieces for b in live.blocks_under(0)] == [[]]
    assert [b.pieces for b in live.blocks_under(1) if b.pieces] == [[("stdout", "again\n")]]


def test_no_batching_runs_one_statement_an_execution() -> None:
    code = ["slow()\n", "a = 1\n", "b = 2\n"]
    live, _, _ = observe(code, [Rule("slow(", cost=2.0)], batching=False)
    assert [b.chunks for b in live.blocks.values()] == [(0,), (1,), (2,)]
    assert live.states() == [(0, "done"), (1, "done"), (2, "done")]


def test_serial_mode_detects_everything_first_then_runs_it_at_once() -> None:
    code = ["a = 1\n", "b = 2\n", "print(a + b)\n"]
    live, seen, events = observe(code, [Rule("print(", stdout="3\n")], mode="serial")
    started = next(i for i, e in enumerate(events) if isinstance(e, ExecutionStarted))
    assert all(s == "detected" for states in seen[:started] for _, s in states)
    assert seen[started - 1] == [(0, "detected"), (1, "detected"), (2, "detected")]
    assert seen[started] == [(0, "running"), (1, "running"), (2, "running")]
    assert live.states() == [(0, "done"), (1, "done"), (2, "done")]
    assert live.blocks_under(2)[0].pieces == [("stdout", "3\n")]


def test_a_failure_interrupts_generation_and_settles_every_statement() -> None:
    code = ["a = 1\n", "b = a / 0\n", "c = 3\n", "d = 4\n", "e = 5\n"]
    rules = [Rule("a / 0", raises="ZeroDivisionError", evalue="division by zero")]
    live, _, events = observe(code, rules, tps=2)
    assert any(isinstance(e, Interrupted) for e in events)
    states = dict(live.states())
    assert states[0] == "done" and states[1] == "failed"
    assert all(state == "not_run" for index, state in states.items() if index > 1)
    assert live.statements[1].note.startswith("ZeroDivisionError: division by zero")
    assert [n.tone for n in live.notes] == ["warning"]
    assert live.notes[0].text.startswith("generation stopped early")
    assert not live.generating and live.finished
