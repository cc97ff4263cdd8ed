"""A pydantic-ai agent whose ``run_code`` tool runs while the model is still writing it.

Without arguments it runs offline, from a checkout of this repository: the
project's loopback fake of the OpenAI API (``tests/fake_llm``) plays the model
and streams ``run_code`` calls at ~50 tokens/s. The first call's third
statement fails, generation is stopped there, and the repair call reuses what
the session kept. With a base URL it talks to any OpenAI-compatible server
(vLLM, llama.cpp, Ollama, OpenAI itself)::

    python examples/pydantic_ai_agent.py
    python examples/pydantic_ai_agent.py http://localhost:8000/v1 qwen2.5-coder

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
from openai import AsyncOpenAI
from pydantic_ai import Agent
from pydantic_ai.messages import ToolReturnPart
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from eager_rt.integrations.pydantic_ai import EagerCodeMode

SCRIPTED = [  # what the offline model writes
    # first answer: its third statement fails, so generation stops there
    'temps = {c: (await get_weather(city=c))["temp_c"] for c in ["Oslo", "Lima"]}\n'
    "print(temps)\n"
    "warmest = max(temps, key=temps.get) + 1\n"
    'print("warmest:", warmest)\n' + "".join(f"print({i})\n" for i in range(20)),
    # the repair: the session still has `temps`
    'warmest = max(temps, key=temps.get)\nprint("warmest:", warmest)\n',
]


async def run(base_url: str, name: str, backend: str) -> None:
    client = AsyncOpenAI(base_url=base_url, api_key=api_key(), default_headers=HEADERS)
    agent = Agent(
        OpenAIChatModel(name, provider=OpenAIProvider(openai_client=client)),
        # the switch: a run_code tool, executed while it streams, calling the agent's tools
        capabilities=[EagerCodeMode(backend=backend, read_only=["get_weather"])],
        instructions=INSTRUCTIONS,
    )

    @agent.tool_plain
    async def get_weather(city: str) -> dict[str, float]:
        """Current weather for a city (a stand-in for a real service)."""
        return {"temp_c": temperature(city)}

    result = await agent.run(QUESTION)
    for message in result.all_messages():
        for part in message.parts:
            if isinstance(part, ToolReturnPart):
                show_result(str((part.metadata or {}).get("status", "?")), str(part.content))
    print("--- answer ---\n" + str(result.output))
    await client.close()


def main() -> None:
    args = parser(__doc__).parse_args()
    with model_url(args.base_url, code=SCRIPTED) as url:
        asyncio.run(run(url, args.model, args.backend))


if __name__ == "__main__":
    main()
