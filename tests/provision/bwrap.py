"""The local backend sandboxed by bubblewrap (``isolation="bwrap"``).

Skips (or fails, with ``EAGER_RT_REQUIRE_BWRAP=1`` as in CI) when ``bwrap``
is not installed or cannot start a sandbox here (no user namespaces for an
unprivileged user, a seccomp policy that forbids ``unshare``).
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator

import pytest
from eager_rt.backends._bwrap import bwrap_path

from eager_rt.executor import Backend
from eager_rt.registry import get_backend

from . import unavailable

BACKEND = "local"
VARIANTS = {"local-bwrap": "bwrap_backend"}

REQUIRE_VAR = "EAGER_RT_REQUIRE_BWRAP"
SETUP_HINT = "run scripts/setup-bwrap.sh (as root, to install Debian's bubblewrap)"

_checked: list[str | None] = []  # the verdict, once per test run


def bwrap_problem() -> str | None:
    """Why sandboxes cannot start here, or None when they can (checked once)."""
    if not _checked:
        _checked.append(_find_problem())
    return _checked[0]


def _find_problem() -> str | None:
    bwrap = bwrap_path()
    if bwrap is None:
        return f"bwrap is not installed; {SETUP_HINT}"
    probe = [bwrap, "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap does not run: {exc!r}"
    if done.returncode != 0:
        return f"bwrap cannot make namespaces here: {done.stderr.strip()[-300:]}"
    return None


def require_bwrap() -> None:
    problem = bwrap_problem()
    if problem is not None:
        unavailable("bubblewrap", problem, REQUIRE_VAR)


@pytest.fixture
async def bwrap_backend() -> AsyncIterator[Backend]:
    require_bwrap()
    backend = get_backend("local")(isolation="bwrap")
    try:
        yield backend
    finally:
        await backend.aclose()
