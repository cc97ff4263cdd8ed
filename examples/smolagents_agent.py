"""A smolagents CodeAgent whose actions run while the model is still writing them.

Offline without arguments, or against any OpenAI-compatible server (see ``_common.py``),
through smolagents' own ``OpenAIServerModel`` in both cases::

    python examples/smolagents_agent.py
    python examples/smolagents_agent.py http://localhost:8000/v1 qwen2.5-coder --backend docker
"""

from __future__ import annotations

import _common as demo  # the examples' plumbing: server, command line, data
from smolagents import OpenAIServerModel, tool
from smolagents.memory import ActionStep

from eager_rt.integrations.smolagents import EagerCodeAgent


@tool
def get_weather(city: str) -> dict[str, float]:
    """Current weather for a city (a stand-in for a real service).

    Args:
        city: the city's name
    """
    return demo.weather(city)


def actions() -> list[str]:
    """The offline model's actions: the scripted code in smolagents' ``<code>`` tags."""
    first, repair = demo.scripted()
    return [
        f"Thought: I fetch both temperatures, then compare.\n<code>\n{first}</code>",
        f"Thought: a typo; temps is still there.\n<code>\n{repair}"
        f"final_answer({demo.ANSWER!r})\n</code>",
    ]


def main() -> None:
    args = demo.parser(__doc__).parse_args()
    with demo.model_url(args.base_url, text=actions()) as url:
        model = OpenAIServerModel(
            model_id=args.model,
            api_base=url,
            api_key=demo.api_key(),
            client_kwargs={"default_headers": demo.HEADERS},
        )
        # the switch: a CodeAgent whose actions run while the model writes them
        with EagerCodeAgent(
            tools=[get_weather], model=model, backend=args.backend, verbosity_level=0
        ) as agent:
            answer = agent.run(demo.QUESTION)
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
                    f"[{status}] generation {run.gen_s:.2f} s, "
                    f"after it {run.nel_s * 1000:.0f} ms, "
                    f"stream closed early: {run.stream_closed_early}"
                )
    print("--- answer ---\n" + str(answer))


if __name__ == "__main__":
    main()
