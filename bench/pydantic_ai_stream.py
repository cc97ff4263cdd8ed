"""A pydantic-ai ``FunctionModel`` that streams code as a ``run_code`` call, on a replay's schedule.

Used by the benchmarks that put pydantic-ai agents beside eager_rt
(``test_bench_framework_pydantic_ai.py``, and the harness rows of
``test_bench_tools.py``): the model's stream function reads the tool results
so far (:func:`tool_returns`), then streams the next answer's pieces
(:func:`run_code_call`); :func:`run_agent` runs one agent with the tool
corpus's services over such a model. Imported only where pydantic-ai is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart
from pydantic_ai.models.function import DeltaToolCall, FunctionModel, StreamFunctionDef

from bench.framework import code_arguments
from bench.tools_corpus import TOOL_FUNCTIONS
from eager_rt.sources.replay import Replay

__all__ = ["run_agent", "run_code_call", "tool_returns"]


def tool_returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    """Every tool result the model has been sent so far, in order."""
    return [
        p
        for m in messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, ToolReturnPart)
    ]


async def run_code_call(
    source: Replay, t0: float, call_id: str
) -> AsyncIterator[dict[int, DeltaToolCall]]:
    """``source`` as the ``code`` argument of one ``run_code`` call, piece ``i`` due at
    ``t0 + ttft + i / tps`` (``time.monotonic``); the closing fragment follows the last."""
    opening, *pieces, closing = code_arguments(source.pieces)
    yield {0: DeltaToolCall(name="run_code", json_args=opening, tool_call_id=call_id)}
    for i, piece in enumerate(pieces):
        delay = t0 + source.ttft + i / source.tps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield {0: DeltaToolCall(json_args=piece)}
    yield {0: DeltaToolCall(json_args=closing)}


async def _drain(ctx: Any, events: AsyncIterable[Any]) -> None:
    async for _ in events:
        pass


async def run_agent(stream: StreamFunctionDef, capability: Any, timeout: float) -> None:
    """One run of an agent on ``stream``, the corpus services as its tools, ``capability`` on."""
    agent = Agent(
        FunctionModel(stream_function=stream),
        tools=list(TOOL_FUNCTIONS.values()),
        capabilities=[capability],
    )
    await asyncio.wait_for(agent.run("go", event_stream_handler=_drain), timeout)
