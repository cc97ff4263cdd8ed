"""The adapters against the real services; each test runs only when its API key is set.

Models can be changed with ``EAGER_OPENAI_MODEL`` / ``EAGER_ANTHROPIC_MODEL``.
The prompts ask for a computation whose result the model cannot guess without
running code, so a pass means the code really streamed through the runtime.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from eager_rt.agent import STREAMABLE_CODE_PROMPT, run_turn
from eager_rt.sync import SyncSession

pytestmark = pytest.mark.live

OPENAI_KEY = os.environ.get("OPENAI_API_KEY")
ANTHROPIC_KEY = os.environ.get("ANTHROPIC_API_KEY")
OPENAI_MODEL = os.environ.get("EAGER_OPENAI_MODEL", "gpt-4o-mini")
ANTHROPIC_MODEL = os.environ.get("EAGER_ANTHROPIC_MODEL", "claude-haiku-4-5")

needs_openai = pytest.mark.skipif(not OPENAI_KEY, reason="OPENAI_API_KEY is not set")
needs_anthropic = pytest.mark.skipif(not ANTHROPIC_KEY, reason="ANTHROPIC_API_KEY is not set")

SYSTEM = "Answer with Python code in one ```python block.\n\n" + STREAMABLE_CODE_PROMPT
PROMPT = "Compute the sum of the squares of the first 321 prime numbers and print only that number."
TOOL_SYSTEM = "Use the python tool to run code.\n\n" + STREAMABLE_CODE_PROMPT
TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"code": {"type": "string"}},
    "required": ["code"],
}

RESPONSES_TOOL: Any = {
    "type": "function",
    "name": "python",
    "description": "Run Python code.",
    "parameters": TOOL_SCHEMA,
    "strict": False,
}
ANTHROPIC_TOOL: Any = {
    "name": "python",
    "description": "Run Python code.",
    "input_schema": TOOL_SCHEMA,
}


def expected() -> str:
    primes: list[int] = []
    n = 2
    while len(primes) < 321:
        if all(n % p for p in primes if p * p <= n):
            primes.append(n)
        n += 1
    return str(sum(p * p for p in primes))


@needs_openai
def test_openai_chat_fenced_code(sync_session: SyncSession) -> None:
    import openai

    client = openai.OpenAI(timeout=120)
    try:
        t0 = time.perf_counter()
        stream = client.chat.completions.create(
            model=OPENAI_MODEL,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}],
        )
        turn = run_turn(stream, sync_session, started=t0, timeout=300)
    finally:
        client.close()
    assert turn.ok, turn.text
    assert expected() in turn.data["stdout"]
    assert turn.stream is not None and turn.stream.complete and turn.stream.ttft_s


@needs_openai
def test_openai_responses_tool_call(sync_session: SyncSession) -> None:
    import openai

    client = openai.OpenAI(timeout=120)
    try:
        stream = client.responses.create(
            model=OPENAI_MODEL,
            instructions=TOOL_SYSTEM,
            input=PROMPT,
            stream=True,
            tools=[RESPONSES_TOOL],
            tool_choice="required",
        )
        turn = run_turn(stream, sync_session, timeout=300)
    finally:
        client.close()
    assert turn.ok, turn.text
    assert expected() in turn.data["stdout"]
    assert turn.openai_responses_items()


@needs_anthropic
def test_anthropic_fenced_code(sync_session: SyncSession) -> None:
    import anthropic

    client = anthropic.Anthropic(timeout=120)
    try:
        stream = client.messages.create(
            model=ANTHROPIC_MODEL,
            max_tokens=2048,
            system=SYSTEM,
            stream=True,
            messages=[{"role": "user", "content": PROMPT}],
        )
        turn = run_turn(stream, sync_session, timeout=300)
    finally:
        client.close()
    assert turn.ok, turn.text
    assert expected() in turn.data["stdout"]


@needs_anthropic
def test_anthropic_tool_use(sync_session: SyncSession) -> None:
    import anthropic

    client = anthropic.Anthropic(timeout=120)
    try:
        stream = client.messages.create(
            model=ANTHROPIC_MODEL,
            max_tokens=2048,
            system=TOOL_SYSTEM,
            stream=True,
            messages=[{"role": "user", "content": PROMPT}],
            tools=[ANTHROPIC_TOOL],
            tool_choice={"type": "tool", "name": "python"},
        )
        turn = run_turn(stream, sync_session, timeout=300, fences=False)
    finally:
        client.close()
    assert turn.ok, turn.text
    assert expected() in turn.data["stdout"]
    assert turn.anthropic_content()
