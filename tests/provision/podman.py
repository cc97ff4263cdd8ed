"""The Podman backend on rootful Podman, with the image ``scripts/setup-podman.sh`` loads.

Skips (or fails, with ``EAGER_RT_REQUIRE_PODMAN=1`` as in CI) when podman is
not installed, cannot answer, or the image ``eager-rt-python:local`` is not in
its store.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator

import pytest

from eager_rt.executor import Backend
from eager_rt.registry import get_backend

from . import unavailable

BACKEND = "podman"
VARIANTS = {"podman": "podman_backend"}

REQUIRE_VAR = "EAGER_RT_REQUIRE_PODMAN"
TEST_IMAGE = "eager-rt-python:local"
SETUP_HINT = "run scripts/setup-docker.sh, then scripts/setup-podman.sh, as root"

_checked: list[str | None] = []  # the verdict, once per test run


def podman_problem() -> str | None:
    """Why Podman tests cannot run here, or None when they can (checked once)."""
    if not _checked:
        _checked.append(_find_problem())
    return _checked[0]


def _podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=60, check=False
    )


def _find_problem() -> str | None:
    if shutil.which("podman") is None:
        return f"podman is not installed; {SETUP_HINT}"
    try:
        info = _podman("info", "--format", "{{.Host.OCIRuntime.Name}}")
        if info.returncode != 0:
            return f"podman does not work: {info.stderr.strip()[-300:]}; {SETUP_HINT}"
        if _podman("image", "exists", TEST_IMAGE).returncode != 0:
            return f"the image {TEST_IMAGE} is missing from Podman's store; {SETUP_HINT}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"podman does not answer: {exc!r}"
    return None


def require_podman() -> None:
    problem = podman_problem()
    if problem is not None:
        unavailable("Podman", problem, REQUIRE_VAR)


@pytest.fixture
async def podman_backend() -> AsyncIterator[Backend]:
    require_podman()
    backend = get_backend("podman")(image=TEST_IMAGE)
    try:
        yield backend
    finally:
        await backend.aclose()
