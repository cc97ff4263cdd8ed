"""Find backends by name through the ``eager_rt.backends`` entry-point group.

Third parties add a backend by declaring, in their own package metadata::

    [project.entry-points."eager_rt.backends"]
    mine = "my_pkg.module:MyBackend"

Nothing here imports a backend until it is asked for, so heavy SDKs stay
optional.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from eager_rt.executor import Backend

__all__ = ["BackendNotFound", "available_backends", "get_backend", "open_backend"]

GROUP = "eager_rt.backends"
DEFAULT_BACKEND = "local"


class BackendNotFound(LookupError):
    """No backend of that name, or its optional dependency is not installed."""


def available_backends() -> list[str]:
    """Names of every registered backend, installed or not importable alike."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def get_backend(name: str = DEFAULT_BACKEND) -> type[Backend]:
    """The backend class registered under ``name``."""
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not matches:
        raise BackendNotFound(
            f"no backend named {name!r}; registered: {', '.join(available_backends()) or 'none'}"
        )
    try:
        cls = matches[0].load()
    except ImportError as exc:
        raise BackendNotFound(
            f"backend {name!r} needs an optional dependency that is not installed: {exc}. "
            f"Install it with: pip install 'eager_rt[{name}]'"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise BackendNotFound(f"entry point {name!r} does not name a Backend subclass: {cls!r}")
    return cls


def open_backend(name: str = DEFAULT_BACKEND, **options: Any) -> Backend:
    """Instantiate the backend ``name`` with its options."""
    return get_backend(name)(**options)
