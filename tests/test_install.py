"""The install itself: entry points, the native scanner, the pure override."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import eager_rt
from eager_rt.executor import Backend
from eager_rt.registry import BackendNotFound, available_backends, get_backend
from tests.provision import unavailable


def test_every_documented_backend_is_registered() -> None:
    assert {"local", "docker", "jupyter", "e2b"} <= set(available_backends())
    assert issubclass(get_backend("local"), Backend)


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(BackendNotFound, match="no backend named 'nope'"):
        get_backend("nope")


def test_every_registered_backend_is_provisioned_for_the_conformance_suite() -> None:
    from tests.conftest import PROVISIONED_BACKENDS

    assert set(available_backends()) <= PROVISIONED_BACKENDS


def test_native_scanner_is_active_when_built() -> None:
    from eager_rt.scanner import native_scanner

    if native_scanner() is None:
        unavailable(
            "The native scanner", "eager_rt._native is not built", "EAGER_RT_REQUIRE_NATIVE"
        )
    assert eager_rt.NATIVE is (os.environ.get("EAGER_RT_PURE") != "1")


def test_pure_override_at_import() -> None:
    code = "import eager_rt; print(eager_rt.NATIVE)"
    env = {**os.environ, "EAGER_RT_PURE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_import_is_cheap_and_lazy() -> None:
    code = (
        "import sys, eager_rt\n"
        "heavy = [m for m in ('docker', 'jupyter_client', 'e2b_code_interpreter', 'openai',"
        " 'anthropic', 'matplotlib') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
