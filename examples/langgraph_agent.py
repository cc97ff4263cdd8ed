"""A LangGraph ReAct agent whose ``run_code`` tool runs while the model is still writing it.

Offline without arguments, or against any OpenAI-compatible server (see ``_common.py``)::

    python examples/langgraph_agent.py
    python examples/langgraph_agent.py http://localhost:8000/v1 qwen2.5-coder --backend docker
    python examples/langgraph_agent.py https://api.openai.com/v1 gpt-4.1
"""

from __future__ import annotations

import asyncio
import warnings

import _common as demo  # the examples' plumbing: server, command line, data
from langchain_core.messages import AIMessageChunk, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent
from pydantic import SecretStr

from eager_rt.integrations.langgraph import EagerCode

# langgraph 1.x points to langchain.agents.create_agent (a separate package); this still works
warnings.filterwarnings("ignore", message="create_react_agent has been moved")


@tool
def get_weather(city: str) -> dict[str, float]:
    """Current weather for a city (a stand-in for a real service)."""
    return demo.weather(city)


async def run(base_url: str, name: str, backend: str) -> None:
    model = ChatOpenAI(
        model=name,
        base_url=base_url,
        api_key=SecretStr(demo.api_key()),
        default_headers=demo.HEADERS,
    )
    eager = EagerCode(backend, tools=[get_weather], read_only=["get_weather"])
    # the switch: the model wrapped, the run_code tool beside the graph's own tools
    agent = create_react_agent(eager.wrap(model), [eager.tool, get_weather])
    async with eager:  # each run's session closes when the run ends
        async for message, _ in agent.astream(
            {"messages": [("user", demo.QUESTION)]}, stream_mode="messages"
        ):
            if isinstance(message, AIMessageChunk):
                for part in message.tool_call_chunks:
                    print(part.get("args") or "", end="", flush=True)  # the code as it streams
                print(message.content, end="", flush=True)
            elif isinstance(message, ToolMessage) and message.name == eager.name:
                demo.show_result(message.status, str(message.content))
    print()


def main() -> None:
    args = demo.parser(__doc__).parse_args()
    with demo.model_url(args.base_url, code=demo.scripted()) as url:
        asyncio.run(run(url, args.model, args.backend))


if __name__ == "__main__":
    main()
