"""Cgroups for the local backend's whole-tree limits (no backend variant of its own).

Tests of what only a cgroup gives (a memory limit for the whole process tree,
a task limit, a kill that reaches ``setsid`` descendants) call
:func:`require_cgroup`: it skips, or fails with ``EAGER_RT_REQUIRE_CGROUP=1``
as in CI, where this process may not make cgroups (an unprivileged user
without a delegated cgroup v2 subtree).
"""

from __future__ import annotations

from eager_rt.backends import _cgroup

from . import unavailable

BACKEND = "local"
VARIANTS: dict[str, str] = {}

REQUIRE_VAR = "EAGER_RT_REQUIRE_CGROUP"


def require_cgroup() -> None:
    reason = _cgroup.unavailable_reason()
    if reason is not None:
        unavailable("cgroups", reason, REQUIRE_VAR)
