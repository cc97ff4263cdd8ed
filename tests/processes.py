"""What tests ask of processes: whether one runs, who is in a group, can the host start one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie nobody reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status


async def wait_until_gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        await asyncio.sleep(0.02)
    return process_gone(pid)


def group_members(group: int) -> list[int]:
    """The processes of process group ``group`` that run (zombies left out)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # after the command name, which is in parentheses: state, ppid, pgrp
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(entry.name))
    return members


async def host_can_start_a_process() -> bool:
    """Whether a new Python process of the host runs to its end (a fork bomb must not stop it)."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "print('host ok')"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout == "host ok\n"
