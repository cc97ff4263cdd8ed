"""Token sources: where the text pieces the runtime consumes come from.

* :func:`replay` streams a finished program at a fixed rate (benchmarks, CLI);
* :mod:`~eager_rt.sources.openai` and :mod:`~eager_rt.sources.anthropic` adapt
  the official SDKs' streams (text in markdown fences, or a tool call's JSON
  argument), closing the provider stream when the runtime stops early;
* :mod:`~eager_rt.sources.fences` and :mod:`~eager_rt.sources.tool_json` are the
  incremental extractors those adapters are built on.

None of these imports a provider SDK.
"""

from eager_rt.sources.anthropic import amessages, messages
from eager_rt.sources.llm import ModelStreamError, model_source
from eager_rt.sources.openai import achat_completions, aresponses, chat_completions, responses
from eager_rt.sources.replay import replay

__all__ = [
    "ModelStreamError",
    "achat_completions",
    "amessages",
    "aresponses",
    "chat_completions",
    "messages",
    "model_source",
    "replay",
    "responses",
]
