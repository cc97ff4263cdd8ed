"""eager_rt: run LLM-generated Python while the model is still writing it.

The pipeline: a token stream (``eager_rt.sources``) feeds the :class:`Chunker`,
which cuts it into complete top-level statements; the runtime
(:func:`arun_stream` / :func:`run_stream`) runs them in a persistent
:class:`~eager_rt.executor.Session` from a backend (``eager_rt.backends``)
while later tokens are still arriving; a :class:`BatchPolicy` decides how
statements are batched. :mod:`eager_rt.testing` runs all of it without a
sandbox, on a virtual clock.

Names are loaded on first use so that ``import eager_rt`` stays cheap and
optional SDKs are never imported unless asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "NATIVE": "eager_rt.scanner",
    "Chunker": "eager_rt.chunker",
    "Chunk": "eager_rt.chunk",
    "SyntaxErrorInfo": "eager_rt.chunk",
    "Backend": "eager_rt.executor",
    "Session": "eager_rt.executor",
    "ExecResult": "eager_rt.executor",
    "Output": "eager_rt.executor",
    "ErrorInfo": "eager_rt.executor",
    "Status": "eager_rt.executor",
    "BackendError": "eager_rt.executor",
    "SessionDead": "eager_rt.executor",
    "get_backend": "eager_rt.registry",
    "open_backend": "eager_rt.registry",
    "available_backends": "eager_rt.registry",
    "SyncSession": "eager_rt.sync",
    "arun_stream": "eager_rt.runtime",
    "run_stream": "eager_rt.runtime",
    "astream_events": "eager_rt.runtime",
    "BatchPolicy": "eager_rt.policy",
    "DefaultPolicy": "eager_rt.policy",
    "RunResult": "eager_rt.result",
    "replay": "eager_rt.sources.replay",
    "tool": "eager_rt.tools",
    "Tool": "eager_rt.tools",
    "ToolCall": "eager_rt.tools",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eager_rt' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext eager_rt``: the ``%%eager`` cell magic (:mod:`eager_rt.ipython`)."""
    importlib.import_module("eager_rt.ipython").load_ipython_extension(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    importlib.import_module("eager_rt.ipython").unload_ipython_extension(ipython)
