"""``eager run``: the command a person (or a benchmark script) runs first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_helpers import RUN_KEYS, eager


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
        assert set(run) >= RUN_KEYS
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


# --------------------------------------------------------------------------- host tools

TOOLS_MODULE = '''\
import eager_rt

def lookup(key: str) -> dict:
    """Read a record."""
    return {"key": key, "n": len(key)}

def send(to: str) -> str:
    return f"sent to {to}"

def wipe() -> str:
    return "wiped"

TOOLS = [eager_rt.tool(lookup, read_only=True), send, eager_rt.tool(wipe, requires_approval=True)]
NOT_TOOLS = 42
'''

TOOLS_SCRIPT = (
    "r = lookup('abc')\n"
    "print(r['n'])\n"
    "print(send('bob'))\n"
    "try:\n"
    "    wipe()\n"
    "except ToolError as e:\n"
    "    print(e.type)\n"
)


@pytest.fixture
def tools_dir(tmp_path: Path) -> Path:
    (tmp_path / "mytools.py").write_text(TOOLS_MODULE)
    (tmp_path / "agent_code.py").write_text(TOOLS_SCRIPT)
    return tmp_path


def test_tools_from_a_module_attribute(tools_dir: Path) -> None:
    proc = eager(
        "run", "agent_code.py", "--tps", "2000", "--json", "--tools", "mytools:TOOLS",
        "--speculate", cwd=tools_dir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [run] = json.loads(proc.stdout)["runs"]
    assert run["stdout"] == "3\nsent to bob\nPermissionError\n"
    assert [(c["tool"], c["arguments"], c["ok"]) for c in run["tool_calls"]] == [
        ("lookup", {"key": "abc"}, True),
        ("send", {"to": "bob"}, True),
        ("wipe", {}, False),  # no one to approve it: denied
    ]
    assert run["ledger"][0] == 2  # send: the side effect that ran
    assert run["model"]["tool_calls"] == 3
    assert "eager: tool send() #2 returned" in proc.stderr


def test_a_single_tool_and_the_human_summary(tools_dir: Path) -> None:
    (tools_dir / "one.py").write_text("print(send('ann'))\n")
    proc = eager(
        "run", "one.py", "--tps", "2000", "--tools", "mytools:send", "--hold-side-effects",
        cwd=tools_dir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("sent to ann\n")
    assert "tools:  1 calls" in proc.stdout
    assert "ledger (eager): side effects that ran: send#1" in proc.stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mytools", "expects MODULE:ATTR"),
        ("nosuchmodule:X", "cannot import 'nosuchmodule'"),
        ("mytools:MISSING", "has no attribute 'MISSING'"),
        ("mytools:NOT_TOOLS", "expected a list of tools"),
    ],
)
def test_bad_tool_options_exit_2(tools_dir: Path, spec: str, message: str) -> None:
    proc = eager("run", "agent_code.py", "--tools", spec, cwd=tools_dir)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_clashing_tools_and_options_without_tools_exit_2(tools_dir: Path) -> None:
    proc = eager(
        "run", "agent_code.py", "--tools", "mytools:TOOLS", "--tools", "mytools:send",
        cwd=tools_dir,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "two tools are named 'send'" in proc.stderr
    proc = eager("run", "agent_code.py", "--speculate", cwd=tools_dir)
    assert proc.returncode == 2
    assert "need --tools" in proc.stderr


def test_help_documents_the_tools_option() -> None:
    proc = eager("run", "--help")
    assert proc.returncode == 0
    assert "--tools MODULE:ATTR" in proc.stdout
    assert "Tools that require approval" in proc.stdout
