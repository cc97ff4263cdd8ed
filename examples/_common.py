"""What the framework examples share: the command line, the model's server, the scripted answers.

Each ``*_agent.py`` example keeps, in its own file, the lines a user writes to
switch that framework to eager execution; the plumbing around them is here.
Every example asks the same question with the same ``get_weather`` tool.

Without a base URL an example runs offline, from a checkout of this
repository: the loopback fake of the OpenAI API (``tests/fake_llm``) plays the
model, through the framework's own OpenAI model class, and streams the
answers of :func:`scripted` at ~50 tokens/s. The first call's third statement
fails, generation is stopped there (the twenty statements after it never run),
and the repair call reuses what the session kept. With a base URL the example
talks to any OpenAI-compatible server (vLLM, llama.cpp, Ollama, OpenAI itself).
``--backend docker`` (or podman, jupyter, e2b) runs the code there instead of a
local worker process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

QUESTION = "Which is warmer today, Oslo or Lima?"
INSTRUCTIONS = "Answer by writing Python for the run_code tool."
ANSWER = "Lima is the warmer of the two today."

#: headers for the examples' HTTP clients: a kept-alive connection (clients are cached
#: process-wide) would keep the fake server's handler, and so the example, from ending
HEADERS = {"Connection": "close"}

_TEMPERATURES = {"Oslo": 4.0, "Lima": 19.5}


def weather(city: str) -> dict[str, float]:
    """Today's weather in ``city`` (a stand-in for a real service)."""
    return {"temp_c": _TEMPERATURES.get(city, 12.0)}


def scripted(fetch: str = "get_weather(city=c)") -> list[str]:
    """The code of the offline model's two answers; ``fetch`` calls the tool for city ``c``.

    The first fails at its third statement; the repair uses ``temps`` from the session.
    """
    return [
        f'temps = {{c: {fetch}["temp_c"] for c in ["Oslo", "Lima"]}}\n'
        "print(temps)\n"
        "warmest = max(temps, key=temps.get) + 1\n"
        'print("warmest:", warmest)\n' + "".join(f"print({i})\n" for i in range(20)),
        'warmest = max(temps, key=temps.get)\nprint("warmest:", warmest)\n',
    ]


def parser(doc: str | None, *, model: str = "gpt-4.1-mini") -> argparse.ArgumentParser:
    """``[base_url [model]] [--backend NAME]``: the command line every example takes."""
    p = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    p.add_argument("base_url", nargs="?", help="an OpenAI-compatible API (default: offline)")
    p.add_argument("model", nargs="?", default=model)
    p.add_argument("--backend", default="local", help="where the code runs (docker, e2b ...)")
    return p


def api_key() -> str:
    """The key for the server (offline, and for local servers, any text will do)."""
    return os.environ.get("OPENAI_API_KEY", "none")


@contextlib.contextmanager
def model_url(
    base_url: str | None, *, code: list[str] | None = None, text: list[str] | None = None
) -> Iterator[str]:
    """``base_url``, or the fake server's on loopback while the block runs.

    The fake answers each request with the next scripted reply: a ``run_code``
    call for each of ``code`` followed by :data:`ANSWER`, or the texts of
    ``text`` (a model that writes its code in its message, as smolagents' do).
    """
    if base_url is not None:
        yield base_url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's tests/
    from tests.fake_llm import Faults, Reply, pieces, tool_fragments
    from tests.fake_llm.gated import GatedLLM  # numbers call ids per request

    replies = [Reply(tools=[("run_code", tool_fragments(c, 4))]) for c in code or ()]
    if code is not None:
        replies.append(Reply(text=pieces(ANSWER, 4)))
    replies += [Reply(text=pieces(t, 4)) for t in text or ()]
    with GatedLLM(replies, Faults(interval=0.02)) as llm:
        yield llm.openai_url


def show_result(status: str, text: str) -> None:
    """One ``run_code`` result, as the model is sent it."""
    print(f"\n--- run_code result ({status}) ---\n{text}\n---")
