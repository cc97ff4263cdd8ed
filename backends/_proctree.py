"""A worker's process tree without cgroups: tie it to its host, find it, kill it.

* :func:`prepare_child` runs in the child between fork and exec: the kernel
  sends it SIGKILL when its parent (the thread that forked it) dies
  (``PR_SET_PDEATHSIG``), so a host killed with SIGKILL leaves no worker
  behind; optionally it becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``,
  kept across exec), so orphans of its descendants (a double fork, a
  ``setsid`` daemon) are re-parented to it instead of to init and stay
  findable by parent links.
* :func:`kill_tree` is the fallback kill where no cgroup holds the tree:
  stop every descendant found through ``/proc`` (so none forks meanwhile),
  then SIGKILL them, the root and the root's process group, until no
  descendant is left. A process that left the tree before the root became
  its subreaper, or after the root died, is out of reach: only a cgroup or a
  pid namespace holds everything (docs/isolation.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import time
from collections.abc import Callable

__all__ = ["alive", "descendants", "kill_tree", "prepare_child"]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36

_prctl: Callable[[int, int, int, int, int], int] | None = None  # Linux only
if sys.platform == "linux":
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    _libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    _libc.prctl.restype = ctypes.c_int
    _prctl = _libc.prctl


def prepare_child(*, subreaper: bool, parent: int) -> None:
    """In the child, before exec: die with the parent; optionally adopt orphans.

    ``parent`` is the host's pid read before the fork: if the host died before
    the death signal was armed, the child ends itself now. Elsewhere than on
    Linux there is no such signal: nothing is armed.
    """
    if _prctl is None:
        return
    if _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os._exit(1)
    if subreaper and _prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (of any user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parents() -> dict[int, int]:
    """pid -> parent pid of every running (non-zombie) process."""
    table: dict[int, int] = {}
    if not os.path.isdir("/proc"):
        return table  # no procfs (not Linux): only the process group kill is left
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                # after the command name (in parentheses, may hold anything): state, ppid
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != b"Z":
            table[int(name)] = int(fields[1])
    return table


def descendants(root: int) -> list[int]:
    """Every running descendant of ``root`` (not ``root`` itself), parents before children."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    found, queue = [], list(children.get(root, []))
    while queue:
        pid = queue.pop(0)
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


async def kill_tree(root: int, within: float = 10.0) -> bool:
    """SIGKILL ``root``, its process group and all its descendants; True once none is left."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = descendants(root)  # the root lives on meanwhile: orphans come to it
        if not found:
            break
        _signal_all(found, signal.SIGSTOP)  # none of them forks while we look again
        _signal_all(descendants(root), signal.SIGKILL)
        await asyncio.sleep(0.002)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(root, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(root, signal.SIGKILL)
    return not descendants(root)
