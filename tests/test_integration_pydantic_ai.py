"""EagerCodeMode with the unmodified pydantic-ai: FunctionModel, its OpenAI model, backends.

The stream functions below are pydantic-ai's ``FunctionModel`` streaming
``DeltaToolCall`` argument fragments. Where a test is about *when* something
happens, the stream waits (bounded) for the event it expects before writing
on, so the order is proven without timing: a statement that had not run
before the stream's end would leave the wait to time out, and the test fails.
"""

from __future__ import annotations

import asyncio
import json
import keyword
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from eager_rt.events import Event, ExecutionFinished, ExecutionStarted
from eager_rt.executor import Backend
from eager_rt.integrations.pydantic_ai import EagerCodeMode
from tests.fake_llm import FakeLLM, Faults, Reply, pieces, tool_fragments
from tests.processes import wait_until_gone

WAIT = 30.0  # bound on every wait for an expected event (never reached when things work)


def fragments(code: str, size: int = 9) -> list[str]:
    """``{"code": code}`` as argument fragments."""
    return tool_fragments(code, size)


def chop(text: str, size: int = 9) -> list[str]:
    """Already-encoded argument text as fragments."""
    return pieces(text, size)


@asynccontextmanager
async def openai_model(llm: FakeLLM) -> AsyncIterator[OpenAIChatModel]:
    """pydantic-ai's OpenAI Chat model on the loopback server; its client closed after."""
    client = openai.AsyncOpenAI(base_url=llm.openai_url, api_key="test", max_retries=0)
    try:
        yield OpenAIChatModel("fake-model-1", provider=OpenAIProvider(openai_client=client))
    finally:
        await client.close()


def tool_returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    return [
        p
        for m in messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, ToolReturnPart)
    ]


def code_calls(messages: list[ModelMessage]) -> list[ToolCallPart]:
    return [
        p
        for m in messages
        if isinstance(m, ModelResponse)
        for p in m.parts
        if isinstance(p, ToolCallPart) and p.tool_name == "run_code"
    ]


class Script:
    """A FunctionModel stream function: one scripted response per model request.

    Each response is a list of steps: a str is a ``run_code`` argument
    fragment, a callable returning an awaitable is awaited before going on
    (bounded by WAIT; a timeout is recorded, not raised). A response given as
    plain text (``("text", "...")``) answers with text. ``log`` records every
    fragment written, every wait and whether the stream was closed before its end.
    """

    def __init__(self, *responses: list[Any] | tuple[str, str]) -> None:
        self.responses = list(responses)
        self.log: list[str] = []
        self.requests: list[list[ModelMessage]] = []
        self.closed_early: list[bool] = []
        self.timeouts = 0

    async def __call__(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        n = len(self.requests)
        self.requests.append(list(messages))
        response = self.responses[n]
        if isinstance(response, tuple):
            yield response[1]
            return
        finished = False
        self.log.append(f"request {n}")
        try:
            yield {0: DeltaToolCall(name="run_code", json_args="", tool_call_id=f"call{n}")}
            for step in response:
                if isinstance(step, str):
                    self.log.append(f"fragment {step!r}")
                    yield {0: DeltaToolCall(json_args=step)}
                else:
                    try:
                        await asyncio.wait_for(step(), WAIT)
                        self.log.append("waited")
                    except TimeoutError:
                        self.timeouts += 1
                        self.log.append("timed out")
            finished = True
            self.log.append("end")
        finally:
            self.closed_early.append(not finished)


class Recorder:
    """eager_rt events and host tool calls, in order, with awaitable conditions."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.changed = asyncio.Event()
        self.log: list[str] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.changed.set()

    def note(self, text: str) -> None:
        self.log.append(text)
        self.changed.set()

    def waiter(self, done: Callable[[], bool]) -> Callable[[], Any]:
        async def wait() -> None:
            while not done():
                self.changed.clear()
                await self.changed.wait()

        return wait

    def executed(self, text: str) -> bool:
        return any(isinstance(e, ExecutionStarted) and text in e.code for e in self.events) and any(
            isinstance(e, ExecutionFinished) for e in self.events
        )

    def failed(self) -> bool:
        return any(isinstance(e, ExecutionFinished) and not e.result.ok for e in self.events)


@pytest.mark.anyio
async def test_statements_run_while_the_model_is_still_writing() -> None:
    rec = Recorder()
    first = "first = 6 * 7\nprint('first', first)\n"
    rest = "second = first + 1\nprint('second', second)\n"
    head, tail = json.dumps({"code": first + rest}).split("second = ", 1)
    script = Script(
        [
            *chop(head),
            rec.waiter(lambda: rec.executed("first = 6 * 7")),
            *chop("second = " + tail),
        ],
        ("text", "done"),
    )
    agent = Agent(
        FunctionModel(stream_function=script),
        capabilities=[EagerCodeMode(backend="local", on_eager_event=rec)],
    )
    result = await agent.run("go")
    assert script.timeouts == 0, script.log  # the first statement ran before the stream went on
    assert script.log.index("waited") < script.log.index("end")
    assert result.output == "done"
    (ret,) = tool_returns(result.all_messages())
    assert "first 42\nsecond 43" in ret.content
    assert ret.metadata["status"] == "ok"
    assert ret.metadata["stdout"] == "first 42\nsecond 43\n"
    assert script.closed_early == [False]


@pytest.mark.anyio
async def test_the_agents_tools_are_called_from_the_code() -> None:
    code = (
        "w = await get_weather('Paris')\n"
        "print(w['city'], w['temp_c'])\n"
        "try:\n"
        "    await get_weather(city=5)\n"
        "except ToolError as e:\n"
        "    print('refused', e.type)\n"
        "print(await convert(celsius=w['temp_c']))\n"
    )
    script = Script(fragments(code), ("text", "done"))
    agent = Agent(FunctionModel(stream_function=script), capabilities=[EagerCodeMode()])
    calls: list[tuple[str, Any]] = []

    @agent.tool_plain
    def get_weather(city: str) -> dict[str, Any]:
        """Current weather for a city."""
        calls.append(("get_weather", city))
        return {"city": city, "temp_c": 20}

    @agent.tool_plain
    async def convert(celsius: float, unit: str = "F") -> str:
        """Convert a temperature."""
        calls.append(("convert", (celsius, unit)))
        return f"{celsius * 9 / 5 + 32:.0f} {unit}"

    result = await agent.run("go")
    (ret,) = tool_returns(result.all_messages())
    assert ret.metadata["status"] == "ok", ret.content
    assert ret.metadata["stdout"] == "Paris 20\nrefused ValidationError\n68 F\n"
    assert calls == [("get_weather", "Paris"), ("convert", (20.0, "F"))]
    recorded = [(c["tool"], c["ok"]) for c in ret.metadata["tool_calls"]]
    assert recorded == [("get_weather", True), ("get_weather", False), ("convert", True)]


@pytest.mark.anyio
async def test_only_the_selected_tools_move_into_the_code() -> None:
    seen: list[list[str]] = []

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        seen.append(sorted(t.name for t in info.function_tools))
        desc = next(t.description for t in info.function_tools if t.name == "run_code")
        seen.append(["lookup" if "async def lookup(key: str) -> Any:" in (desc or "") else ""])
        yield "done"

    agent = Agent(
        FunctionModel(stream_function=stream),
        capabilities=[EagerCodeMode(tools=["lookup"])],
    )

    @agent.tool_plain
    def lookup(key: str) -> str:
        """Look a key up."""
        return key

    @agent.tool_plain
    def send(to: str) -> str:
        """Send."""
        return to

    await agent.run("go")
    assert seen == [["run_code", "send"], ["lookup"]]


@pytest.mark.anyio
async def test_a_read_only_tool_is_called_before_its_statement_is_complete() -> None:
    rec = Recorder()
    code = (
        "total = (await lookup(key='a'))['v'] + \\\n"
        "    (await lookup(key='b'))['v']\n"
        "print(total)\n"
    )
    text = json.dumps({"code": code})
    cut = text.index("+") + 1  # after the first call's closing parenthesis
    script = Script(
        [
            *chop(text[:cut]),
            rec.waiter(lambda: "lookup a" in rec.log),  # the call starts while the line is open
            *chop(text[cut:]),
        ],
        ("text", "done"),
    )
    agent = Agent(
        FunctionModel(stream_function=script),
        capabilities=[EagerCodeMode(read_only=["lookup"], on_eager_event=rec)],
    )

    @agent.tool_plain
    async def lookup(key: str) -> dict[str, int]:
        """Read a value."""
        rec.note(f"lookup {key}")
        return {"v": ord(key)}

    result = await agent.run("go")
    assert script.timeouts == 0, script.log
    (ret,) = tool_returns(result.all_messages())
    assert ret.metadata["stdout"] == f"{ord('a') + ord('b')}\n"
    first = ret.metadata["tool_calls"][0]
    assert first["tool"] == "lookup" and first["speculative"] and not first["wasted"]
    assert rec.log.count("lookup a") == 1  # claimed by the code, not called twice


@pytest.mark.anyio
async def test_a_failing_statement_stops_the_models_stream() -> None:
    rec = Recorder()
    code = "a = 1\nprint('a', a)\nb = a / 0\n"
    never = "".join(f"c{i} = {i}\n" for i in range(200))
    whole = json.dumps({"code": code + never})
    split = whole.index("c0 = ")
    script = Script(
        [
            *chop(whole[:split]),
            rec.waiter(rec.failed),  # the statement failed while the model writes on
            *chop(whole[split:], size=4),
        ],
        ("text", "fixed"),
    )
    agent = Agent(
        FunctionModel(stream_function=script),
        capabilities=[EagerCodeMode(on_eager_event=rec)],
    )
    result = await agent.run("go")
    assert script.timeouts == 0
    assert script.closed_early == [True]  # pydantic-ai closed the stream function early
    assert "end" not in script.log
    after = script.log[script.log.index("waited") + 1 :]
    assert len(after) <= 2  # at most the fragment in flight when the failure was seen
    # the cut call is recorded with the code written up to the cut, as valid JSON
    (call,) = code_calls(result.all_messages())
    recorded = call.args_as_dict()["code"]
    assert recorded.startswith(code) and len(recorded) < len(code + never)
    (ret,) = tool_returns(result.all_messages())
    assert ret.metadata["status"] == "error"
    assert ret.metadata["stream_closed_early"] is True
    assert result.output == "fixed"


@pytest.mark.anyio
async def test_the_repair_turn_says_what_ran_what_failed_and_what_remains() -> None:
    code = (
        "import math\n"
        "def area(r):\n"
        "    return math.pi * r * r\n"
        "sizes = [1, 2, 3]\n"
        "print([round(area(s), 2) for s in sizes])\n"
        "ratio = sizes[0] / (sizes[1] - 2)\n"
        "print('after')\n"
    )
    script = Script(fragments(code), ("text", "done"))
    agent = Agent(FunctionModel(stream_function=script), capabilities=[EagerCodeMode()])
    result = await agent.run("go")
    (ret,) = tool_returns(result.all_messages())
    text = ret.content
    assert isinstance(text, str)
    assert "The code raised an exception at line 6." in text
    assert "Code that ran before it:\n```python\nimport math\n" in text
    assert "The failing statement:\n```python\nratio = sizes[0] / (sizes[1] - 2)\n```" in text
    assert "ZeroDivisionError: division by zero" in text
    assert "[3.14, 12.57, 28.27]" in text
    assert "Nothing after the failing statement ran" in text
    assert "(math, area, sizes)" in text  # what the session still holds
    assert "print('after')" not in text.split("Error:")[1]
    assert ret.metadata["session_names"] == ["math", "area", "sizes"]
    # the model's next request carries this result
    second = script.requests[1]
    assert tool_returns(second)[0].content == text


@pytest.mark.anyio
async def test_steps_share_one_session_which_is_closed_at_the_end() -> None:
    script = Script(
        fragments("import os\npid = os.getpid()\nx = 41\n"),
        fragments("print(x + 1, pid == os.getpid(), pid)\n"),
        ("text", "done"),
    )
    agent = Agent(FunctionModel(stream_function=script), capabilities=[EagerCodeMode()])
    result = await agent.run("go")
    first, second = tool_returns(result.all_messages())
    assert first.metadata["status"] == "ok"
    out = second.metadata["stdout"].split()
    assert out[:2] == ["42", "True"]
    assert await wait_until_gone(int(out[2]))  # the run's session ended with the run


@pytest.mark.anyio
async def test_each_run_gets_its_own_session() -> None:
    script = Script(
        fragments("x = 1\nprint('set')\n"),
        ("text", "one"),
        fragments("print('x' in globals())\n"),
        ("text", "two"),
    )
    agent = Agent(FunctionModel(stream_function=script), capabilities=[EagerCodeMode()])
    await agent.run("first")
    result = await agent.run("second")
    (ret,) = tool_returns(result.new_messages())
    assert ret.metadata["stdout"] == "False\n"


@pytest.mark.anyio
async def test_a_cancelled_run_leaves_no_session_behind() -> None:
    rec = Recorder()
    started = asyncio.Event()

    async def never_ends() -> None:
        started.set()
        await asyncio.Event().wait()

    script = Script(
        [
            *fragments("import os\nprint(os.getpid(), flush=True)\n"),
            rec.waiter(lambda: any(getattr(e, "output", None) for e in rec.events)),
            never_ends,
        ],
    )
    agent = Agent(
        FunctionModel(stream_function=script),
        capabilities=[EagerCodeMode(on_eager_event=rec)],
    )
    task = asyncio.create_task(agent.run("go"))
    await asyncio.wait_for(started.wait(), WAIT)
    pid = int(next(e.output.text for e in rec.events if getattr(e, "output", None)))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_until_gone(pid)


@pytest.mark.anyio
async def test_on_a_backend_the_caller_owns(docker_backend: Backend) -> None:
    code = "import sys, socket\nprint(sys.implementation.name, socket.gethostname())\n"
    again = "print(sys.version_info[0], await double(n=21))\n"
    script = Script(fragments(code), fragments(again), ("text", "ok"))
    agent = Agent(
        FunctionModel(stream_function=script),
        capabilities=[EagerCodeMode(backend=docker_backend)],
    )

    @agent.tool_plain
    def double(n: int) -> int:
        """Twice n."""
        return 2 * n

    result = await agent.run("go")
    first, second = tool_returns(result.all_messages())
    implementation, host = first.metadata["stdout"].split()
    assert implementation == "cpython" and host != socket.gethostname()  # in the container
    assert second.metadata["stdout"] == "3 42\n"  # the same session; the agent's tool


@pytest.mark.anyio
async def test_openai_chat_model_streams_run_code_through_a_local_server() -> None:
    replies = [
        Reply(tools=[("run_code", fragments("n = sum(range(10))\nprint('n', n)\n"))]),
        Reply(text=["The sum ", "is 45."]),
    ]
    with FakeLLM(replies) as llm:
        async with openai_model(llm) as model:
            agent = Agent(model, capabilities=[EagerCodeMode()])
            result = await agent.run("sum 0..9")
        log = llm.wait_done(1)
    assert result.output == "The sum is 45."
    (ret,) = tool_returns(result.all_messages())
    assert ret.metadata["stdout"] == "n 45\n"
    sent = [m for m in log.body["messages"] if m["role"] == "tool"]
    assert sent[0]["content"].startswith("The code ran without errors.")
    tools = llm.wait_done(0).body["tools"]
    assert [t["function"]["name"] for t in tools] == ["run_code"]


@pytest.mark.anyio
async def test_openai_chat_model_stream_is_closed_at_the_failure() -> None:
    code = "x = 1\ny = x / 0\n" + "".join(f"z{i} = {i}\n" for i in range(100))
    frags = fragments(code, size=5)
    replies = [Reply(tools=[("run_code", frags)]), Reply(text=["fixed"])]
    # after 12 events the server holds the stream open until the client goes away
    with FakeLLM(replies, Faults(hold_after=12, hold_timeout=20)) as llm:
        async with openai_model(llm) as model:
            agent = Agent(model, capabilities=[EagerCodeMode()])
            result = await agent.run("go")
        first = llm.wait_done(0)
    assert first.client_closed and first.events_unsent > 0
    (ret,) = tool_returns(result.all_messages())
    assert "ZeroDivisionError" in ret.content
    assert ret.metadata["stream_closed_early"] is True
    (call,) = code_calls(result.all_messages())
    assert call.args_as_dict()["code"].startswith("x = 1\ny = x / 0\n")
    assert result.output == "fixed"


async def _run_stream(agent: Agent[None, str]) -> list[ModelMessage]:
    async with agent.run_stream("go") as run:
        await run.get_output()
    return run.all_messages()


async def _run_stream_events(agent: Agent[None, str]) -> list[ModelMessage]:
    async with agent.run_stream_events("go") as stream:
        events = [e async for e in stream]
    final = events[-1]
    assert hasattr(final, "result")
    return list(final.result.all_messages())


async def _iter(agent: Agent[None, str]) -> list[ModelMessage]:
    async with agent.iter("go") as run:
        async for _node in run:
            pass
    assert run.result is not None
    return run.result.all_messages()


@pytest.mark.anyio
@pytest.mark.parametrize("drive", [_run_stream, _run_stream_events, _iter])
async def test_every_way_of_running_the_agent(
    drive: Callable[[Agent[None, str]], Any],
) -> None:
    rec = Recorder()
    whole = json.dumps({"code": "a = 2\nb = a / 0\n" + "c = 1\n" * 100})
    split = whole.index("c = 1")
    script = Script([*chop(whole[:split]), rec.waiter(rec.failed), *chop(whole[split:], 4)])
    script.responses.append(("text", "done"))
    agent = Agent(
        FunctionModel(stream_function=script),
        capabilities=[EagerCodeMode(on_eager_event=rec)],
    )
    messages = await drive(agent)
    assert script.timeouts == 0
    (ret,) = tool_returns(messages)
    assert "ZeroDivisionError" in ret.content
    assert script.closed_early == [True]
    (call,) = code_calls(messages)
    assert call.args_as_dict()["code"].startswith("a = 2\nb = a / 0\n")


def _children() -> set[int]:
    """Our process's live children (the local backend's workers among them)."""
    me = str(os.getpid())
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[1] == me and fields[0] != "Z":
                found.add(int(entry.name))
    return found


@pytest.mark.anyio
async def test_the_prestarted_session_of_a_run_without_code_is_closed() -> None:
    before = _children()
    seen: set[int] = set()

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        for _ in range(int(WAIT / 0.01)):  # the session starts with the run, before any code
            seen.update(_children() - before)
            if seen:
                break
            await asyncio.sleep(0.01)
        yield "no code needed"

    agent = Agent(FunctionModel(stream_function=stream), capabilities=[EagerCodeMode()])
    result = await agent.run("hi")
    assert result.output == "no code needed"
    assert seen
    for pid in seen:
        assert await wait_until_gone(pid)


@pytest.mark.anyio
async def test_two_run_code_calls_in_one_response_run_in_order_on_one_session() -> None:
    first = tool_fragments("x = 20\nprint('one', x)\n", 6)
    second = tool_fragments("print('two', x + 1)\n", 6)

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        if tool_returns(messages):
            yield "done"
            return
        yield {0: DeltaToolCall(name="run_code", json_args="", tool_call_id="a")}
        for piece in first:
            yield {0: DeltaToolCall(json_args=piece)}
        yield {1: DeltaToolCall(name="run_code", json_args="", tool_call_id="b")}
        for piece in second:
            yield {1: DeltaToolCall(json_args=piece)}

    agent = Agent(FunctionModel(stream_function=stream), capabilities=[EagerCodeMode()])
    result = await agent.run("go")
    returns = {r.tool_call_id: r.metadata["stdout"] for r in tool_returns(result.all_messages())}
    assert returns == {"a": "one 20\n", "b": "two 21\n"}


def test_run_sync_works_too() -> None:
    script = Script(fragments("print(sum(range(4)))\n"), ("text", "done"))
    agent = Agent(FunctionModel(stream_function=script), capabilities=[EagerCodeMode()])
    result = agent.run_sync("go")
    (ret,) = tool_returns(result.all_messages())
    assert ret.metadata["stdout"] == "6\n"


def test_tool_signatures_follow_the_json_schema() -> None:
    from pydantic_ai.tools import ToolDefinition

    from eager_rt.integrations._pydantic_ai_tools import bridge, render, signature_of
    from eager_rt.integrations._signatures import python_name

    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer", "default": 3},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["city"],
    }
    tool_def = ToolDefinition(name="get-forecast", parameters_json_schema=schema, description="D.")
    assert str(signature_of(tool_def)) == "(city, *, days=3, tags=...)"
    seen: list[tuple[str, dict[str, Any]]] = []

    async def dispatch(name: str, args: dict[str, Any]) -> Any:
        seen.append((name, args))
        return "ok"

    t = bridge(tool_def, dispatch, read_only=True)
    assert t.name == "get_forecast" and t.read_only and t.is_async
    assert asyncio.run(t.fn("Oslo", days=2)) == "ok"
    assert seen == [("get-forecast", {"city": "Oslo", "days": 2})]  # unset optionals left out
    assert render(t, tool_def).splitlines()[0] == (
        "async def get_forecast(city: str, *, days: int = 3, tags: list[str] = ...) -> Any:"
    )
    odd = ToolDefinition(name="class", parameters_json_schema={"properties": {"a-b": {}}})
    assert python_name(odd.name) == "class_"
    assert str(signature_of(odd)) == "(**kwargs)"


@pytest.mark.anyio
async def test_malformed_arguments_are_answered_with_what_already_ran() -> None:
    valid = json.dumps({"code": "x = 1\nprint('x', x)\n"})[:-1]
    script = Script([*chop(valid), ", oops}"], ("text", "done"))
    agent = Agent(FunctionModel(stream_function=script), capabilities=[EagerCodeMode()])
    result = await agent.run("go")
    (ret,) = tool_returns(result.all_messages())
    assert ret.metadata["status"] == "bad_arguments"
    assert ret.content.startswith("The tool call's arguments were not valid")
    assert "Code that ran before the failure:\n```python\nx = 1\nprint('x', x)\n```" in ret.content
    assert "x 1" in ret.content
    (call,) = code_calls(result.all_messages())
    assert call.args_as_dict() == {"code": "x = 1\nprint('x', x)\n"}


@pytest.mark.anyio
async def test_a_tool_that_requires_approval_asks_the_approve_callback() -> None:
    code = (
        "print(await pay(amount=50))\n"
        "try:\n"
        "    await pay(amount=500)\n"
        "except ToolError as e:\n"
        "    print(e.type)\n"
    )
    script = Script(fragments(code), ("text", "done"))
    asked: list[dict[str, Any]] = []

    def approve(tool: Any, arguments: dict[str, Any]) -> bool:
        asked.append(arguments)
        return bool(arguments["amount"] < 100)

    agent = Agent(
        FunctionModel(stream_function=script),
        capabilities=[EagerCodeMode(approve=approve)],
    )
    paid: list[int] = []

    @agent.tool_plain(requires_approval=True)
    def pay(amount: int) -> str:
        """Pay an amount."""
        paid.append(amount)
        return f"paid {amount}"

    result = await agent.run("go")
    (ret,) = tool_returns(result.all_messages())
    assert ret.metadata["stdout"] == "paid 50\nPermissionError\n", ret.content
    assert asked == [{"amount": 50}, {"amount": 500}] and paid == [50]


_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: not keyword.iskeyword(n) and n != "kwargs"
)
_values = st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none())


@settings(max_examples=60, deadline=None)
@given(
    props=st.dictionaries(_names, st.sampled_from(["string", "integer", "boolean"]), max_size=5),
    data=st.data(),
)
def test_a_bridged_tool_passes_exactly_the_arguments_given(
    props: dict[str, str], data: st.DataObject
) -> None:
    """Whatever the schema, a call by keyword reaches pydantic-ai with those arguments only."""
    from pydantic_ai.tools import ToolDefinition

    from eager_rt.integrations._pydantic_ai_tools import bridge

    required = data.draw(
        st.lists(st.sampled_from(sorted(props)), unique=True) if props else st.just([])
    )
    schema = {
        "type": "object",
        "properties": {name: {"type": kind} for name, kind in props.items()},
        "required": required,
    }
    optional = [n for n in props if n not in required]
    given_names = [
        *required,
        *data.draw(st.lists(st.sampled_from(optional), unique=True) if optional else st.just([])),
    ]
    arguments = {name: data.draw(_values) for name in given_names}
    seen: list[dict[str, Any]] = []

    async def dispatch(name: str, args: dict[str, Any]) -> Any:
        seen.append(args)
        return None

    t = bridge(ToolDefinition(name="t", parameters_json_schema=schema), dispatch, read_only=False)
    asyncio.run(t.fn(**arguments))
    assert seen == [arguments]


@pytest.mark.anyio
async def test_concurrent_runs_of_one_agent_do_not_share_sessions() -> None:
    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        first = messages[0].parts[0]
        tag = getattr(first, "content", "?")
        step = len(tool_returns(messages))
        if step == 2:
            yield "done"
            return
        code = f"tag = {tag!r}\n" if step == 0 else "print(tag)\n"
        yield {0: DeltaToolCall(name="run_code", json_args="", tool_call_id=f"{tag}{step}")}
        for piece in tool_fragments(code, 3):
            await asyncio.sleep(0)  # the two runs' streams interleave
            yield {0: DeltaToolCall(json_args=piece)}

    agent = Agent(FunctionModel(stream_function=stream), capabilities=[EagerCodeMode()])
    a, b = await asyncio.gather(agent.run("a"), agent.run("b"))
    assert tool_returns(a.all_messages())[1].metadata["stdout"] == "a\n"
    assert tool_returns(b.all_messages())[1].metadata["stdout"] == "b\n"


@pytest.mark.anyio
async def test_openai_responses_model_streams_run_code_through_a_local_server() -> None:
    from pydantic_ai.models.openai import OpenAIResponsesModel

    replies = [
        Reply(tools=[("run_code", fragments("print(2 ** 10)\n"))]),
        Reply(text=["1024."]),
    ]
    with FakeLLM(replies) as llm:
        client = openai.AsyncOpenAI(base_url=llm.openai_url, api_key="test", max_retries=0)
        try:
            model = OpenAIResponsesModel(
                "fake-model-1", provider=OpenAIProvider(openai_client=client)
            )
            agent = Agent(model, capabilities=[EagerCodeMode()])
            result = await agent.run("2**10?")
        finally:
            await client.close()
        second = llm.wait_done(1)
    assert result.output == "1024."
    (ret,) = tool_returns(result.all_messages())
    assert ret.metadata["stdout"] == "1024\n"
    outputs = [i for i in second.body["input"] if i.get("type") == "function_call_output"]
    assert outputs[0]["output"].startswith("The code ran without errors.")


@pytest.mark.anyio
async def test_a_run_past_turn_timeout_is_stopped_and_reported() -> None:
    script = Script(
        fragments("import os\nprint(os.getpid(), flush=True)\nimport time\ntime.sleep(60)\n"),
        fragments("print('still here')\n"),
        ("text", "done"),
    )
    agent = Agent(
        FunctionModel(stream_function=script),
        capabilities=[EagerCodeMode(turn_timeout=1.0)],
    )
    result = await agent.run("go")
    first, second = tool_returns(result.all_messages())
    assert first.metadata == {"status": "turn_timeout"}
    assert "did not finish within 1 s and was stopped" in first.content
    assert second.metadata["stdout"] == "still here\n"  # the session goes on
