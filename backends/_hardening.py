"""The hardened defaults of the container backends, written once.

Docker (:mod:`eager_rt.backends.docker`) and Podman
(:mod:`eager_rt.backends.podman`) run the worker in a container with the same
options under the same names; each turns a :class:`Hardening` into its own
form (an engine API host config, ``podman run`` flags). Generated code is
untrusted, so every default is the strict one and each can be relaxed per
backend or per session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Hardening"]


@dataclass(frozen=True, slots=True)
class Hardening:
    """No network, a read-only root, an unprivileged user, no capabilities, limits."""

    workdir: str = "/work"  #: a tmpfs, the working directory and ``HOME``
    workdir_size: str = "512m"
    tmp_size: str = "256m"  #: ``/tmp``, a tmpfs too
    user: str | None = "65534:65534"  #: "nobody"; None keeps the image's user
    network_mode: str = "none"
    read_only: bool = True  #: the root file system; only the two tmpfs are writable
    cap_drop: Sequence[str] = ("ALL",)
    no_new_privileges: bool = True
    mem_limit: str | int | None = "1g"  #: swap is set to the same: no swap
    pids_limit: int | None = 256
    cpus: float | None = 1.0

    def __post_init__(self) -> None:
        if self.cpus is not None and self.cpus <= 0:
            raise ValueError("cpus must be > 0")
        if self.pids_limit is not None and self.pids_limit <= 0:
            raise ValueError("pids_limit must be > 0")
        object.__setattr__(self, "cap_drop", tuple(self.cap_drop))

    def environment(self, env: Mapping[str, str] | None) -> dict[str, str]:
        """The worker's environment: what a headless, read-only container needs, then ``env``."""
        return {
            "HOME": self.workdir,
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": "/tmp/matplotlib",
            "PYTHONDONTWRITEBYTECODE": "1",
            **(env or {}),
        }
