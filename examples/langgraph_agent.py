"""A LangGraph ReAct agent whose ``run_code`` tool runs while the model is still writing it.

Without arguments it runs offline, from a checkout of this repository: the
project's loopback fake of the OpenAI API (``tests/fake_llm``) plays the model
and streams ``run_code`` calls at ~50 tokens/s. The first call's third
statement fails, generation is stopped there, and the repair call reuses what
the session kept. With a base URL it talks to any OpenAI-compatible server
(vLLM, llama.cpp, Ollama, OpenAI itself)::

    python examples/langgraph_agent.py
    python examples/langgraph_agent.py http://localhost:8000/v1 qwen2.5-coder
    python examples/langgraph_agent.py https://api.openai.com/v1 gpt-4.1

``--backend docker`` (or podman, jupyter, e2b) runs the code there instead of
a local worker process.
"""

from __future__ import annotations

import asyncio
import warnings

from _common import HEADERS, QUESTION, api_key, model_url, parser, show_result, temperature
from langchain_core.messages import AIMessageChunk, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent
from pydantic import SecretStr

from eager_rt.integrations.langgraph import EagerCode

# langgraph 1.x points to langchain.agents.create_agent (a separate package); this still works
warnings.filterwarnings("ignore", message="create_react_agent has been moved")

SCRIPTED = [  # what the offline model writes
    # first answer: its third statement fails, so generation stops there
    'temps = {c: get_weather(city=c)["temp_c"] for c in ["Oslo", "Lima"]}\n'
    "print(temps)\n"
    "warmest = max(temps, key=temps.get) + 1\n"
    'print("warmest:", warmest)\n' + "".join(f"print({i})\n" for i in range(20)),
    # the repair: the session still has `temps`
    'warmest = max(temps, key=temps.get)\nprint("warmest:", warmest)\n',
]


@tool
def get_weather(city: str) -> dict[str, float]:
    """Current weather for a city (a stand-in for a real service)."""
    return {"temp_c": temperature(city)}


async def run(base_url: str, name: str, backend: str) -> None:
    model = ChatOpenAI(
        model=name, base_url=base_url, api_key=SecretStr(api_key()), default_headers=HEADERS
    )
    eager = EagerCode(backend, tools=[get_weather], read_only=["get_weather"])
    # the switch: the model wrapped, the run_code tool beside the graph's own tools
    agent = create_react_agent(eager.wrap(model), [eager.tool, get_weather])
    async with eager:  # each run's session closes when the run ends
        async for message, _ in agent.astream(
            {"messages": [("user", QUESTION)]}, stream_mode="messages"
        ):
            if isinstance(message, AIMessageChunk):
                for part in message.tool_call_chunks:
                    print(part.get("args") or "", end="", flush=True)  # the code as it streams
                print(message.content, end="", flush=True)
            elif isinstance(message, ToolMessage) and message.name == eager.name:
                show_result(message.status, str(message.content))
    print()


def main() -> None:
    args = parser(__doc__).parse_args()
    with model_url(args.base_url, code=SCRIPTED) as url:
        asyncio.run(run(url, args.model, args.backend))


if __name__ == "__main__":
    main()
