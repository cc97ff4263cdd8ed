"""What the CLI tests share: running ``eager`` as a person does, and the JSON a run reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: the keys every run in ``eager run --json`` / ``eager chat --json`` reports
RUN_KEYS = {
    "mode",
    "backend",
    "tps",
    "gen_s",
    "exec_s",
    "nel_s",
    "e2el_s",
    "chunks",
    "batches",
    "status",
    "stdout",
}


def eager(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m eager_rt ARGS`` in a fresh process, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "eager_rt", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
