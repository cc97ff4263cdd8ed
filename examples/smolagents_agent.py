"""A smolagents CodeAgent whose actions run while the model is still writing them.

Without arguments it runs offline, from a checkout of this repository: the
project's loopback fake of the OpenAI API (``tests/fake_llm``) plays the model
and streams its actions at ~50 tokens/s. The first action's third statement
fails, the model's stream is stopped there, and the repair step reuses what
the session kept. With a base URL it talks to any OpenAI-compatible server
(vLLM, llama.cpp, Ollama, OpenAI itself), through smolagents' own
``OpenAIServerModel`` in both cases::

    python examples/smolagents_agent.py
    python examples/smolagents_agent.py http://localhost:8000/v1 qwen2.5-coder

``--backend docker`` (or podman, jupyter, e2b) runs the code there instead of
a local worker process.
"""

from __future__ import annotations

from _common import HEADERS, QUESTION, api_key, model_url, parser, temperature
from smolagents import OpenAIServerModel, tool
from smolagents.memory import ActionStep

from eager_rt.integrations.smolagents import EagerCodeAgent

SCRIPTED = [  # what the offline model writes
    # first action: its third statement fails, so generation stops there
    "Thought: I fetch both temperatures, then compare.\n<code>\n"
    'temps = {c: get_weather(city=c) for c in ["Oslo", "Lima"]}\n'
    "print(temps)\n"
    "warmest = max(temps, key=temps.get) + 1\n"
    'print("warmest:", warmest)\n' + "".join(f"print({i})\n" for i in range(20)) + "</code>",
    # the repair: the session still has `temps`
    "Thought: a typo; temps is still there.\n<code>\n"
    "warmest = max(temps, key=temps.get)\n"
    "final_answer(f'{warmest} is the warmer of the two today.')\n</code>",
]


@tool
def get_weather(city: str) -> float:
    """Current temperature of a city, in degrees Celsius (a stand-in for a real service).

    Args:
        city: the city's name
    """
    return temperature(city)


def main() -> None:
    args = parser(__doc__).parse_args()
    with model_url(args.base_url, text=SCRIPTED) as url:
        model = OpenAIServerModel(
            model_id=args.model,
            api_base=url,
            api_key=api_key(),
            client_kwargs={"default_headers": HEADERS},
        )
        # the switch: a CodeAgent whose actions run while the model writes them
        with EagerCodeAgent(
            tools=[get_weather], model=model, backend=args.backend, verbosity_level=0
        ) as agent:
            answer = agent.run(QUESTION)
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
