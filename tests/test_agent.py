"""The agent-turn helper: a model stream in, a tool result ready for the model out."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

import eager_rt
from eager_rt.agent import STREAMABLE_CODE_PROMPT, TurnResult, arun_turn, run_turn
from eager_rt.executor import Session
from eager_rt.sync import SyncSession
from tests.fake_llm import FakeLLM, Faults, Reply, pieces, tool_fragments


def fenced(code: str, size: int = 5) -> Reply:
    return Reply(text=["Here you go:\n```python\n", *pieces(code, size), "```\nHope that helps.\n"])


async def openai_turn(
    reply: Reply,
    session: Session,
    api: str = "chat",
    faults: Faults | None = None,
    **options: Any,
) -> TurnResult:
    """``reply`` served by the fake model, streamed by the OpenAI client's ``api`` into a turn."""
    with FakeLLM(reply, faults) as llm:
        client = openai.AsyncOpenAI(
            base_url=llm.openai_url, api_key="test", max_retries=0, timeout=30
        )
        try:
            if api == "chat":
                stream: Any = await client.chat.completions.create(
                    model="m", messages=[], stream=True
                )
            else:
                stream = await client.responses.create(model="m", input="go", stream=True)
            return await arun_turn(stream, session, **options)
        finally:
            await client.close()


@pytest.mark.anyio
async def test_successful_turn_reports_the_output(local_session: Session) -> None:
    reply = fenced("total = sum(range(5))\nprint('total', total)\n")
    turn = await openai_turn(reply, local_session)  # a raw SDK stream: API detected
    assert turn.ok and turn.status == "ok"
    assert "ran without errors" in turn.text
    assert "total 10" in turn.text
    assert turn.data["stdout"] == "total 10\n"
    assert turn.data["code"] == "total = sum(range(5))\nprint('total', total)\n"
    assert turn.data["error"] is None
    assert turn.stream is not None and turn.stream.api == "chat"
    assert "Hope that helps." in turn.stream.prose
    assert turn.openai_chat_messages() == []  # no tool call to answer: the code came in prose


FAILING = (
    "rows = [3, 1, 2]\n"
    "print(sorted(rows))\n"
    "ratio = rows[0] / (rows[1] - 1)\n"
    "print('after the failure')\n"
    "summary = {'n': len(rows)}\n" * 20
)


@pytest.mark.anyio
async def test_failing_turn_gives_the_partial_program(local_session: Session) -> None:
    reply = Reply(tools=[("python", tool_fragments(FAILING))])
    with FakeLLM(reply, Faults(hold_after=20, hold_timeout=20)) as llm:
        client = anthropic.AsyncAnthropic(
            base_url=llm.url, api_key="test", max_retries=0, timeout=30
        )
        try:
            stream = await client.messages.create(
                model="m",
                max_tokens=500,
                messages=[{"role": "user", "content": "go"}],
                stream=True,
            )
            turn = await arun_turn(stream, local_session)
        finally:
            await client.close()
        log = llm.wait_done(0)
    assert turn.status == "error"
    text = turn.text
    assert "The failing statement:\n```python\nratio = rows[0] / (rows[1] - 1)\n```" in text
    assert "Code that ran before it:\n```python\nrows = [3, 1, 2]\nprint(sorted(rows))\n```" in text
    assert "ZeroDivisionError" in text
    assert "[1, 2, 3]" in text  # the output before the failure
    assert "Nothing after the failing statement ran" in text
    assert "after the failure" not in text  # the code after the cut is left out on purpose
    error = turn.data["error"]
    assert error["ename"] == "ZeroDivisionError" and error["lineno"] == 3
    assert turn.data["stream_closed_early"]
    assert log.client_closed
    (block,) = turn.anthropic_content()
    assert block["type"] == "tool_result" and block["tool_use_id"] == "toolu_fake0"
    assert block["is_error"] is True and block["content"] == text


@pytest.mark.anyio
async def test_responses_tool_call_answer_items(local_session: Session) -> None:
    reply = Reply(tools=[("python", tool_fragments("print(6 * 7)"))])
    turn = await openai_turn(reply, local_session, "responses")
    assert turn.ok
    assert turn.openai_responses_items() == [
        {"type": "function_call_output", "call_id": "call_fake0", "output": turn.text}
    ]


@pytest.mark.anyio
async def test_custom_tool_call_is_answered_with_its_own_item_type(
    local_session: Session,
) -> None:
    reply = Reply(custom_tools=[("python", ["print(", "'free form')\n"])])
    turn = await openai_turn(reply, local_session, "responses")
    assert turn.data["stdout"] == "free form\n"
    assert turn.openai_responses_items() == [
        {"type": "custom_tool_call_output", "call_id": "call_custom0", "output": turn.text}
    ]


@pytest.mark.anyio
async def test_state_carries_over_between_turns(local_session: Session) -> None:
    first = await arun_turn(["base = 40\n"], local_session)
    second = await arun_turn(["print(base + 2)\n"], local_session)
    assert first.ok and second.ok
    assert second.data["stdout"] == "42\n"
    assert second.stream is None  # plain code pieces have no model stream


@pytest.mark.anyio
async def test_prose_without_code_says_so(local_session: Session) -> None:
    reply = Reply(text=["I would rather explain: ", "use `sum()` on the list.\n"])
    turn = await openai_turn(reply, local_session)
    assert turn.status == "no_code" and not turn.ok
    assert turn.text == "The response contained no Python code to run."
    assert turn.data["code"] == "" and turn.data["stdout"] == ""


@pytest.mark.anyio
async def test_syntax_error_turn(local_session: Session) -> None:
    turn = await arun_turn(["a = 1\n", "print(a)\n", "b = (1,\n", "c = 3\n"], local_session)
    assert turn.status == "syntax_error"
    assert "syntax error" in turn.text
    assert "Code that ran before it" in turn.text and "print(a)" in turn.text
    assert turn.data["error"]["kind"] == "syntax"


@pytest.mark.anyio
async def test_timeout_turn(local_session: Session) -> None:
    turn = await arun_turn(
        ["import time\n", "time.sleep(30)\n", "print('late')\n"], local_session, exec_timeout=0.5
    )
    assert turn.status == "timeout"
    assert "exceeded the time limit" in turn.text
    assert "late" not in turn.data["stdout"]


@pytest.mark.anyio
async def test_long_output_is_clipped_in_text_only(local_session: Session) -> None:
    turn = await arun_turn(["print('x' * 5000)\n"], local_session, max_output_chars=200)
    assert "characters of output left out" in turn.text
    assert len(turn.text) < 600
    assert turn.data["stdout"] == "x" * 5000 + "\n"


@pytest.mark.anyio
async def test_dropped_stream_still_reports_what_happened(local_session: Session) -> None:
    reply = Reply(text=["```python\n", "a = 1\n", "b = 2", "2\n", "```\n"])
    turn = await openai_turn(reply, local_session, faults=Faults(drop_after=3))
    assert turn.status == "stream_error"
    assert turn.run is None
    assert "stream failed (connection)" in turn.text
    assert "was not run" in turn.text
    assert turn.data["error"]["kind"] == "connection"
    assert "b = 2" not in turn.data["code_ran"]


@pytest.mark.anyio
async def test_bad_tool_arguments_turn(local_session: Session) -> None:
    reply = Reply(tools=[("python", ['{"code": 12}'])])
    turn = await openai_turn(reply, local_session)
    assert turn.status == "bad_arguments"
    assert turn.data["error"]["ename"] == "ArgumentNotString"
    assert turn.data["error"]["pos"] == 9
    assert "not valid" in turn.text


def test_blocking_twin(sync_session: SyncSession) -> None:
    with FakeLLM(fenced("print('sync ok')\n")) as llm:
        client = openai.OpenAI(base_url=llm.openai_url, api_key="test", max_retries=0, timeout=30)
        try:
            stream = client.chat.completions.create(model="m", messages=[], stream=True)
            turn = run_turn(stream, sync_session, timeout=60)
        finally:
            client.close()
    assert turn.ok and turn.data["stdout"] == "sync ok\n"


@pytest.mark.anyio
async def test_a_single_string_is_refused(local_session: Session) -> None:
    with pytest.raises(TypeError):
        await arun_turn("print(1)\n", local_session)


def test_prompt_asks_for_top_level_statements() -> None:
    assert "main()" in STREAMABLE_CODE_PROMPT
    assert "top-level statements" in STREAMABLE_CODE_PROMPT
    assert '__name__ == "__main__"' in STREAMABLE_CODE_PROMPT


@pytest.mark.anyio
async def test_a_turn_with_host_tools(local_session: Session) -> None:
    def double(n: int) -> int:
        return 2 * n

    turn = await arun_turn(["x = double(21)\n", "print(x)\n"], local_session, tools=[double])
    assert turn.ok, turn.text
    assert turn.data["stdout"] == "42\n"
    assert [(c["tool"], c["arguments"]) for c in turn.data["tool_calls"]] == [("double", {"n": 21})]
    assert turn.run is not None and [c.tool for c in turn.run.tool_calls] == ["double"]


@pytest.mark.anyio
async def test_a_failed_turn_lists_the_side_effects_that_already_ran(
    local_session: Session,
) -> None:
    sent: list[str] = []

    def send(to: str, body: str) -> str:
        sent.append(to)
        return "ok"

    def lookup(key: str) -> str:
        return key

    code = [
        "k = lookup('bob')\n",
        "send(k, 'hello')\n",
        "send('ann', 'x' * 500)\n",
        "1 / 0\n",
        "send('carl', 'never')\n",
    ]
    turn = await arun_turn(code, local_session, tools=[eager_rt.tool(lookup, read_only=True), send])
    assert turn.status == "error"
    assert sent == ["bob", "ann"]
    assert "These calls of tools with side effects already ran; do not repeat them:" in turn.text
    assert "- send(to='bob', body='hello'): returned" in turn.text
    assert "lookup(" not in turn.text.split("do not repeat them:")[1]  # read-only: not listed
    assert "'xxxx" in turn.text and "x" * 200 not in turn.text  # long values are clipped
    assert turn.data["ledger"] == [2, 3]


@pytest.mark.anyio
async def test_tool_names_of_the_model_are_not_host_tools(local_session: Session) -> None:
    with pytest.raises(TypeError, match="code_tools="):
        await arun_turn(["x = 1\n"], local_session, tools={"python"})  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_code_tools_select_the_tool_calls_that_carry_code(local_session: Session) -> None:
    reply = Reply(
        tools=[
            ("search", tool_fragments("print('not me')")),
            ("python", tool_fragments("print('me')")),
        ]
    )
    turn = await openai_turn(reply, local_session, code_tools={"python"}, fences=False)
    assert turn.ok, turn.text
    assert turn.data["stdout"] == "me\n"


@pytest.mark.anyio
async def test_a_length_cut_after_a_complete_statement_says_everything_ran(
    local_session: Session,
) -> None:
    reply = Reply(text=["```python\n", "x = 6 * 7\n", "print(x)\n"], finish="length")
    turn = await openai_turn(reply, local_session)
    assert turn.status == "stream_error"
    assert "42" in turn.text
    assert "Every statement received ran" in turn.text
    assert "was not run" not in turn.text
