"""An OpenAI Agents SDK agent whose ``run_code`` tool runs while the model is still writing it.

Offline without arguments, or against any OpenAI-compatible server (see ``_common.py``);
``--api`` picks the SDK's Chat Completions or Responses model::

    python examples/openai_agents_agent.py
    python examples/openai_agents_agent.py http://localhost:8000/v1 qwen2.5-coder --backend docker
    python examples/openai_agents_agent.py https://api.openai.com/v1 gpt-4.1 --api responses
"""

from __future__ import annotations

import asyncio

import _common as demo  # the examples' plumbing: server, command line, data
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
from openai.types.responses import ResponseFunctionCallArgumentsDeltaEvent

from eager_rt.agent import TurnResult
from eager_rt.integrations.openai_agents import EagerCode


@function_tool
def get_weather(city: str) -> dict[str, float]:
    """Current weather for a city (a stand-in for a real service)."""
    return demo.weather(city)


def model(client: AsyncOpenAI, name: str, api: str) -> Model:
    if api == "responses":
        return OpenAIResponsesModel(name, client)
    return OpenAIChatCompletionsModel(name, client)


def show(call_id: str, turn: TurnResult) -> None:
    demo.show_result("ok" if turn.ok else "error", turn.text)  # what the model is sent


async def run(base_url: str, name: str, api: str, backend: str) -> None:
    client = AsyncOpenAI(base_url=base_url, api_key=demo.api_key(), default_headers=demo.HEADERS)
    agent = Agent(
        name="analyst",
        instructions=demo.INSTRUCTIONS,
        model=model(client, name, api),
        tools=[get_weather],
    )
    eager = EagerCode(backend, read_only={"get_weather"}, on_result=show)
    agent = eager.agent(agent)  # the switch: run_code, executed while it streams
    result = Runner.run_streamed(agent, demo.QUESTION)
    async for event in result.stream_events():
        data = getattr(event, "data", None)  # a raw response event: the model's own
        if isinstance(data, ResponseFunctionCallArgumentsDeltaEvent):
            print(data.delta, end="", flush=True)  # the code as the model writes it
    print(f"\n\nfinal answer: {result.final_output}")
    await client.close()


def main() -> None:
    cli = demo.parser(__doc__)
    cli.add_argument("--api", choices=["chat", "responses"], default=None)
    args = cli.parse_args()
    offline = args.base_url is None
    if offline:
        set_tracing_disabled(True)  # nothing to export to
    api = args.api or ("responses" if offline else "chat")
    with demo.model_url(args.base_url, code=demo.scripted()) as url:
        asyncio.run(run(url, args.model, api, args.backend))


if __name__ == "__main__":
    main()
