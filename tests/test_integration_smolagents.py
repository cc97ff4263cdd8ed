"""smolagents' CodeAgent with eager execution, against the unmodified package.

The model is smolagents' own ``OpenAIServerModel`` pointed at the loopback
server in ``tests/fake_llm`` (streaming Chat Completions, paced like a real
model). Each scripted reply ends where a real server would stop it: smolagents
asks for the stop sequence ``</code>``, which the real service leaves out.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from smolagents import CodeAgent, OpenAIServerModel, tool
from smolagents.local_python_executor import InterpreterError
from smolagents.memory import ActionStep

from eager_rt.integrations import smolagents as adapter
from eager_rt.integrations.smolagents import (
    EagerCodeAgent,
    EagerMismatchWarning,
    EagerPythonExecutor,
)
from tests.fake_llm.events import Reply
from tests.fake_llm.server import FakeLLM, Faults
from tests.processes import process_gone
from tests.provision.docker import TEST_IMAGE, require_docker

PACE = Faults(interval=0.02)  # 50 events/s


class Ledger:
    """What the host tools saw, in order (called on eager_rt's tool threads)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, name: str, value: Any) -> None:
        with self._lock:
            self.calls.append((name, value))


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def tools(ledger: Ledger) -> list[Any]:
    @tool
    def get_price(item: str) -> float:
        """The price of an item in the shop.

        Args:
            item: the item's name
        """
        ledger.add("get_price", item)
        return {"apple": 1.5, "pear": 2.0}[item]

    @tool
    def send_order(item: str, quantity: int = 1) -> str:
        """Orders an item.

        Args:
            item: the item's name
            quantity: how many
        """
        ledger.add("send_order", (item, quantity))
        return f"ordered {quantity} {item}"

    return [get_price, send_order]


def model_for(llm: FakeLLM) -> OpenAIServerModel:
    return OpenAIServerModel(model_id="fake-model-1", api_base=llm.openai_url, api_key="sk-fake")


def pieces(text: str, size: int = 6) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def action_steps(agent: CodeAgent) -> list[ActionStep]:
    return [s for s in agent.memory.steps if isinstance(s, ActionStep)]


STEP_PRICES = pieces(
    "Thought: I look up both prices.\n<code>\n"
    "a = get_price('apple')\n"
    "print('apple', a)\n"
    "p = get_price(item='pear')\n"
    "print('pear', p)\n"
)
STEP_ANSWER = pieces("Thought: I add them.\n<code>\nfinal_answer(a + p)\n")


@pytest.fixture
def agent_factory() -> Iterator[Any]:
    made: list[CodeAgent] = []

    def make(llm: FakeLLM, tools: list[Any], **kwargs: Any) -> EagerCodeAgent:
        agent = EagerCodeAgent(tools=tools, model=model_for(llm), verbosity_level=0, **kwargs)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.cleanup()


def test_multi_step_run_with_tools_and_final_answer(
    agent_factory: Any, tools: list[Any], ledger: Ledger
) -> None:
    with FakeLLM([Reply(text=STEP_PRICES), Reply(text=STEP_ANSWER)], PACE) as llm:
        agent = agent_factory(llm, tools, stream_outputs=True)
        answer = agent.run("What do an apple and a pear cost together?")
    assert answer == 3.5
    assert ledger.calls == [("get_price", "apple"), ("get_price", "pear")]
    first, second = action_steps(agent)
    assert first.observations == (
        "Execution logs:\napple 1.5\npear 2.0\nLast output from code snippet:\nNone"
    )
    assert first.error is None and not first.is_final_answer
    assert second.is_final_answer and second.action_output == 3.5
    runs = agent.python_executor.runs
    assert runs[0].executed_code == (
        "a = get_price('apple')\nprint('apple', a)\np = get_price(item='pear')\nprint('pear', p)\n"
    )
    # the first statement ran while the model was still writing the rest
    assert runs[0].chunks[0].t_exec_end is not None
    assert runs[0].chunks[0].t_exec_end < runs[0].gen_s
    assert len(llm.requests) == 2


def test_generate_without_stream_outputs_is_eager_too(agent_factory: Any, tools: list[Any]) -> None:
    with FakeLLM([Reply(text=STEP_PRICES), Reply(text=STEP_ANSWER)], PACE) as llm:
        agent = agent_factory(llm, tools, stream_outputs=False)
        assert agent.run("Total?") == 3.5
    run = agent.python_executor.runs[0]
    assert run.chunks[0].t_exec_end is not None and run.chunks[0].t_exec_end < run.gen_s


@pytest.mark.parametrize("tags", [None, "markdown"])
def test_markdown_fences_as_configured_or_as_smolagents_fallback(
    agent_factory: Any, tools: list[Any], tags: str | None
) -> None:
    fenced = pieces(
        "Thought: fences.\n```python\nq = get_price('pear') * 3\nprint(q)\n```\nThat is all."
    )
    answer = pieces("Thought: done.\n```py\nfinal_answer(q)\n```")
    with FakeLLM([Reply(text=fenced), Reply(text=answer)], PACE) as llm:
        agent = agent_factory(llm, tools, code_block_tags=tags)
        assert agent.run("Three pears?") == 6.0
    assert action_steps(agent)[0].observations.startswith("Execution logs:\n6.0\n")
    assert agent.python_executor.runs[0].executed_code == "q = get_price('pear') * 3\nprint(q)\n"


def test_error_stops_the_model_stream_and_the_rest_never_runs(
    agent_factory: Any, tools: list[Any], ledger: Ledger
) -> None:
    failing = pieces(
        "Thought: order.\n<code>\nprint('checking')\nstock = {'apple': 0}\n"
        "ratio = 10 / stock['apple']\n"
        + "".join(f"send_order('apple', {i})\n" for i in range(1, 30))
    )
    fixed = pieces("Thought: no stock, stop.\n<code>\nfinal_answer('out of stock')\n")
    with FakeLLM([Reply(text=failing), Reply(text=fixed)], PACE) as llm:
        agent = agent_factory(llm, tools, stream_outputs=True)
        assert agent.run("Order apples") == "out of stock"
        first = llm.wait_done(0)
    assert first.client_closed and first.events_unsent > 0
    assert not [c for c in ledger.calls if c[0] == "send_order"]
    step = action_steps(agent)[0]
    assert step.error is not None
    assert str(step.error) == (
        "Code execution failed at line 'ratio = 10 / stock['apple']' due to: "
        "ZeroDivisionError: division by zero"
    )
    # the output printed before the error reaches the observation, as with smolagents' executor
    assert step.observations == "Execution logs:\nchecking\n"
    run = agent.python_executor.runs[0]
    assert run.stream_closed_early and run.error is not None
    assert "send_order('apple', 29)" not in step.model_output


def test_repair_step_sees_the_error_and_the_session_state(
    agent_factory: Any, tools: list[Any]
) -> None:
    broken = pieces("Thought: go.\n<code>\ntotal = get_price('apple')\nprint(totl)\n")
    seen: list[str] = []

    def reply(api: str, body: dict[str, Any]) -> Reply:
        seen.append(str(body["messages"]))
        if len(seen) == 1:
            return Reply(text=broken)
        return Reply(text=pieces("Thought: typo.\n<code>\nfinal_answer(total * 2)\n"))

    with FakeLLM(reply, PACE) as llm:
        agent = agent_factory(llm, tools)
        assert agent.run("Two apples?") == 3.0
    assert "Code execution failed at line 'print(totl)' due to: NameError" in seen[1]
    assert "Now let's retry" in seen[1]


def test_syntax_error_is_reported_as_a_parse_failure(agent_factory: Any, tools: list[Any]) -> None:
    broken = pieces("Thought: go.\n<code>\nx = 1\ny = (2 +\nprint(x]\n" + "z = 3\n" * 20)
    with FakeLLM(
        [Reply(text=broken), Reply(text=pieces("<code>\nfinal_answer(x)\n"))], PACE
    ) as llm:
        agent = agent_factory(llm, tools, stream_outputs=True)
        assert agent.run("x?") == 1
        assert llm.wait_done(0).client_closed
    error = str(action_steps(agent)[0].error)
    assert error.startswith("Code parsing failed on line ")
    assert "SyntaxError" in error


def test_planning_steps_are_not_executed(
    agent_factory: Any, tools: list[Any], ledger: Ledger
) -> None:
    plan = Reply(text=pieces("1. <code>send_order('pear')</code> maybe\n<end_plan>"))
    replies = [plan, Reply(text=STEP_PRICES), Reply(text=STEP_ANSWER)]
    with FakeLLM(replies, PACE) as llm:
        agent = agent_factory(llm, tools, planning_interval=5, stream_outputs=True)
        assert agent.run("Total?") == 3.5
    assert [c[0] for c in ledger.calls] == ["get_price", "get_price"]
    assert len(agent.python_executor.runs) == 2


def test_additional_args_reach_the_session(agent_factory: Any, tools: list[Any]) -> None:
    step = pieces("<code>\nfinal_answer(sum(prices.values()) * factor)\n")
    with FakeLLM([Reply(text=step)], PACE) as llm:
        agent = agent_factory(llm, tools)
        out = agent.run("Sum", additional_args={"prices": {"a": 1.0, "b": 2.5}, "factor": 2})
    assert out == 7.0


def test_read_only_tools_are_speculated_when_asked(
    agent_factory: Any, tools: list[Any], ledger: Ledger
) -> None:
    step = pieces(
        "<code>\nprices = [get_price('apple'), get_price('pear')]\nprint(sum(prices))\n", 4
    )
    answer = pieces("<code>\nfinal_answer(sum(prices))\n")
    with FakeLLM([Reply(text=step), Reply(text=answer)], PACE) as llm:
        agent = agent_factory(llm, tools, read_only_tools=["get_price"], speculate=True)
        assert agent.run("Sum?") == 3.5
    run = agent.python_executor.runs[0]
    assert [c.tool for c in run.tool_calls] == ["get_price", "get_price"]
    assert all(c.speculative and c.claimed for c in run.tool_calls)
    assert ledger.calls == [("get_price", "apple"), ("get_price", "pear")]  # each once
    assert action_steps(agent)[0].observations.startswith("Execution logs:\n3.5\n")


def test_a_managed_agent_is_callable_from_the_code(
    agent_factory: Any, tools: list[Any], ledger: Ledger
) -> None:
    manager = [
        pieces("<code>\nreport = helper(task='price of a pear')\nprint(report)\n"),
        pieces("<code>\nfinal_answer('helper says: ' + report.split()[-1])\n"),
    ]
    helper_reply = pieces("<code>\nfinal_answer(get_price('pear'))\n")
    turns: list[str] = []

    def reply(api: str, body: dict[str, Any]) -> Reply:
        is_helper = "You're a helpful agent named 'helper'" in str(body["messages"])
        turns.append("helper" if is_helper else "manager")
        if is_helper:
            return Reply(text=helper_reply)
        return Reply(text=manager[turns.count("manager") - 1])

    with FakeLLM(reply, PACE) as llm:
        helper = CodeAgent(
            tools=tools,
            model=model_for(llm),
            name="helper",
            description="Looks prices up.",
            stream_outputs=True,
            verbosity_level=0,
            provide_run_summary=False,
        )
        agent = agent_factory(llm, [], managed_agents=[helper])
        answer = agent.run("What does the helper say a pear costs?")
    assert turns == ["manager", "helper", "manager"]
    assert ledger.calls == [("get_price", "pear")]
    assert str(answer).startswith("helper says: ")
    assert "2.0" in action_steps(agent)[0].observations


def test_structured_outputs_run_after_generation(agent_factory: Any, tools: list[Any]) -> None:
    action = json.dumps({"thought": "add", "code": "x = get_price('pear')\nfinal_answer(x * 2)"})
    with FakeLLM([Reply(text=pieces(action))], PACE) as llm:
        agent = agent_factory(llm, tools, use_structured_outputs_internally=True)
        assert agent.run("Two pears?") == 4.0
    assert agent.python_executor.runs[0].code == "x = get_price('pear')\nfinal_answer(x * 2)"


def test_unpicklable_variables_are_refused_with_the_reason(executor: EagerPythonExecutor) -> None:
    with pytest.raises(TypeError, match="must be picklable"):
        executor.send_variables({"lock": threading.Lock()})


def test_regex_tags_and_executor_type_are_refused(tools: list[Any]) -> None:
    model = OpenAIServerModel(model_id="m", api_base="http://127.0.0.1:9/v1", api_key="x")
    with pytest.raises(ValueError, match="literal code block tags"):
        EagerCodeAgent(tools=tools, model=model, code_block_tags=("<c(ode)?>", "</code>"))
    with pytest.raises(TypeError, match="executor_type"):
        EagerCodeAgent(tools=tools, model=model, executor_type="local")


def test_version_range_is_checked() -> None:
    adapter._check_version("1.26.0")
    adapter._check_version("1.20.0")
    for version in ("1.19.2", "2.0.0"):
        with pytest.raises(ImportError, match="supports smolagents"):
            adapter._check_version(version)


# ----------------------------------------------------------------- the executor on its own


@pytest.fixture
def executor() -> Iterator[EagerPythonExecutor]:
    ex = EagerPythonExecutor("local", exec_timeout=30)
    try:
        yield ex
    finally:
        ex.cleanup()


def test_executor_interface_on_its_own(executor: EagerPythonExecutor, tools: list[Any]) -> None:
    from smolagents import FinalAnswerTool

    executor.send_tools({t.name: t for t in tools} | {"final_answer": FinalAnswerTool()})
    executor.send_variables({"basket": ["apple", "pear"], "raw": b"\x00\x01"})
    out = executor("total = sum(get_price(i) for i in basket)\nprint(total, len(raw))")
    assert (out.output, out.logs, out.is_final_answer) == (None, "3.5 2\n", False)
    with pytest.raises(InterpreterError, match=r"at line 'total / 0' due to: ZeroDivisionError"):
        executor("print('x')\ntotal / 0")
    assert executor.state["_print_outputs"] == "x\n"
    out = executor("try:\n    final_answer(total)\nexcept Exception:\n    pass\nprint('never')")
    assert (out.output, out.logs, out.is_final_answer) == (3.5, "", True)
    with pytest.raises(InterpreterError, match=r"TypeError: .* tool values must be str"):
        executor("final_answer(object())")


def test_executor_bounds_an_execution_and_keeps_the_session() -> None:
    executor = EagerPythonExecutor("local", exec_timeout=0.5)
    try:
        executor("kept = 41")
        with pytest.raises(InterpreterError) as failure:
            executor("import time\nprint('a')\ntime.sleep(30)\nprint('b')")
        assert str(failure.value) == (
            "Code execution failed at line 'time.sleep(30)' due to: TimeoutError: "
            "it ran longer than 0.5 s and was stopped"
        )
        assert executor.state["_print_outputs"] == "a\n"
        assert executor("print(kept + 1)").logs == "42\n"
        pid = executor.session.pid  # type: ignore[attr-defined]
    finally:
        executor.cleanup()
    assert pid is not None and process_gone(pid)
    executor.cleanup()  # idempotent


def test_executor_in_a_plain_code_agent(tools: list[Any], ledger: Ledger) -> None:
    replies = [Reply(text=STEP_PRICES), Reply(text=STEP_ANSWER)]
    with (
        FakeLLM(replies, PACE) as llm,
        CodeAgent(
            tools=tools,
            model=model_for(llm),
            executor=EagerPythonExecutor("local"),
            verbosity_level=0,
            stream_outputs=True,
        ) as agent,
    ):
        assert agent.run("Total?") == 3.5
        assert action_steps(agent)[0].observations.startswith("Execution logs:\napple 1.5\n")
    assert not agent.python_executor.session.alive  # cleanup() closed it


def test_code_smolagents_parsed_differently_is_reported(
    agent_factory: Any, tools: list[Any]
) -> None:
    # a fence first, then tags: eager_rt read the fence as it came, smolagents prefers tags
    text = pieces("```python\nx = 1\nprint(x)\n```\nor rather\n<code>\ny = 2\n</code>")
    with FakeLLM([Reply(text=text), Reply(text=pieces("<code>\nfinal_answer(1)\n"))], PACE) as llm:
        agent = agent_factory(llm, tools)
        with pytest.warns(EagerMismatchWarning):
            assert agent.run("x", max_steps=2) == 1
    assert action_steps(agent)[0].observations.startswith("Execution logs:\n1\n")


def test_docker_backend(agent_factory: Any, tools: list[Any], ledger: Ledger) -> None:
    require_docker()
    with FakeLLM([Reply(text=STEP_PRICES), Reply(text=STEP_ANSWER)], PACE) as llm:
        agent = agent_factory(llm, tools, backend="docker", backend_options={"image": TEST_IMAGE})
        assert agent.run("Total?") == 3.5
    assert ledger.calls == [("get_price", "apple"), ("get_price", "pear")]
    assert agent.python_executor.session.backend_name == "docker"
