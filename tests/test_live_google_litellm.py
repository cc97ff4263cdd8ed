"""The Google and LiteLLM adapters against the real services; each runs only when its key is set.

Models can be changed with ``EAGER_GEMINI_MODEL`` and ``EAGER_LITELLM_MODEL``
(a LiteLLM ``provider/model``; its provider's own key variable must be set).
The prompt is the one of ``test_live_providers``: a number the model cannot
guess without running code.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from eager_rt.agent import run_turn
from eager_rt.sync import SyncSession
from tests.test_live_providers import PROMPT, SYSTEM, TOOL_SCHEMA, TOOL_SYSTEM, expected

pytestmark = pytest.mark.live

GEMINI_KEY = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
GEMINI_MODEL = os.environ.get("EAGER_GEMINI_MODEL", "gemini-2.5-flash")
LITELLM_MODEL = os.environ.get("EAGER_LITELLM_MODEL")

needs_gemini = pytest.mark.skipif(not GEMINI_KEY, reason="GEMINI_API_KEY is not set")
needs_litellm = pytest.mark.skipif(not LITELLM_MODEL, reason="EAGER_LITELLM_MODEL is not set")


@needs_gemini
@pytest.mark.parametrize("form", ["fences", "tool"])
def test_gemini(form: str, sync_session: SyncSession) -> None:
    from google import genai
    from google.genai import types

    from eager_rt.sources.google import generate_content_stream

    tools: list[Any] | None = None
    if form == "tool":
        tools = [types.Tool(function_declarations=[types.FunctionDeclaration(
            name="python", description="Run Python code.", parameters_json_schema=TOOL_SCHEMA)])]
    config = types.GenerateContentConfig(
        system_instruction=TOOL_SYSTEM if form == "tool" else SYSTEM, tools=tools,
        max_output_tokens=4096,
    )
    client = genai.Client(api_key=GEMINI_KEY,
                          http_options=types.HttpOptions(timeout=120_000))
    try:
        stream = client.models.generate_content_stream(
            model=GEMINI_MODEL, contents=PROMPT, config=config)
        turn = run_turn(generate_content_stream(stream), sync_session, timeout=300)
    finally:
        client.close()
    assert turn.ok, turn.text
    assert expected() in turn.data["stdout"]


@needs_litellm
def test_litellm(sync_session: SyncSession) -> None:
    import litellm

    from eager_rt.sources.litellm import completion

    stream = litellm.completion(
        model=LITELLM_MODEL, stream=True, max_tokens=4096, timeout=120,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}],
    )
    turn = run_turn(completion(stream), sync_session, timeout=300)
    assert turn.ok, turn.text
    assert expected() in turn.data["stdout"]
