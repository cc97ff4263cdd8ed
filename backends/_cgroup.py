"""A cgroup per worker launch: tree-wide memory and process limits, and a kill that misses nothing.

The local backend's limits must hold for everything the code starts, not
only for the worker process: three forked children of 400 MiB each are 1.2
GiB however small each process's own limit is, and a ``setsid`` child leaves
the worker's process group. A cgroup holds the whole tree whatever it does
with sessions, groups or double forks, so its memory and pids limits count
the tree, and freezing it before the kill stops a fork bomb from outrunning
the kill.

Both hierarchies are served: cgroup v2 (``memory.max``, ``pids.max``,
``cgroup.kill``) where this process may create a child group with the
memory and pids controllers, else v1 with separate ``memory``, ``pids`` and
``freezer`` hierarchies (``memory.limit_in_bytes``, ``pids.max``,
``freezer.state``). :func:`create` returns None where neither is writable
(an unprivileged process without a delegated subtree); the caller then falls
back to per-process limits and a process scan (:mod:`._proctree`).

A child joins its groups from the host right after the spawn
(:meth:`CgroupTree.adopt`), before it can start anything (the worker waits
for the host's first frame), so the migration's cost (an RCU grace period)
overlaps the interpreter's own start-up.
Groups are named ``eager_rt.<host pid>.<n>``; groups of hosts that died are
removed by the next :func:`create` of any host.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from eager_rt.backends._proctree import alive

__all__ = ["CgroupTree", "create", "unavailable_reason"]

ROOT = Path("/sys/fs/cgroup")
_PREFIX = "eager_rt."
_V1_CONTROLLERS = ("memory", "pids", "freezer")
_counter = itertools.count()
_checked: dict[str, str | None] = {}  # "reason" -> why cgroups cannot be used, once


@dataclass
class CgroupTree:
    """The groups of one worker launch; ``version`` is 1 or 2."""

    version: int
    dirs: dict[str, Path]  #: controller (v1) or "unified" (v2) -> the group's directory
    memory_limit: int | None
    pids_limit: int | None
    _procs_files: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._procs_files = [os.fsencode(d / "cgroup.procs") for d in self.dirs.values()]

    @property
    def kind(self) -> str:
        """``"cgroup v1"`` or ``"cgroup v2"``, for result details."""
        return f"cgroup v{self.version}"

    @property
    def description(self) -> str:
        """What enforces the limits, for ``LocalSession.enforcement``."""
        return f"{self.kind} (the whole process tree)"

    def attach(self, *pids: int) -> None:
        """Move processes (not their existing children) into every group, from outside.

        A process that has already ended is left alone: its death is reported
        through its channel.
        """
        for pid in pids:
            for path in self._procs_files:
                try:
                    with open(path, "wb", buffering=0) as f:
                        f.write(str(pid).encode())
                except ProcessLookupError:
                    break

    async def adopt(self, *pids: int) -> None:
        """:meth:`attach` in a thread of its own, which ends with it.

        A migration waits for the kernel's RCU grace period (milliseconds, more
        on a loaded machine): the event loop goes on meanwhile, and the child's
        own start-up overlaps it.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if done.done():
                return
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        def run() -> None:
            try:
                self.attach(*pids)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                loop.call_soon_threadsafe(settle, exc)
            else:
                loop.call_soon_threadsafe(settle, None)

        threading.Thread(target=run, name="eager_rt-cgroup-attach", daemon=True).start()
        await done

    def pids(self) -> list[int]:
        """The processes in the tree now."""
        found: set[int] = set()
        for d in self.dirs.values():
            with contextlib.suppress(OSError, ValueError):
                found.update(int(x) for x in (d / "cgroup.procs").read_text().split())
        return sorted(found)

    def oom_kills(self) -> int:
        """How many processes of the tree the kernel's OOM killer has ended."""
        if self.version == 2:
            name = "memory.events"
            d = self.dirs["unified"]
        else:
            name = "memory.oom_control"
            d = self.dirs["memory"]
        try:
            fields = dict(line.split() for line in (d / name).read_text().splitlines())
            return int(fields.get("oom_kill", 0))
        except (OSError, ValueError):
            return 0

    async def kill(self, within: float = 10.0) -> bool:
        """SIGKILL every process in the tree, frozen first so none can fork meanwhile.

        True once the tree is empty (within ``within`` seconds).
        """
        deadline = time.monotonic() + within
        while True:
            if self.version == 2:
                await self._kill_v2()
            else:
                await self._kill_v1(deadline)
            if not self.pids():
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)

    async def _kill_v2(self) -> None:
        d = self.dirs["unified"]
        if _write(d / "cgroup.kill", "1"):
            return
        _write(d / "cgroup.freeze", "1")  # before 5.14: freeze, kill each, thaw
        _kill_each(self.pids())
        _write(d / "cgroup.freeze", "0")

    async def _kill_v1(self, deadline: float) -> None:
        freezer = self.dirs["freezer"] / "freezer.state"
        _write(freezer, "FROZEN")
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if freezer.read_text().strip() == "FROZEN":
                    break
            await asyncio.sleep(0.001)
        _kill_each(self.pids())
        _write(freezer, "THAWED")  # frozen tasks die only once thawed

    def remove(self) -> None:
        """Remove the (empty) groups; never raises."""
        for d in self.dirs.values():
            with contextlib.suppress(OSError):
                d.rmdir()


def _write(path: Path, text: str) -> bool:
    try:
        path.write_text(text)
    except OSError:
        return False
    return True


def _kill_each(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _own_paths() -> dict[str, str]:
    """This process's group per v1 controller, and ``""`` -> its v2 group."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _v2_base(own: dict[str, str]) -> Path | None:
    """A v2 directory where this process may make child groups with memory and pids."""
    if not (ROOT / "cgroup.controllers").exists() or "" not in own:
        return None
    base = ROOT / own[""].lstrip("/")
    needed = {"memory", "pids"}
    try:
        enabled = set((base / "cgroup.subtree_control").read_text().split())
        if not needed <= enabled:
            # fails (EBUSY) where the group has processes of its own and is not the root
            (base / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in needed))
            enabled = set((base / "cgroup.subtree_control").read_text().split())
    except OSError:
        return None
    return base if needed <= enabled and os.access(base, os.W_OK) else None


def _v1_bases(own: dict[str, str]) -> dict[str, Path] | None:
    bases = {}
    for controller in _V1_CONTROLLERS:
        mount = ROOT / controller
        if controller not in own or not (mount / "cgroup.procs").exists():
            return None
        base = mount / own[controller].lstrip("/")
        if not os.access(base, os.W_OK):
            return None
        bases[controller] = base
    return bases


def _reap_stale(base: Path) -> None:
    """End what hosts now dead left behind, and remove their groups.

    A host killed with SIGKILL cannot clean up: its worker dies of the
    parent-death signal, but what the worker started lives on in the group
    until this runs (at the next worker start of any host on the machine: a
    look at a few directory entries).
    """
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            parts = entry.name.split(".")
            ours = len(parts) == 3 and entry.name.startswith(_PREFIX) and parts[1].isdigit()
            if ours and not alive(int(parts[1])):
                _empty(entry)
                with contextlib.suppress(OSError):
                    entry.rmdir()


def _empty(group: Path, rounds: int = 200) -> None:
    """SIGKILL the processes of a group until none is left (bounded: its pids.max holds)."""
    if (group / "freezer.state").exists():
        _write(group / "freezer.state", "THAWED")  # a host that died mid-kill left it frozen
    if (group / "cgroup.freeze").exists():
        _write(group / "cgroup.freeze", "0")
    for _ in range(rounds):
        try:
            pids = [int(x) for x in (group / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return
        if not pids:
            return
        _kill_each(pids)
        time.sleep(0.001)


def unavailable_reason() -> str | None:
    """Why this process cannot make cgroups, or None when it can (probed once)."""
    if "reason" not in _checked:
        probe = create(None, None)
        if probe is None:
            _checked["reason"] = (
                "no writable cgroup hierarchy with the memory and pids controllers "
                "(v2 with a delegated subtree, or v1 memory, pids and freezer)"
            )
        else:
            probe.remove()
            _checked["reason"] = None
    return _checked["reason"]


def create(memory_limit: int | None, pids_limit: int | None) -> CgroupTree | None:
    """New groups for one launch with these limits (None: unlimited), or None if impossible."""
    try:
        own = _own_paths()
    except (OSError, ValueError):
        return None
    name = f"{_PREFIX}{os.getpid()}.{next(_counter)}"
    v2 = _v2_base(own)
    if v2 is not None:
        tree = _make(2, {"unified": v2}, name, memory_limit, pids_limit)
        if tree is not None:
            return tree
    v1 = _v1_bases(own)
    if v1 is not None:
        return _make(1, v1, name, memory_limit, pids_limit)
    return None


def _make(
    version: int,
    bases: dict[str, Path],
    name: str,
    memory_limit: int | None,
    pids_limit: int | None,
) -> CgroupTree | None:
    dirs: dict[str, Path] = {}
    tree = CgroupTree(version, dirs, memory_limit, pids_limit)
    try:
        for key, base in bases.items():
            _reap_stale(base)
            (base / name).mkdir()
            dirs[key] = base / name
        tree.__post_init__()
        memory = dirs["unified" if version == 2 else "memory"]
        pids = dirs["unified" if version == 2 else "pids"]
        if memory_limit is not None:
            if version == 2:
                (memory / "memory.max").write_text(str(memory_limit))
                _write(memory / "memory.swap.max", "0")  # absent without swap accounting
            else:
                (memory / "memory.limit_in_bytes").write_text(str(memory_limit))
                _write(memory / "memory.memsw.limit_in_bytes", str(memory_limit))  # no swap
        if pids_limit is not None:
            (pids / "pids.max").write_text(str(pids_limit))
    except OSError:
        tree.remove()
        return None
    return tree
