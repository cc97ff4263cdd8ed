"""Per-backend test infrastructure for the conformance suite.

Each module here provisions one registered backend for the tests and declares:

* ``BACKEND``: the entry-point name it covers (``"docker"``);
* ``VARIANTS``: variant name -> name of a pytest fixture (defined in the same
  module) that yields a ready :class:`eager_rt.executor.Backend`; a backend can
  be tested in several configurations (``"jupyter"`` and ``"jupyter-remote"``).

``tests/conftest.py`` loads every module here as a pytest plugin and runs the
conformance suite once per variant. A backend that needs something this
machine lacks skips with the reason, unless its ``EAGER_RT_REQUIRE_*`` variable
is set (CI sets them), in which case it fails.
"""

from __future__ import annotations

import os

import pytest


def unavailable(what: str, reason: str, require_var: str) -> None:
    """Skip (on a developer's machine) or fail (in CI) when a backend's infrastructure is gone."""
    if os.environ.get(require_var) == "1":
        pytest.fail(f"{what} is required ({require_var}=1) but unavailable: {reason}")
    pytest.skip(f"{what} unavailable: {reason} (set {require_var}=1 to make this a failure)")
