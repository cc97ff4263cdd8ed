"""The OpenAI Agents SDK adapter, with the unmodified ``openai-agents`` and ``openai`` packages.

Each agent runs ``OpenAIResponsesModel`` or ``OpenAIChatCompletionsModel`` with
an ``AsyncOpenAI`` client pointed at the loopback server in ``tests/fake_llm``,
which streams ``run_code`` tool calls in the real wire formats. Overlap is
proved without clocks: the server pauses the stream after the first statement
(``hold_after``) and only goes on when the code itself opens the gate
(:class:`tests.fake_llm.gated.GatedLLM`); early stop is the server's own record
that the client closed the stream before the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

pytest.importorskip("agents")

from agents import (  # noqa: E402
    Agent,
    FunctionTool,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunContextWrapper,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from agents.models.interface import Model  # noqa: E402
from agents.tool_context import ToolContext  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402

from eager_rt.agent import TurnResult  # noqa: E402
from eager_rt.executor import Backend, Session  # noqa: E402
from eager_rt.integrations.openai_agents import EagerCode, EagerModel, host_tools  # noqa: E402
from eager_rt.registry import get_backend  # noqa: E402
from tests.fake_llm import Faults, Reply, tool_fragments  # noqa: E402
from tests.fake_llm.gated import GatedLLM  # noqa: E402

pytestmark = pytest.mark.anyio

APIS = ["responses", "chat"]
SIZE = 8  # characters per argument fragment
TAIL = "".join(f"print('line {i}')\n" for i in range(30))


@pytest.fixture(autouse=True)
def _no_tracing() -> Iterator[None]:
    set_tracing_disabled(True)  # nothing is exported anywhere
    yield


@contextlib.asynccontextmanager
async def serving(
    replies: list[Reply], faults: Faults | None = None, api: str = "responses", **options: Any
) -> AsyncIterator[tuple[GatedLLM, Model]]:
    """The fake service and an SDK model talking to it (its client closed before the server)."""
    with GatedLLM(replies, faults, **options) as llm:
        client = AsyncOpenAI(base_url=llm.openai_url, api_key="sk-test", max_retries=0)
        model: Model
        if api == "responses":
            model = OpenAIResponsesModel("fake-model", client)
        else:
            model = OpenAIChatCompletionsModel("fake-model", client)
        try:
            yield llm, model
        finally:
            await client.close()


def call(code: str) -> Reply:
    """A reply that is one ``run_code`` call streaming ``code``."""
    return Reply(tools=[("run_code", tool_fragments(code, SIZE))])


def hold_after(code: str, prefix: str) -> int:
    """Output events the server sends before the arguments reach past ``prefix``.

    The first output event opens the call; then one event per fragment.
    """
    assert code.startswith(prefix)
    chars = len('{"code": ') + len(json.dumps(prefix)) - 1  # without the closing quote
    return 1 + math.ceil(chars / SIZE)


class Collect:
    def __init__(self) -> None:
        self.results: list[tuple[str, TurnResult]] = []

    def __call__(self, call_id: str, result: TurnResult) -> None:
        self.results.append((call_id, result))


class RecordingBackend(Backend):
    """A real backend whose sessions the test can look at after the run."""

    name = "recording"

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.sessions: list[Session] = []

    def session(self, **options: Any) -> Session:
        s = self.inner.session(**options)
        self.sessions.append(s)
        return s

    async def aclose(self) -> None:
        await self.inner.aclose()


async def stream_to_end(agent: Agent[Any], prompt: str = "go") -> tuple[Any, list[str]]:
    result = Runner.run_streamed(agent, prompt)
    kinds: list[str] = []
    async for event in result.stream_events():
        if event.type == "raw_response_event":
            kinds.append(event.data.type)
    return result, kinds


# --------------------------------------------------------------------------- overlap


@pytest.mark.parametrize("api", APIS)
async def test_code_runs_while_the_model_is_still_writing(api: str) -> None:
    seen: dict[str, Any] = {}

    @function_tool
    def mark(label: str) -> str:
        """Note that the code reached this point."""
        log = llm.requests[0]
        seen.update(label=label, finished=log.finished, sent=log.events_sent)
        llm.gate.set()  # the paused stream may go on
        return label.upper()

    code = "x = mark('first')\nprint(x)\n" + TAIL
    faults = Faults(hold_after=hold_after(code, "x = mark('first')\npr"), hold_timeout=60.0)
    collect = Collect()
    async with serving([call(code), Reply(text=["Done."])], faults, api) as (llm, model):
        eager = EagerCode(on_result=collect)
        agent = eager.agent(Agent(name="a", model=model, tools=[mark]))
        result, kinds = await stream_to_end(agent)
        log = llm.wait_done(0)
    # the server was paused mid-call and only resumed because the first statement ran
    assert seen == {"label": "first", "finished": False, "sent": seen["sent"]}
    assert seen["sent"] < log.events_total
    assert log.finished and not log.client_closed
    assert result.final_output == "Done."
    ((_, turn),) = collect.results
    assert turn.ok and turn.run is not None
    assert turn.run.stdout.splitlines()[:2] == ["FIRST", "line 0"]
    assert turn.run.tool_calls[0].tool == "mark" and turn.run.tool_calls[0].ok
    # consumers of the run's stream still see the SDK's raw argument deltas
    assert "response.function_call_arguments.delta" in kinds
    assert eager.open_sessions == 0


# --------------------------------------------------------------------------- early stop, repair


@pytest.mark.parametrize("api", APIS)
async def test_a_failing_statement_stops_the_stream_and_the_model_repairs(api: str) -> None:
    code = "total = 40 + 2\nprint('total', total)\nratio = total / 0\n" + TAIL
    repair = "print('fixed', total / 2)\n"
    faults = Faults(hold_after=hold_after(code, code.split("ratio")[0] + "ratio = total / 0\npr"))
    collect = Collect()
    replies = [call(code), call(repair), Reply(text=["It is 21."])]
    async with serving(replies, faults, api) as (llm, model):
        eager = EagerCode(on_result=collect)
        agent = eager.agent(Agent(name="a", model=model))
        result, _ = await stream_to_end(agent)
        first = llm.wait_done(0)
        second = llm.wait_done(1)
        third = llm.wait_done(2)
    # the server held the stream after the failing statement: only the client could end it
    assert first.client_closed and not first.finished
    assert first.events_sent < first.events_total
    assert second.finished and third.finished
    assert result.final_output == "It is 21."

    (_, failed), (_, fixed) = collect.results
    assert failed.status == "error" and failed.run is not None
    assert failed.run.stream_closed_early
    assert failed.run.error is not None and failed.run.error.ename == "ZeroDivisionError"
    assert failed.run.stdout == "total 42\n"
    # the repair turn ran in the same session: `total` is still defined
    assert fixed.ok and fixed.run is not None and fixed.run.stdout == "fixed 21.0\n"

    # what the model is sent for its repair: its call cut after the failing statement,
    # and the eager result as the call's output
    cut = "total = 40 + 2\nprint('total', total)\nratio = total / 0\n"
    arguments, output = _call_and_output(api, second.body)
    assert json.loads(arguments) == {"code": cut}
    assert output == failed.text
    assert "ZeroDivisionError" in output and "generation was stopped" in output
    assert eager.open_sessions == 0


def _call_and_output(api: str, body: dict[str, Any]) -> tuple[str, str]:
    """The ``run_code`` call's arguments and its output, from a request's history."""
    if api == "responses":
        items = body["input"]
        call_item = next(i for i in items if i.get("type") == "function_call")
        out = next(i for i in items if i.get("type") == "function_call_output")
        assert out["call_id"] == call_item["call_id"]
        return str(call_item["arguments"]), str(out["output"])
    messages = body["messages"]
    assistant = next(m for m in messages if m.get("tool_calls"))
    tool_message = next(m for m in messages if m.get("role") == "tool")
    tc = assistant["tool_calls"][0]
    assert tool_message["tool_call_id"] == tc["id"]
    return str(tc["function"]["arguments"]), str(tool_message["content"])


@pytest.mark.parametrize("api", APIS)
async def test_two_calls_in_one_response_run_in_turn_in_one_session(api: str) -> None:
    first = "a = 20\nprint('first', a)\n"
    second = "print('second', a + 1)\n"
    reply = Reply(tools=[("run_code", tool_fragments(first, SIZE)),
                         ("run_code", tool_fragments(second, SIZE))])  # fmt: skip
    collect = Collect()
    async with serving([reply, Reply(text=["both"])], api=api) as (llm, model):
        eager = EagerCode(on_result=collect)
        agent = eager.agent(Agent(name="a", model=model))
        result, _ = await stream_to_end(agent)
        body = llm.wait_done(1).body
    assert result.final_output == "both"
    outputs = [r.run.stdout for _, r in collect.results if r.run is not None]
    assert outputs == ["first 20\n", "second 21\n"]
    ids = [call_id for call_id, _ in collect.results]
    assert len(set(ids)) == 2
    sent = json.dumps(body)
    assert "first 20" in sent and "second 21" in sent  # each call got its own output
    assert eager.open_sessions == 0


@pytest.mark.parametrize("api", APIS)
async def test_a_dropped_stream_never_runs_the_cut_statement(api: str) -> None:
    calls: list[str] = []

    @function_tool
    def mark(label: str) -> None:
        """Note a label."""
        calls.append(label)
        llm.gate.set()

    second = "mark(label='two' + '.' * 40)\n"
    code = "mark(label='one')\n" + second + TAIL
    # paused until the first statement ran, then torn down inside the second
    drop = hold_after(code, "mark(label='one')\nmark(label='two' + ")
    faults = Faults(hold_after=hold_after(code, "mark(label='one')\nma"), drop_after=drop,
                    hold_timeout=60.0)  # fmt: skip
    received = "".join(tool_fragments(code, SIZE)[: drop - 1])
    assert second not in received.replace("\\n", "\n")  # the cut is inside it
    async with serving([call(code), Reply(text=["never"])], faults, api) as (llm, model):
        eager = EagerCode()
        agent = eager.agent(Agent(name="a", model=model, tools=[mark]))
        with pytest.raises(Exception) as caught:
            await stream_to_end(agent)
    assert "connection" in repr(caught.value).lower() or "incomplete" in repr(caught.value).lower()
    assert calls == ["one"]  # the statement the drop cut in two never ran
    assert eager.open_sessions == 0


# --------------------------------------------------------------------------- tools, sessions


async def test_function_tools_become_functions_of_the_code() -> None:
    @function_tool
    def population(city: str, year: int = 2020) -> int:
        """People living in a city."""
        if city == "Atlantis":
            raise LookupError("no such city")
        return len(city) * 1000 + year

    @function_tool
    def greet(ctx: RunContextWrapper[Any], name: str) -> str:
        """A tool that wants the run context: called through the SDK."""
        return f"hello {name}"

    async def on_invoke(ctx: ToolContext[Any], arguments: str) -> str:
        args = json.loads(arguments)
        return str(args["word"][::-1] * args.get("times", 1))  # "times" absent: not null

    reverse = FunctionTool(
        name="reverse",
        description="Reverse a word.",
        params_json_schema={
            "type": "object",
            "properties": {"word": {"type": "string"}, "times": {"type": "integer"}},
            "required": ["word"],
            "additionalProperties": False,
        },
        on_invoke_tool=on_invoke,
        strict_json_schema=False,  # strict schemas make every property required
    )
    code = (
        "print(population('Oslo'), population('Rome', year=2000))\n"
        "print(await greet(name='Ann'), await reverse(word='abc'),\n"
        "      await reverse(word='ab', times=2))\n"
        "try:\n    population('Atlantis')\nexcept ToolError as e:\n    print('failed', e)\n"
    )
    collect = Collect()
    async with serving([call(code), Reply(text=["ok"])]) as (_llm, model):
        eager = EagerCode(on_result=collect, read_only={"population"})
        base = Agent(name="a", model=model, tools=[population, greet, reverse])
        agent = eager.agent(base)
        await stream_to_end(agent)
    assert [t.name for t in agent.tools] == ["population", "greet", "reverse", "run_code"]
    assert [t.name for t in base.tools] == ["population", "greet", "reverse"]  # unchanged
    # the model is told how to call them (through the SDK: async, awaited)
    description = agent.tools[-1].description
    assert "- def population(city: str, year: int = 2020) -> int: People living" in description
    assert "- async def greet(*, name: str)" in description
    # an optional property without a default: the SDK fills it in, the model sees "..."
    assert "- async def reverse(*, word: str, times: int = ...): Reverse a word." in description
    ((_, turn),) = collect.results
    assert turn.run is not None
    lines = turn.run.stdout.splitlines()
    assert turn.ok, turn.text
    assert lines[:2] == ["6020 6000", "hello Ann cba baba"]
    assert lines[2].startswith("failed") and "no such city" in lines[2]
    by_tool = {(c.tool, c.ok) for c in turn.run.tool_calls}
    assert by_tool == {
        ("population", True),
        ("population", False),
        ("greet", True),
        ("reverse", True),
    }
    # read_only= marks the tool: its calls are not side effects in the ledger
    assert [c.tool for c in turn.run.ledger] == ["greet", "reverse", "reverse"]


def test_host_tools_keep_signatures_and_docs() -> None:
    @function_tool
    def weather(city: str, days: int = 3) -> str:
        """Forecast for a city."""
        return city

    (t,) = host_tools([weather], read_only={"weather"})
    assert t.name == "weather" and t.read_only and t.doc == "Forecast for a city."
    assert list(t.signature.parameters) == ["city", "days"]
    assert t.signature.parameters["days"].default == 3


async def test_one_session_per_run_closed_when_the_run_ends() -> None:
    backend = RecordingBackend(get_backend("local")())
    replies = [
        *(call("a = 1\nprint(a)\n"), call("print(a + 1)\n"), Reply(text=["two"])),  # run 1
        *(call("print('a' in globals())\n"), Reply(text=["fresh"])),  # run 2
    ]
    collect = Collect()
    try:
        async with serving(replies, api="chat") as (_llm, model):
            eager = EagerCode(backend, on_result=collect)
            agent = eager.agent(Agent(name="a", model=model))
            await stream_to_end(agent)
            assert len(backend.sessions) == 1  # both calls of the run shared it
            assert not backend.sessions[0].alive  # closed by the run's end
            assert eager.open_sessions == 0
            # a second run gets a fresh session: nothing of the first survives
            await stream_to_end(agent)
    finally:
        await backend.aclose()
    assert len(backend.sessions) == 2 and not backend.sessions[1].alive
    assert [r.run.stdout for _, r in collect.results if r.run] == ["1\n", "2\n", "False\n"]


async def test_runner_run_executes_eagerly_too() -> None:
    """``Runner.run`` asks for a whole response; the wrapper streams it anyway."""
    seen: dict[str, Any] = {}

    @function_tool
    def mark() -> None:
        """Note the point."""
        seen["finished"] = llm.requests[0].finished
        llm.gate.set()

    code = "mark()\n" + TAIL
    faults = Faults(hold_after=hold_after(code, "mark()\npr"), hold_timeout=60.0)
    async with serving([call(code), Reply(text=["done"])], faults) as (llm, model):
        eager = EagerCode()
        agent = eager.agent(Agent(name="a", model=model, tools=[mark]))
        result = await Runner.run(agent, "go")
    assert seen == {"finished": False}
    assert result.final_output == "done"
    assert eager.open_sessions == 0


def test_runner_run_sync_works_and_closes_its_session() -> None:
    """The SDK's blocking entry point: its own loop, the same eager path."""
    collect = Collect()
    with GatedLLM([call("n = 6 * 7\nprint(n)\n"), Reply(text=["42"])]) as llm:
        # run_sync's loop is gone when it returns: no kept-alive connection to close later
        client = AsyncOpenAI(
            base_url=llm.openai_url, api_key="sk-test", max_retries=0,
            default_headers={"Connection": "close"},
        )  # fmt: skip
        eager = EagerCode(on_result=collect)
        agent = eager.agent(Agent(name="a", model=OpenAIResponsesModel("fake-model", client)))
        result = Runner.run_sync(agent, "go")
    assert result.final_output == "42"
    ((_, turn),) = collect.results
    assert turn.ok and turn.run is not None and turn.run.stdout == "42\n"
    assert eager.open_sessions == 0


async def test_a_call_that_did_not_stream_through_the_wrapper_still_runs() -> None:
    """The tool alone (its model not wrapped) runs the code after the call, on its own."""
    async with serving([call("print(6 * 7)\n"), Reply(text=["42"])]) as (llm, model):
        eager = EagerCode()
        collect = Collect()
        eager.on_result = collect
        agent = Agent(name="a", model=model, tools=[eager.tool])
        result, _ = await stream_to_end(agent)
        body = llm.wait_done(1).body
    assert result.final_output == "42"
    ((_, turn),) = collect.results
    assert turn.ok and turn.run is not None and turn.run.stdout == "42\n"
    assert _call_and_output("responses", body)[1] == turn.text


def test_the_sdk_hooks_the_adapter_relies_on_are_there() -> None:
    """Pinned private SDK hooks: the run owner while a model streams, the run-end cleanup."""
    from agents.models._run_context import get_model_run_owner

    assert callable(get_model_run_owner)
    assert "_cleanup_on_run_end" in vars(Model)
    assert "_cleanup_on_run_end" in vars(EagerModel)


# --------------------------------------------------------------------------- another backend


async def test_docker_backend_runs_the_calls_and_stops_on_error(docker_backend: Backend) -> None:
    code = "import platform\nprint(platform.system())\nboom = undefined_name\n" + TAIL
    faults = Faults(
        hold_after=hold_after(code, code.split("boom")[0] + "boom = undefined_name\npr")
    )
    collect = Collect()
    replies = [call(code), call("print('again')\n"), Reply(text=["ok"])]
    async with serving(replies, faults) as (llm, model):
        eager = EagerCode(docker_backend, on_result=collect)
        agent = eager.agent(Agent(name="a", model=model))
        result, _ = await stream_to_end(agent)
        first = llm.wait_done(0)
    assert first.client_closed and not first.finished
    assert result.final_output == "ok"
    (_, failed), (_, again) = collect.results
    assert failed.run is not None and failed.run.backend == "docker"
    assert failed.run.stdout == "Linux\n" and failed.run.error is not None
    assert failed.run.error.ename == "NameError"
    assert again.ok and again.run is not None and again.run.stdout == "again\n"
    assert eager.open_sessions == 0


async def test_read_only_tools_are_speculated_while_the_call_streams() -> None:
    @function_tool
    async def forecast(city: str) -> str:
        """Tomorrow's weather for a city."""
        await asyncio.sleep(0.05)
        return f"sun in {city}"

    code = (
        "for city in ['Oslo', 'Lima', 'Pune']:\n"
        "    print(await forecast(city=city))\n"
        "print('done')\n"
    )
    collect = Collect()
    async with serving([call(code), Reply(text=["ok"])]) as (_llm, model):
        eager = EagerCode(on_result=collect, read_only={"forecast"}, speculate=True)
        agent = eager.agent(Agent(name="a", model=model, tools=[forecast]))
        await stream_to_end(agent)
    ((_, turn),) = collect.results
    assert turn.ok and turn.run is not None
    assert turn.run.stdout.splitlines() == ["sun in Oslo", "sun in Lima", "sun in Pune", "done"]
    speculated = [c for c in turn.run.tool_calls if c.speculative]
    assert {c.arguments["city"] for c in speculated} == {"Oslo", "Lima", "Pune"}
    assert all(c.claimed for c in speculated) and turn.run.ledger == []
