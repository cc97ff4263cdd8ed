"""Token sources: where the text pieces the runtime consumes come from.

* :func:`replay` streams a finished program at a fixed rate (benchmarks, CLI);
* :mod:`~eager_rt.sources.openai`, :mod:`~eager_rt.sources.anthropic` and
  :mod:`~eager_rt.sources.google` adapt the official SDKs' streams (text in
  markdown fences, or a tool call's JSON argument), closing the provider
  stream when the runtime stops early; :mod:`~eager_rt.sources.litellm` does
  the same for every provider LiteLLM speaks to;
* :mod:`~eager_rt.sources.fences` and :mod:`~eager_rt.sources.tool_json` are the
  incremental extractors those adapters are built on.

None of these imports a provider SDK.
"""

from __future__ import annotations

import importlib
from typing import Any

# bound eagerly: a lazy name would be shadowed by the submodule of the same name
from eager_rt.sources.replay import replay as replay

_EXPORTS = {
    "ModelStreamError": "eager_rt.sources.llm",
    "model_source": "eager_rt.sources.llm",
    "messages": "eager_rt.sources.anthropic",
    "amessages": "eager_rt.sources.anthropic",
    "chat_completions": "eager_rt.sources.openai",
    "achat_completions": "eager_rt.sources.openai",
    "responses": "eager_rt.sources.openai",
    "aresponses": "eager_rt.sources.openai",
    "generate_content_stream": "eager_rt.sources.google",
    "agenerate_content_stream": "eager_rt.sources.google",
    "completion": "eager_rt.sources.litellm",
    "acompletion": "eager_rt.sources.litellm",
}

__all__ = sorted([*_EXPORTS, "replay"])


def __getattr__(name: str) -> Any:
    # loaded on first use: the runtime imports this package (for BOUNDARY) and
    # must not pay for the provider adapters it does not use
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eager_rt.sources' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
