"""An OpenAI Agents SDK agent whose ``run_code`` tool runs while the model is still writing it.

Without arguments it runs offline, from a checkout of this repository: the
project's loopback fake of the OpenAI API (``tests/fake_llm``) plays the model
and streams ``run_code`` calls at ~50 tokens/s. The first call's third
statement fails, generation is stopped there, and the repair call reuses what
the session kept. With a base URL it talks to any OpenAI-compatible server
(vLLM, llama.cpp, Ollama, OpenAI itself)::

    python examples/openai_agents_agent.py
    python examples/openai_agents_agent.py http://localhost:8000/v1 qwen2.5-coder
    python examples/openai_agents_agent.py https://api.openai.com/v1 gpt-4.1 --api responses

``--backend docker`` (or podman, jupyter, e2b) runs the code there instead of
a local worker process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from agents.models.interface import Model
from openai import AsyncOpenAI

from eager_rt.integrations.openai_agents import EagerCode

SCRIPTED = [
    # first answer: its third statement fails, so generation stops there
    'temps = {c: get_weather(city=c)["temp_c"] for c in ["Oslo", "Lima"]}\n'
    "print(temps)\n"
    "warmest = max(temps, key=temps.get) + 1\n"
    'print("warmest:", warmest)\n' + "".join(f"print({i})\n" for i in range(20)),
    # the repair: the session still has `temps`
    'warmest = max(temps, key=temps.get)\nprint("warmest:", warmest)\n',
]


@function_tool
def get_weather(city: str) -> dict[str, float]:
    """Current weather for a city (a stand-in for a real service)."""
    return {"temp_c": {"Oslo": 4.0, "Lima": 19.5}.get(city, 12.0)}


@contextlib.contextmanager
def offline_server() -> Iterator[str]:
    """The repository's fake OpenAI API on loopback, scripted with :data:`SCRIPTED`."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.fake_llm import Faults, Reply, tool_fragments
    from tests.fake_llm.gated import GatedLLM  # numbers call ids per request

    replies = [Reply(tools=[("run_code", tool_fragments(code, 4))]) for code in SCRIPTED]
    replies.append(Reply(text=["Lima ", "is ", "the ", "warmer ", "of ", "the ", "two."]))
    with GatedLLM(replies, Faults(interval=0.02)) as llm:
        yield llm.openai_url


def model(client: AsyncOpenAI, name: str, api: str) -> Model:
    if api == "responses":
        return OpenAIResponsesModel(name, client)
    return OpenAIChatCompletionsModel(name, client)


async def run(base_url: str, name: str, api: str, backend: str) -> None:
    client = AsyncOpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "none"))
    agent = Agent(
        name="analyst",
        instructions="Answer by writing Python for the run_code tool.",
        model=model(client, name, api),
        tools=[get_weather],
    )
    eager = EagerCode(backend, read_only={"get_weather"}, on_result=show)
    agent = eager.agent(agent)  # the switch: run_code, executed while it streams
    result = Runner.run_streamed(agent, "Which is warmer today, Oslo or Lima?")
    async for event in result.stream_events():
        if event.type == "raw_response_event" and event.data.type.endswith("arguments.delta"):
            print(event.data.delta, end="", flush=True)  # the code as the model writes it
    print(f"\n\nfinal answer: {result.final_output}")
    await client.close()


def show(call_id: str, turn: object) -> None:
    text = getattr(turn, "text", "")
    print(f"\n--- run_code {call_id} result, sent to the model ---\n{text}\n---")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("base_url", nargs="?", help="an OpenAI-compatible API (default: offline)")
    parser.add_argument("model", nargs="?", default="gpt-4.1-mini")
    parser.add_argument("--api", choices=["chat", "responses"], default=None)
    parser.add_argument("--backend", default="local")
    args = parser.parse_args()
    if args.base_url is None:
        set_tracing_disabled(True)  # offline: nothing to export to
        with offline_server() as url:
            asyncio.run(run(url, "fake-model", args.api or "responses", args.backend))
    else:
        asyncio.run(run(args.base_url, args.model, args.api or "chat", args.backend))


if __name__ == "__main__":
    main()
