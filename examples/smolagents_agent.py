"""A smolagents CodeAgent whose actions run while the model is still writing them.

Without arguments it runs offline: a scripted smolagents ``Model`` streams the
actions token by token; the first action's third statement fails, the model's
stream is stopped there, and the repair step reuses what the session kept.
With a base URL it talks to any OpenAI-compatible server (vLLM, llama.cpp,
Ollama, OpenAI itself) through smolagents' own ``OpenAIServerModel``::

    python examples/smolagents_agent.py
    python examples/smolagents_agent.py http://localhost:8000/v1 qwen2.5-coder

``--backend docker`` (or podman, jupyter, e2b) runs the code there instead of
a local worker process.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Generator
from typing import Any

from smolagents import Model, OpenAIServerModel, tool
from smolagents.memory import ActionStep
from smolagents.models import ChatMessageStreamDelta, agglomerate_stream_deltas

from eager_rt.integrations.smolagents import EagerCodeAgent

SCRIPTED = [
    # first action: its third statement fails, so generation stops there
    "Thought: I fetch both temperatures, then compare.\n<code>\n"
    'temps = {c: get_weather(city=c) for c in ["Oslo", "Lima"]}\n'
    "print(temps)\n"
    "warmest = max(temps, key=temps.get) + 1\n"
    'print("warmest:", warmest)\n',
    # the repair: the session still has `temps`
    "Thought: a typo; temps is still there.\n<code>\n"
    "warmest = max(temps, key=temps.get)\n"
    "final_answer(f'{warmest} is the warmer of the two today.')\n",
]


class ScriptedModel(Model):  # type: ignore[misc]
    """The offline model: each action streamed at ~40 tokens/s."""

    def __init__(self) -> None:
        super().__init__(model_id="scripted")
        self.step = 0

    def generate_stream(self, messages: Any, **kwargs: Any) -> Generator[ChatMessageStreamDelta]:
        text = SCRIPTED[min(self.step, len(SCRIPTED) - 1)]
        self.step += 1
        for i in range(0, len(text), 4):
            time.sleep(0.025)
            yield ChatMessageStreamDelta(content=text[i : i + 4])

    def generate(self, messages: Any, **kwargs: Any) -> Any:
        return agglomerate_stream_deltas(list(self.generate_stream(messages, **kwargs)))


@tool
def get_weather(city: str) -> float:
    """Current temperature of a city, in degrees Celsius.

    Args:
        city: the city's name
    """
    return {"Oslo": 4.0, "Lima": 19.0}.get(city, 12.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", nargs="?", help="an OpenAI-compatible API (default: offline)")
    parser.add_argument("model", nargs="?", default="gpt-4o-mini")
    parser.add_argument("--backend", default="local")
    args = parser.parse_args()

    model: Model = ScriptedModel()
    if args.base_url:
        key = os.environ.get("OPENAI_API_KEY", "none")
        model = OpenAIServerModel(model_id=args.model, api_base=args.base_url, api_key=key)

    with EagerCodeAgent(
        tools=[get_weather], model=model, backend=args.backend, verbosity_level=0
    ) as agent:
        answer = agent.run("Which is warmer today, Oslo or Lima?")
        for step in agent.memory.steps:
            if isinstance(step, ActionStep):
                print(f"--- step {step.step_number} ---")
                print(step.observations or "", end="")
                if step.error is not None:
                    print(f"error: {step.error}")
                print()
        for run in agent.python_executor.runs:
            final = run.error is not None and run.error.ename == "FinalAnswerException"
            status = "final answer" if final else run.status
            print(
                f"[{status}] generation {run.gen_s:.2f} s, after it {run.nel_s * 1000:.0f} ms, "
                f"stream closed early: {run.stream_closed_early}"
            )
    print("--- answer ---\n" + str(answer))


if __name__ == "__main__":
    main()
