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

import asyncio

from _common import (
    HEADERS,
    INSTRUCTIONS,
    QUESTION,
    api_key,
    model_url,
    parser,
    show_result,
    temperature,
)
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

SCRIPTED = [  # what the offline model writes
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
    return {"temp_c": temperature(city)}


def model(client: AsyncOpenAI, name: str, api: str) -> Model:
    if api == "responses":
        return OpenAIResponsesModel(name, client)
    return OpenAIChatCompletionsModel(name, client)


def show(call_id: str, turn: TurnResult) -> None:
    show_result("ok" if turn.ok else "error", turn.text)  # what the model is sent


async def run(base_url: str, name: str, api: str, backend: str) -> None:
    client = AsyncOpenAI(base_url=base_url, api_key=api_key(), default_headers=HEADERS)
    agent = Agent(
        name="analyst",
        instructions=INSTRUCTIONS,
        model=model(client, name, api),
        tools=[get_weather],
    )
    eager = EagerCode(backend, read_only={"get_weather"}, on_result=show)
    agent = eager.agent(agent)  # the switch: run_code, executed while it streams
    result = Runner.run_streamed(agent, QUESTION)
    async for event in result.stream_events():
        data = getattr(event, "data", None)  # a raw response event: the model's own
        if isinstance(data, ResponseFunctionCallArgumentsDeltaEvent):
            print(data.delta, end="", flush=True)  # the code as the model writes it
    print(f"\n\nfinal answer: {result.final_output}")
    await client.close()


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--api", choices=["chat", "responses"], default=None)
    args = cli.parse_args()
    offline = args.base_url is None
    if offline:
        set_tracing_disabled(True)  # nothing to export to
    api = args.api or ("responses" if offline else "chat")
    with model_url(args.base_url, code=SCRIPTED) as url:
        asyncio.run(run(url, args.model, api, args.backend))


if __name__ == "__main__":
    main()
