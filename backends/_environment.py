"""The local worker's environment: the minimum to run Python, not the host's secrets.

A host process's environment holds API keys (``OPENAI_API_KEY``), tokens and
proxy credentials; generated code must not read them. So the worker starts
with :data:`BASE_INHERIT` only (what running an interpreter needs: ``PATH``,
the locale, ``PYTHON*``, the dynamic loader's path, CA bundles), plus the
host variables named by ``inherit_env`` (names or ``fnmatch`` patterns:
``["*"]`` is the whole host environment), plus ``env``. ``HOME`` is a private
directory unless ``inherit_env`` or ``env`` gives it.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping

__all__ = ["BASE_INHERIT", "host_mpl_cache", "worker_environment"]

#: host variables every worker gets (patterns): enough to run an interpreter as the host does
BASE_INHERIT: tuple[str, ...] = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "PYTHON*",
    "LD_LIBRARY_PATH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "TMPDIR",
)
#: never inherited through a pattern (only an exact name in ``inherit_env`` or ``env`` sets it):
#: a notebook's inline backend breaks a headless worker, which uses Agg
_NOT_BY_PATTERN = frozenset({"MPLBACKEND"})


def _matches(name: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern == name:
            return True
        if name not in _NOT_BY_PATTERN and fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def worker_environment(
    host: Mapping[str, str],
    *,
    inherit: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    home: str | None = None,
) -> dict[str, str]:
    """The worker's whole environment; ``home`` is used unless ``HOME`` came through."""
    patterns = (*BASE_INHERIT, *inherit)
    result = {k: v for k, v in host.items() if _matches(k, patterns)}
    result.update(env or {})
    if home is not None and "HOME" not in result:
        result["HOME"] = home
    cache = host_mpl_cache(host)
    if cache is not None and "MPLCONFIGDIR" not in result:
        result["MPLCONFIGDIR"] = cache  # the host's font list: no rebuild at every start
    return result


def host_mpl_cache(host: Mapping[str, str] | None = None) -> str | None:
    """The host's matplotlib cache directory (its font list), if there is one."""
    host = os.environ if host is None else host
    if host.get("MPLCONFIGDIR"):
        return host["MPLCONFIGDIR"]
    base = host.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "matplotlib")
    return path if os.path.isdir(path) else None
