"""A pydantic-ai agent whose ``run_code`` tool runs while the model is still writing it.

Without arguments it runs offline: pydantic-ai's ``FunctionModel`` plays the
model, streaming ``run_code`` calls token by token: the first one's third
statement fails, generation is stopped there, and the repair call reuses what
the session kept. With a
base URL it talks to any OpenAI-compatible server (vLLM, llama.cpp, Ollama,
OpenAI itself)::

    python examples/pydantic_ai_agent.py
    python examples/pydantic_ai_agent.py http://localhost:8000/v1 qwen2.5-coder

``--backend docker`` (or podman, jupyter, e2b) runs the code there instead of
a local worker process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import AsyncIterator

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ToolReturnPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from eager_rt.integrations.pydantic_ai import EagerCodeMode

SCRIPTED = [
    # first answer: its third statement fails, so generation stops there
    'temps = {c: (await get_weather(city=c))["temp_c"] for c in ["Oslo", "Lima"]}\n'
    "print(temps)\n"
    "warmest = max(temps, key=temps.get) + 1\n"
    'print("warmest:", warmest)\n',
    # the repair: the session still has `temps`
    'warmest = max(temps, key=temps.get)\nprint("warmest:", warmest)\n',
]


async def scripted(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[object]:
    """The offline model: run_code calls streamed at ~40 tokens/s, then a summary."""
    step = sum(isinstance(p, ToolReturnPart) for m in messages for p in m.parts)
    if step == len(SCRIPTED):
        yield "Lima is the warmer of the two today."
        return
    args = json.dumps({"code": SCRIPTED[step]})
    yield {0: DeltaToolCall(name="run_code", json_args="", tool_call_id=f"call_{step}")}
    for i in range(0, len(args), 4):
        await asyncio.sleep(0.025)
        yield {0: DeltaToolCall(json_args=args[i : i + 4])}


def model(url: str | None, name: str) -> Model:
    if url is None:
        return FunctionModel(stream_function=scripted)
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    key = os.environ.get("OPENAI_API_KEY", "none")
    return OpenAIChatModel(name, provider=OpenAIProvider(base_url=url, api_key=key))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", nargs="?", help="an OpenAI-compatible API (default: offline)")
    parser.add_argument("model", nargs="?", default="gpt-4o-mini")
    parser.add_argument("--backend", default="local")
    args = parser.parse_args()

    agent = Agent(
        model(args.base_url, args.model),
        capabilities=[EagerCodeMode(backend=args.backend, read_only=["get_weather"])],
        instructions="Answer by writing Python for the run_code tool.",
    )

    @agent.tool_plain
    async def get_weather(city: str) -> dict[str, float]:
        """Current weather for a city."""
        return {"temp_c": {"Oslo": 4.0, "Lima": 19.0}.get(city, 12.0)}

    result = await agent.run("Which is warmer today, Oslo or Lima?")
    for message in result.all_messages():
        for part in message.parts:
            if isinstance(part, ToolReturnPart):
                print(f"--- run_code result ---\n{part.content}\n")
    print("--- answer ---\n" + str(result.output))


if __name__ == "__main__":
    asyncio.run(main())
