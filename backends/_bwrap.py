"""The local backend's sandbox: the worker argv wrapped in bubblewrap (``bwrap``).

No container engine and no image: the host's own file system, seen read-only,
with the worker's interpreter where it is on the host. What the sandbox adds
to a plain local worker (docs/isolation.md has the whole table):

* its own pid namespace (``--unshare-pid``): the host and every other process
  are invisible and out of reach of signals; the worker's parent is the
  namespace's init, and when bwrap dies (``--die-with-parent``, and the
  parent-death signal the launch arms) the kernel ends every process inside;
* no network (``--unshare-net``: only a loopback of its own), no shared IPC,
  its own host name and cgroup view;
* the root file system read-only: each top-level entry of the host is bound
  read-only into a fresh root, except ``/tmp``, ``/dev``, ``/proc`` (fresh
  ones) and ``/run`` (empty: it holds the sockets of the host's daemons, and
  a UNIX socket on a read-only mount still accepts connections); common
  credential stores under the host's ``HOME`` and ``/etc/shadow`` are hidden;
* writable: a private working directory (``workdir``, also ``HOME``) and
  ``/tmp``, both size-capped tmpfs, fresh at every (re)start; with ``cwd``,
  that host directory is copied into the working directory at each start;
* no capabilities (``--cap-drop ALL``), a new terminal session (no TIOCSTI).

Memory and process limits are the launch's cgroup (:mod:`._cgroup`), which
bwrap joins before it forks anything.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from eager_rt.backends._environment import host_mpl_cache

__all__ = ["DEFAULT_HIDE", "Sandbox", "bwrap_path", "sandbox_problem"]

#: hidden from the code when they exist (relative: under the host's ``HOME``)
DEFAULT_HIDE: tuple[str, ...] = (
    ".ssh",
    ".aws",
    ".azure",
    ".config",
    ".docker",
    ".gnupg",
    ".kube",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    "/etc/shadow",
    "/etc/gshadow",
)
_FRESH = {"proc", "dev", "tmp", "run"}  # top-level entries the sandbox makes its own
_CWD_MOUNT = "/run/eager_rt/cwd"  # where ``cwd`` is bound read-only, to be copied
_MPL_CACHE = "/tmp/matplotlib"  # MPLCONFIGDIR inside: the host's font cache, read-only


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def sandbox_problem() -> str | None:
    """Why a sandbox cannot start here, or None."""
    if bwrap_path() is None:
        return "bubblewrap (bwrap) is not installed; run scripts/setup-bwrap.sh"
    return None


@dataclass(frozen=True, slots=True)
class Sandbox:
    """How one sandboxed worker is laid out; :meth:`argv` wraps the worker's command."""

    workdir: str = "/sandbox"  #: a tmpfs, the working directory and ``HOME``
    workdir_size: int = 512 * 1024**2
    tmp_size: int = 256 * 1024**2
    network: bool = False  #: True keeps the host's network (not isolated)
    hide: Sequence[str] = DEFAULT_HIDE  #: host paths replaced by empty ones

    def __post_init__(self) -> None:
        parts = self.workdir.strip("/").split("/")
        if not self.workdir.startswith("/") or len(parts) != 1 or parts[0] in _FRESH | {""}:
            raise ValueError(
                f"workdir must be a top-level directory such as /sandbox, not {self.workdir!r}"
            )
        if self.workdir_size <= 0 or self.tmp_size <= 0:
            raise ValueError("workdir_size and tmp_size must be positive numbers of bytes")
        object.__setattr__(self, "hide", tuple(self.hide))

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """The worker's variables inside: ``HOME`` is the working directory."""
        inside = {**env, "HOME": self.workdir, "TMPDIR": "/tmp"}
        if host_mpl_cache() is not None:
            inside["MPLCONFIGDIR"] = _MPL_CACHE  # the host's font list is bound there
        return inside

    def argv(
        self,
        command: Sequence[str],
        *,
        copy_from: str | None = None,
        info_fd: int | None = None,
    ) -> list[str]:
        """``bwrap ... command``: the worker's argv, sandboxed.

        ``info_fd``: bwrap writes the host pid of the namespace's init there (JSON).
        """
        bwrap = bwrap_path()
        if bwrap is None:
            raise FileNotFoundError("bwrap is not installed; run scripts/setup-bwrap.sh")
        top = self.workdir.strip("/")
        args = [bwrap]
        for name in sorted(os.listdir("/")):
            if name in _FRESH or name == top:
                continue
            path = "/" + name
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            else:
                args += ["--ro-bind", path, path]
        args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/run"]
        args += ["--size", str(self.tmp_size), "--tmpfs", "/tmp"]
        args += ["--size", str(self.workdir_size), "--tmpfs", self.workdir]
        args += self._hidden()
        args += self._interpreter_binds(command[0])
        cache = host_mpl_cache()
        if cache is not None:
            for name in sorted(os.listdir(cache)) if os.path.isdir(cache) else []:
                if name.startswith("fontlist-") and name.endswith(".json"):
                    args += ["--ro-bind-try", os.path.join(cache, name), f"{_MPL_CACHE}/{name}"]
        if copy_from is not None:
            args += ["--ro-bind", copy_from, _CWD_MOUNT]
        # the fresh root (a tmpfs of bwrap's) and /run read-only too; not recursive, so
        # the binds keep their own flags and /tmp, the work dir and /dev stay writable
        args += ["--remount-ro", "/run", "--remount-ro", "/"]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        args += [] if self.network else ["--unshare-net"]
        args += ["--hostname", "sandbox", "--cap-drop", "ALL"]
        args += [] if info_fd is None else ["--info-fd", str(info_fd)]
        args += ["--die-with-parent", "--new-session", "--chdir", self.workdir, "--"]
        if copy_from is not None:
            # cp, not the worker: the copy is done before the interpreter exists
            copy = f'cp -a {_CWD_MOUNT}/. . && exec "$@"'
            return [*args, "/bin/sh", "-c", copy, "sh", *command]
        return [*args, *command]

    def _hidden(self) -> list[str]:
        home = os.path.expanduser("~")
        args: list[str] = []
        for entry in self.hide:
            path = entry if entry.startswith("/") else os.path.join(home, entry)
            if os.path.islink(path) or not os.path.exists(path):
                continue
            if os.path.isdir(path):
                args += ["--tmpfs", path]
            else:
                args += ["--ro-bind", "/dev/null", path]
        return args

    def _interpreter_binds(self, python: str) -> list[str]:
        """An interpreter (or virtualenv) under ``/tmp`` is bound where it is, read-only."""
        found = shutil.which(python) or python
        args: list[str] = []
        for path in {os.path.abspath(found), os.path.realpath(found)}:
            if path.startswith("/tmp/"):
                root = os.path.dirname(os.path.dirname(path))  # <prefix>/bin/python
                args += ["--ro-bind", root, root]
        return args
