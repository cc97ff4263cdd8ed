"""``eager run``: the command a person (or a benchmark script) runs first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

KEYS = {
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
    return subprocess.run(
        [sys.executable, "-m", "eager_rt", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.fixture
def script(tmp_path: Path) -> Path:
    (tmp_path / "data.csv").write_text("a,b\n1,2\n3,4\n")
    path = tmp_path / "analysis.py"
    path.write_text(
        "import csv\n"
        "rows = list(csv.DictReader(open('data.csv')))\n"  # relative to the script's folder
        "print('rows', len(rows))\n"
        "total = sum(int(r['a']) + int(r['b']) for r in rows)\n"
        "print('total', total)\n"
    )
    return path


def test_json_both_modes_prints_one_object(script: Path, tmp_path: Path) -> None:
    proc = eager("run", str(script), "--tps", "2000", "--mode", "both", "--json", cwd=Path("/"))
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)  # exactly one JSON document, nothing else on stdout
    assert [run["mode"] for run in payload["runs"]] == ["serial", "eager"]
    for run in payload["runs"]:
        assert set(run) >= KEYS
        assert run["status"] == "ok"
        assert run["stdout"] == "rows 2\ntotal 10\n"
        assert run["backend"] == "local"
        assert run["tps"] == 2000
    assert payload["runs"][0]["batches"] == 1
    assert isinstance(payload["nel_saving"], float)
    assert isinstance(payload["e2el_saving"], float)
    # the script's own output went to stderr, live
    assert "rows 2" in proc.stderr


def test_human_summary_and_timeline(script: Path, tmp_path: Path) -> None:
    png = tmp_path / "timeline.png"
    proc = eager("run", str(script), "--tps", "1000", "--mode", "both", "--timeline", str(png))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("rows 2\ntotal 10\n")
    assert "eager vs serial:" in proc.stdout
    assert "lower bound" in proc.stdout
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_failing_script_exits_1_and_reports_the_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text("print('start')\nx = {}['nope']\n" + "print('more')\n" * 30)
    proc = eager("run", str(path), "--tps", "500", "--json")
    assert proc.returncode == 1
    run = json.loads(proc.stdout)["runs"][0]
    assert run["status"] == "error"
    assert run["error"]["ename"] == "KeyError"
    assert run["error"]["lineno"] == 2
    assert run["stdout"] == "start\n"


def test_missing_script_and_unknown_backend_exit_2(tmp_path: Path, script: Path) -> None:
    proc = eager("run", str(tmp_path / "absent.py"))
    assert proc.returncode == 2
    assert "no such script" in proc.stderr
    proc = eager("run", str(script), "--backend", "nonexistent")
    assert proc.returncode == 2
    assert "no backend named 'nonexistent'" in proc.stderr
