"""The LangGraph adapter with the unmodified langgraph, langchain-core and langchain-openai.

``ChatOpenAI`` talks to the loopback server in ``tests/fake_llm`` (Chat
Completions with streamed tool-call chunks, paced so that the model is still
writing while statements run). Graphs are LangGraph's own: the prebuilt ReAct
agent and a hand-built ``StateGraph`` with ``ToolNode``/``tools_condition``.
Overlap is asserted from the run's own timeline and the server's record, never
from wall-clock durations.
"""

from __future__ import annotations

import asyncio
import json
import re
import warnings
from collections.abc import Callable
from typing import Any, cast

import pytest
from pydantic import BaseModel, SecretStr

pytest.importorskip("langgraph")
pytest.importorskip("langchain_openai")

from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.graph import START, MessagesState, StateGraph  # noqa: E402
from langgraph.prebuilt import ToolNode, tools_condition  # noqa: E402

from eager_rt.agent import TurnResult  # noqa: E402
from eager_rt.events import Event, ExecutionFinished  # noqa: E402
from eager_rt.executor import Backend  # noqa: E402
from eager_rt.integrations.langgraph import EagerCode, host_tool  # noqa: E402
from tests.fake_llm import FakeLLM, Faults, Reply, tool_fragments  # noqa: E402
from tests.fake_llm.gated import GatedLLM  # noqa: E402
from tests.processes import wait_until_gone  # noqa: E402

with warnings.catch_warnings():  # deprecated in langgraph 1.x in favour of langchain's create_agent
    warnings.simplefilter("ignore")
    from langgraph.prebuilt import create_react_agent  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:create_react_agent has been moved")

SALES = {"north": 120, "south": 340, "east": 95}


@tool
def lookup(region: str) -> int:
    """Units sold in a region last month."""
    return SALES[region]


@tool
def notify(message: str, urgent: bool = False) -> str:
    """Send a message to the sales team."""
    return f"sent{' (urgent)' if urgent else ''}: {message}"


class Point(BaseModel):
    x: int
    y: int


PID = "import os\nprint('pid', os.getpid())\n"
TAIL = "".join(f"step_{i} = {i} * 2\n" for i in range(30))
OK_CODE = (
    PID
    + "north = lookup('north')\nprint('north', north)\n"
    + "south = lookup(region='south')\nprint('total', north + south)\n"
    + TAIL
)
FAIL_CODE = PID + "ratio = lookup('north') / 0\n" + TAIL + "print('never')\n"
REPAIR_CODE = "ratio = north_fixed = lookup('north') / 4\nprint('ratio', ratio)\n"


#: the model pauses mid-call until a statement has run (GatedLLM's gate): overlap, not a race
HELD = Faults(interval=0.01, hold_after=60, hold_timeout=60.0)
#: the model pauses after the failing statement until the client goes away: if eager_rt
#: did not stop the stream, the server would send everything after the hold's timeout
STOPPED = Faults(interval=0.01, hold_after=30, hold_timeout=60.0)


def opens(llm: GatedLLM) -> Callable[[str, Event], None]:
    """An ``on_event`` that lets the held model go on once a statement has run."""

    def on_event(call_id: str, event: Event) -> None:
        if isinstance(event, ExecutionFinished):
            llm.gate.set()

    return on_event


def code_reply(code: str, size: int = 6) -> Reply:
    return Reply(tools=[("run_code", tool_fragments(code, size))])


def script(*turns: Reply) -> Callable[[str, dict[str, Any]], Reply]:
    """The n-th reply for the request that carries n tool results (the agent's turns)."""

    def reply(api: str, body: dict[str, Any]) -> Reply:
        n = sum(1 for m in body["messages"] if m["role"] == "tool")
        return turns[min(n, len(turns) - 1)]

    return reply


def chat_model(llm: FakeLLM, **options: Any) -> ChatOpenAI:
    # "Connection: close": LangChain caches its HTTP clients process-wide, and a kept-alive
    # connection would hold the fake server's handler open after the test
    return ChatOpenAI(
        model="fake",
        base_url=llm.openai_url,
        api_key=SecretStr("sk-fake"),
        max_retries=0,
        default_headers={"Connection": "close"},
        **options,
    )


def pid_of(text: Any) -> int:
    match = re.search(r"pid (\d+)", str(text))
    assert match is not None, text
    return int(match.group(1))


class Results:
    """Each call's TurnResult, as the adapter hands it to the tool node."""

    def __init__(self) -> None:
        self.by_call: list[tuple[str, TurnResult]] = []

    def __call__(self, call_id: str, result: TurnResult) -> None:
        self.by_call.append((call_id, result))

    def only(self) -> TurnResult:
        assert len(self.by_call) == 1, self.by_call
        return self.by_call[0][1]


@pytest.fixture
def results() -> Results:
    return Results()


def hand_built(eager: EagerCode, llm: FakeLLM, *, checkpointer: Any = None) -> Any:
    """The graph a LangGraph user writes: a model node, a ToolNode, tools_condition."""
    model = eager.wrap(chat_model(llm)).bind_tools([eager.tool, lookup])

    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([eager.tool, lookup]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=checkpointer)


def tool_messages(messages: list[Any]) -> list[ToolMessage]:
    return [m for m in messages if isinstance(m, ToolMessage)]


# --------------------------------------------------------------------------- prebuilt agent


@pytest.mark.anyio
async def test_prebuilt_agent_runs_the_code_while_the_model_streams(results: Results) -> None:
    turns = script(code_reply(OK_CODE), Reply(text=["The total ", "is 460."]))
    gated = GatedLLM(turns, HELD)
    with gated as llm:
        eager = EagerCode(
            tools=[lookup], read_only=["lookup"], on_result=results, on_event=opens(gated)
        )
        agent = create_react_agent(eager.wrap(chat_model(llm)), [eager.tool, lookup])
        seen: list[Any] = []
        async with eager:
            async for message, _meta in agent.astream(
                {"messages": [("user", "total sales?")]}, stream_mode="messages"
            ):
                seen.append(message)
        first = llm.wait_done(0)

    result = results.only()
    assert result.ok
    assert "north 120\ntotal 460\n" in result.text
    run = result.run
    assert run is not None
    # statements ran while the model was still writing: the first batch ended before the
    # last piece arrived, and the server sent every event (nothing was cut)
    assert run.batches[0].t_end < run.gen_s
    assert sum(1 for r in run.chunks if r.ran and r.t_exec_end is not None and
               r.t_exec_end < run.gen_s) >= 3  # fmt: skip
    assert first.finished and not first.client_closed
    # the graph's other tool was called from the code, through LangChain's tool
    assert [(c.tool, c.arguments, c.ok) for c in run.tool_calls] == [
        ("lookup", {"region": "north"}, True),
        ("lookup", {"region": "south"}, True),
    ]
    # messages streaming saw the tool-call chunks as LangGraph exposes them
    chunks = [m for m in seen if isinstance(m, AIMessageChunk) and m.tool_call_chunks]
    assert len(chunks) >= len(tool_fragments(OK_CODE, 6))
    replies = [m for m in seen if isinstance(m, ToolMessage)]
    assert len(replies) == 1 and replies[0].status == "success"
    assert replies[0].artifact["status"] == "ok"
    assert replies[0].content == result.text
    # the model's next request carried the tool result
    second = llm.requests[1].body["messages"]
    assert second[-1]["role"] == "tool" and "total 460" in second[-1]["content"]
    assert eager.open_sessions == 0


@pytest.mark.anyio
async def test_a_failing_statement_stops_the_stream_and_the_repair_turn_continues(
    results: Results,
) -> None:
    turns = script(code_reply(FAIL_CODE), code_reply(REPAIR_CODE), Reply(text=["Ratio is 30."]))
    with FakeLLM(turns, STOPPED) as llm:
        eager = EagerCode(tools=[lookup], on_result=results)
        agent = create_react_agent(eager.wrap(chat_model(llm)), [eager.tool, lookup])
        async with eager:
            out = await agent.ainvoke({"messages": [("user", "ratio?")]})
        first = llm.wait_done(0)

    # the server saw the client go away before the end of the response
    assert first.client_closed and not first.finished
    assert first.events_sent <= 1 + 30  # the role chunk, then at most up to the hold
    failed, repaired = (r for _, r in results.by_call)
    assert failed.status == "error"
    assert failed.data["error"]["ename"] == "ZeroDivisionError"
    assert failed.data["stream_closed_early"] is True
    assert "generation was stopped there" in failed.text
    # the model's message ends with the call cut after the failing statement
    ai = [m for m in out["messages"] if isinstance(m, AIMessage)]
    cut = ai[0].tool_calls[0]["args"]["code"]
    assert cut.startswith(FAIL_CODE.split("ratio")[0] + "ratio = lookup('north') / 0\n")
    assert "print('never')" not in cut
    msgs = tool_messages(out["messages"])
    assert [m.status for m in msgs] == ["error", "success"]
    assert "ZeroDivisionError" in msgs[0].content and "The failing statement" in msgs[0].content
    # the repair request carried the error; the repair ran in the same session
    repair_request = llm.requests[1].body["messages"]
    assert repair_request[-1]["role"] == "tool"
    assert "ZeroDivisionError" in repair_request[-1]["content"]
    assert "ratio 30.0" in repaired.text
    assert ai[-1].content == "Ratio is 30."


@pytest.mark.anyio
async def test_one_session_per_run_closed_when_the_run_ends() -> None:
    turns = script(code_reply(PID + "x = 1\n"), Reply(text=["done"]))
    with FakeLLM(turns) as llm:
        eager = EagerCode()
        agent = create_react_agent(eager.wrap(chat_model(llm)), [eager.tool])
        async with eager:
            out = await agent.ainvoke({"messages": [("user", "go")]})
            # the run ended: its session is closed before ainvoke returned
            assert eager.open_sessions == 0
            pid = pid_of(tool_messages(out["messages"])[0].content)
            assert await wait_until_gone(pid, 0.0)
            again = await agent.ainvoke({"messages": [("user", "go")]})
        assert pid_of(tool_messages(again["messages"])[0].content) != pid


@pytest.mark.anyio
async def test_a_thread_keeps_its_session_across_runs_until_the_block_ends() -> None:
    turns = [
        code_reply(PID + "kept = lookup('east')\n"),
        Reply(text=["stored"]),
        code_reply(PID + "print('kept', kept)\n"),
        Reply(text=["shown"]),
    ]
    with FakeLLM(turns) as llm:
        eager = EagerCode(tools=[lookup])
        graph = hand_built(eager, llm, checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "t-1"}}
        async with eager:
            first = await graph.ainvoke({"messages": [("user", "store")]}, config)
            assert eager.open_sessions == 1
            second = await graph.ainvoke({"messages": [("user", "show")]}, config)
            assert eager.open_sessions == 1
        assert eager.open_sessions == 0

    one, two = tool_messages(first["messages"])[0], tool_messages(second["messages"])[-1]
    assert "kept 95" in two.content
    assert pid_of(one.content) == pid_of(two.content)
    assert await wait_until_gone(pid_of(two.content), 10.0)


@pytest.mark.anyio
async def test_a_run_that_fails_later_still_closes_its_session(results: Results) -> None:
    with FakeLLM(script(code_reply(PID), Reply(text=["done"]))) as llm:
        eager = EagerCode(on_result=results)
        model = eager.wrap(chat_model(llm)).bind_tools([eager.tool])

        async def agent(state: MessagesState) -> dict[str, Any]:
            return {"messages": [await model.ainvoke(state["messages"])]}

        def boom(state: MessagesState) -> dict[str, Any]:
            raise RuntimeError("a later node failed")

        graph = StateGraph(MessagesState)
        graph.add_node("agent", agent)
        graph.add_node("tools", ToolNode([eager.tool]))
        graph.add_node("boom", boom)
        graph.add_edge(START, "agent")
        graph.add_edge("agent", "tools")
        graph.add_edge("tools", "boom")
        app = graph.compile()
        async with eager:
            with pytest.raises(RuntimeError, match="a later node failed"):
                await app.ainvoke(cast(Any, {"messages": [("user", "go")]}))
            assert eager.open_sessions == 0
            assert await wait_until_gone(pid_of(results.only().text), 0.0)


@pytest.mark.anyio
async def test_a_cancelled_run_closes_its_session_and_the_stream() -> None:
    """The caller gives up while the model is still writing: nothing is left behind."""
    started: list[int] = []
    running = asyncio.Event()

    def on_event(call_id: str, event: Any) -> None:
        for output in getattr(getattr(event, "result", None), "outputs", ()):
            started.extend(int(m) for m in re.findall(r"pid (\d+)", output.text or ""))
        if started:
            running.set()

    faults = Faults(interval=0.01, hold_after=24, hold_timeout=20.0)
    with FakeLLM(script(code_reply(PID + TAIL, 4)), faults) as llm:
        eager = EagerCode(on_event=on_event)
        agent = create_react_agent(eager.wrap(chat_model(llm)), [eager.tool])
        async with eager:
            task = asyncio.ensure_future(agent.ainvoke({"messages": [("user", "go")]}))
            # the code runs while the model holds its stream open
            await asyncio.wait_for(running.wait(), 30.0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert eager.open_sessions == 0
        log = llm.wait_done(0)
    assert log.client_closed and not log.finished
    assert await wait_until_gone(started[0], 10.0)


# --------------------------------------------------------------------------- hand-built graph


@pytest.mark.anyio
async def test_hand_built_graph_streams_and_calls_other_tools(results: Results) -> None:
    turns = script(code_reply(OK_CODE), Reply(text=["460"]))
    gated = GatedLLM(turns, HELD)
    with gated as llm:
        eager = EagerCode(tools=[lookup], on_result=results, on_event=opens(gated))
        graph = hand_built(eager, llm)
        async with eager:
            out = await graph.ainvoke({"messages": [("user", "total?")]})
    result = results.only()
    assert result.ok and result.run is not None
    assert result.run.batches[0].t_end < result.run.gen_s
    assert "total 460" in tool_messages(out["messages"])[0].content
    assert out["messages"][-1].content == "460"


def test_sync_graph_invoke_runs_eagerly_and_stops_on_error(results: Results) -> None:
    """``invoke`` (no event loop): the sessions run on the adapter's own portal."""
    turns = script(code_reply(FAIL_CODE), Reply(text=["failed"]))
    with FakeLLM(turns, Faults(interval=0.02)) as llm:
        eager = EagerCode(tools=[lookup], on_result=results)
        model = eager.wrap(chat_model(llm)).bind_tools([eager.tool])

        def agent(state: MessagesState) -> dict[str, Any]:
            return {"messages": [model.invoke(state["messages"])]}

        graph = StateGraph(MessagesState)
        graph.add_node("agent", agent)
        graph.add_node("tools", ToolNode([eager.tool]))
        graph.add_edge(START, "agent")
        graph.add_conditional_edges("agent", tools_condition)
        graph.add_edge("tools", "agent")
        app = graph.compile()
        with eager:
            out = app.invoke(cast(Any, {"messages": [("user", "go")]}))
            assert eager.open_sessions == 0
        first = llm.wait_done(0)
    assert first.client_closed
    msg = tool_messages(out["messages"])[0]
    assert msg.status == "error" and "ZeroDivisionError" in msg.content
    assert results.only().data["stream_closed_early"] is True


@pytest.mark.anyio
async def test_read_only_tools_are_speculated_while_the_call_streams(results: Results) -> None:
    code = "a = lookup('north')\nb = lookup('east')\nprint(a + b)\n" + TAIL
    with FakeLLM(script(code_reply(code), Reply(text=["215"])), Faults(interval=0.01)) as llm:
        eager = EagerCode(tools=[lookup], read_only=["lookup"], speculate=True, on_result=results)
        agent = create_react_agent(eager.wrap(chat_model(llm)), [eager.tool])
        async with eager:
            await agent.ainvoke({"messages": [("user", "sum?")]})
    run = results.only().run
    assert run is not None and "215" in run.stdout
    assert [(c.arguments, c.speculative, c.claimed) for c in run.tool_calls] == [
        ({"region": "north"}, True, True),
        ({"region": "east"}, True, True),
    ]


# --------------------------------------------------------------------------- edges


@pytest.mark.anyio
async def test_an_unwrapped_model_gets_the_code_run_when_the_tool_is_invoked() -> None:
    turns = script(code_reply("print(lookup('south'))\n"), Reply(text=["ok"]))
    with FakeLLM(turns) as llm:
        eager = EagerCode(tools=[lookup])
        # the fake server always streams, so the plain model must ask for a stream
        agent = create_react_agent(chat_model(llm, streaming=True), [eager.tool, lookup])
        async with eager:
            out = await agent.ainvoke({"messages": [("user", "go")]})
        assert eager.open_sessions == 0
    msg = tool_messages(out["messages"])[0]
    assert msg.status == "success" and "340" in msg.content


@pytest.mark.anyio
async def test_other_tool_calls_in_the_same_response_are_left_to_the_tool_node() -> None:
    args = json.dumps({"message": "hi", "urgent": True})
    both = Reply(tools=[("notify", [args]), ("run_code", tool_fragments("print(2 + 2)\n"))])
    with FakeLLM(script(both, Reply(text=["ok"]))) as llm:
        eager = EagerCode()
        agent = create_react_agent(eager.wrap(chat_model(llm)), [eager.tool, notify])
        async with eager:
            out = await agent.ainvoke({"messages": [("user", "go")]})
    by_name = {m.name: m for m in tool_messages(out["messages"])}
    assert by_name["notify"].content == "sent (urgent): hi"
    assert by_name["run_code"].status == "success" and "4" in by_name["run_code"].content


def test_host_tool_keeps_the_langchain_signature_and_defaults() -> None:
    t = host_tool(notify, read_only=False)
    assert t.name == "notify" and not t.is_async
    assert str(t.signature) == "(message: str, urgent: bool = False)"
    assert t.fn(message="x") == "sent: x"

    @tool
    async def fetch(url: str) -> str:
        """Fetch a page."""
        return url.upper()

    a = host_tool(fetch, read_only=True)
    assert a.is_async and a.read_only
    assert asyncio.run(a.fn(url="ab")) == "AB"

    @tool
    def locate(name: str) -> Point:
        """Where a store is."""
        return Point(x=len(name), y=2)

    assert host_tool(locate).fn(name="abc") == {"x": 3, "y": 2}
    eager = EagerCode(tools=[notify, fetch], read_only=["fetch"])
    assert "- notify(message: str, urgent: bool = False): Send a message" in eager.tool.description
    assert "- async fetch(url: str)" in eager.tool.description
    with pytest.raises(ValueError, match="read_only"):
        EagerCode(tools=[notify], read_only=["nope"])


# --------------------------------------------------------------------------- Docker


@pytest.mark.docker
@pytest.mark.anyio
async def test_prebuilt_agent_on_docker(docker_backend: Backend, results: Results) -> None:
    turns = script(code_reply(FAIL_CODE), code_reply(REPAIR_CODE), Reply(text=["30"]))
    with FakeLLM(turns, STOPPED) as llm:
        eager = EagerCode(backend=docker_backend, tools=[lookup], on_result=results)
        agent = create_react_agent(eager.wrap(chat_model(llm)), [eager.tool, lookup])
        async with eager:
            out = await agent.ainvoke({"messages": [("user", "ratio?")]})
            assert eager.open_sessions == 0
        first = llm.wait_done(0)
    assert first.client_closed and first.events_sent <= 1 + 30
    failed, repaired = (r for _, r in results.by_call)
    assert failed.run is not None and failed.run.backend == "docker"
    assert failed.data["error"]["ename"] == "ZeroDivisionError"
    assert "ratio 30.0" in repaired.text
    assert [m.status for m in tool_messages(out["messages"])] == ["error", "success"]
