"""A pydantic-ai agent whose ``run_code`` tool runs while the model is still writing it.

Offline without arguments, or against any OpenAI-compatible server (see ``_common.py``)::

    python examples/pydantic_ai_agent.py
    python examples/pydantic_ai_agent.py http://localhost:8000/v1 qwen2.5-coder --backend docker
"""

from __future__ import annotations

import asyncio

import _common as demo  # the examples' plumbing: server, command line, data
from openai import AsyncOpenAI
from pydantic_ai import Agent
from pydantic_ai.messages import ToolReturnPart
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from eager_rt.integrations.pydantic_ai import EagerCodeMode


async def run(base_url: str, name: str, backend: str) -> None:
    client = AsyncOpenAI(base_url=base_url, api_key=demo.api_key(), default_headers=demo.HEADERS)
    agent = Agent(
        OpenAIChatModel(name, provider=OpenAIProvider(openai_client=client)),
        # the switch: a run_code tool, executed while it streams, calling the agent's tools
        capabilities=[EagerCodeMode(backend=backend, read_only=["get_weather"])],
        instructions=demo.INSTRUCTIONS,
    )

    @agent.tool_plain
    async def get_weather(city: str) -> dict[str, float]:
        """Current weather for a city (a stand-in for a real service)."""
        return demo.weather(city)

    result = await agent.run(demo.QUESTION)
    for message in result.all_messages():
        for part in message.parts:
            if isinstance(part, ToolReturnPart):
                demo.show_result(str((part.metadata or {}).get("status", "?")), str(part.content))
    print("--- answer ---\n" + str(result.output))
    await client.close()


def main() -> None:
    args = demo.parser(__doc__).parse_args()
    # the offline model calls the agent's tools as the async functions they are in the code
    code = demo.scripted(fetch="(await get_weather(city=c))")
    with demo.model_url(args.base_url, code=code) as url:
        asyncio.run(run(url, args.model, args.backend))


if __name__ == "__main__":
    main()
