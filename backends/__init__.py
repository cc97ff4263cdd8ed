"""Interchangeable executors behind :mod:`eager_rt.executor` (installed as ``eager_rt.backends``).

One module per backend; each implements ``Backend``/``Session`` and nothing
else. Heavy SDKs are imported inside the module that needs them, so importing
this package costs nothing.

The parts a new backend is built from are public here: the worker seam
(:class:`WorkerProcess`, :class:`SubprocessWorker`), the protocol client that
runs on it (:class:`WorkerSession`) and the recovery policy every backend
applies (:class:`RecoveryPolicy`, :class:`Supervisor`). ``docs/contributing.md``
shows how they fit.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "WorkerProcess": "eager_rt.backends._process",
    "SubprocessWorker": "eager_rt.backends._process",
    "WorkerSession": "eager_rt.backends._framed",
    "RecoveryPolicy": "eager_rt.backends._recovery",
    "Supervisor": "eager_rt.backends._recovery",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eager_rt.backends' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
