"""The CLI's errors and help, each with its exact message (issues 18.4 and 17.9).

A person who mistypes an option or points at the wrong file gets one line that
says what is wrong and exit code 2, never a traceback; what the code prints
(a lone surrogate, 51 MB) never ends the run or floods the JSON object.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import subprocess
from pathlib import Path

import pytest

from eager_rt import __version__
from eager_rt.cli import chat, run
from tests.cli_helpers import eager


def usage_error(proc: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit code 2, the message on stderr, no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def ok_script(tmp_path: Path) -> Path:
    path = tmp_path / "ok.py"
    path.write_text("x = 1\nprint(x)\n")
    return path


# --------------------------------------------------------------------------- the script


def test_a_directory_is_not_a_script(tmp_path: Path) -> None:
    proc = eager("run", str(tmp_path))
    usage_error(proc, f"eager run: {tmp_path} is a directory, not a script\n")


def test_a_file_that_is_not_utf8_says_which_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.py"
    path.write_bytes(b"x = 1\nname = 'caf\xe9'\n")
    proc = eager("run", str(path))
    usage_error(
        proc,
        f"eager run: {path} is not UTF-8 text: byte 0xe9 at offset 17 (line 2) "
        "is not valid UTF-8\n",
    )


# --------------------------------------------------------------------------- option values


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--tps", "nan", "argument --tps: 'nan' is not a finite number"),
        ("--tps", "inf", "argument --tps: 'inf' is not a finite number"),
        ("--tps", "1e-300", "argument --tps: 1e-300 is below the minimum, 0.1"),
        ("--tps", "0", "argument --tps: 0 is below the minimum, 0.1"),
        ("--tps", "fast", "argument --tps: 'fast' is not a number"),
        ("--ttft", "-5", "argument --ttft: -5 is below the minimum, 0"),
        ("--exec-timeout", "0", "argument --exec-timeout: 0 must be greater than 0"),
    ],
)
def test_bad_numbers_are_usage_errors(
    ok_script: Path, option: str, value: str, message: str
) -> None:
    usage_error(eager("run", str(ok_script), option, value), message)


def test_an_unwritable_timeline_fails_before_the_run(ok_script: Path, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "t.png"
    proc = eager("run", str(ok_script), "--timeline", str(target))
    usage_error(proc, f"eager run: --timeline {target}: no such directory: {target.parent}\n")
    assert proc.stdout == ""  # nothing ran
    proc = eager("run", str(ok_script), "--timeline", str(tmp_path))
    usage_error(proc, f"eager run: --timeline {tmp_path}: the file must end in .png, .svg or .html")
    (tmp_path / "t.png").mkdir()
    proc = eager("run", str(ok_script), "--timeline", str(tmp_path / "t.png"))
    usage_error(proc, f"eager run: --timeline {tmp_path / 't.png'}: is a directory")


def test_save_figures_into_a_file_is_refused(ok_script: Path, tmp_path: Path) -> None:
    proc = eager("run", str(ok_script), "--save-figures", str(ok_script))
    usage_error(proc, f"eager run: --save-figures {ok_script}: exists and is not a directory")


# --------------------------------------------------------------------------- run errors


def test_exec_timeout_names_the_limit_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "slow.py"
    path.write_text("import time\nprint('start')\n\n\n\ntime.sleep(60)\nprint('never')\n")
    proc = eager("run", str(path), "--tps", "2000", "--exec-timeout", "2", "--plain")
    assert proc.returncode == 1, proc.stderr
    assert "        error: exceeded --exec-timeout 2s at line 6" in proc.stdout
    assert "KeyboardInterrupt" not in proc.stdout + proc.stderr
    proc = eager("run", str(path), "--tps", "2000", "--exec-timeout", "2", "--json")
    error = json.loads(proc.stdout)["runs"][0]["error"]
    assert error["kind"] == "timeout"
    assert error["message"] == "exceeded --exec-timeout 2s at line 6"


def test_serial_syntax_errors_do_not_name_internal_cells(tmp_path: Path) -> None:
    path = tmp_path / "syntax.py"
    path.write_text("x = 1\nprint(x)\ny = (\nprint(2)\n")
    proc = eager("run", str(path), "--tps", "2000", "--mode", "both", "--plain")
    assert proc.returncode == 1
    assert "<cell" not in proc.stdout + proc.stderr
    lines = [line.strip() for line in proc.stdout.splitlines() if "error:" in line]
    assert lines == [
        "error: SyntaxError: '(' was never closed at line 3",
        "error: SyntaxError: '(' was never closed at line 3 (generation stopped there)",
    ]
    proc = eager("run", str(path), "--tps", "2000", "--mode", "serial", "--json")
    error = json.loads(proc.stdout)["runs"][0]["error"]
    assert error["evalue"] == "'(' was never closed"
    assert error["message"] == "SyntaxError: '(' was never closed at line 3"


def test_a_lone_surrogate_does_not_end_the_run(tmp_path: Path) -> None:
    path = tmp_path / "surrogate.py"
    path.write_text('print("before")\nprint("\\ud800")\nprint("after")\n')
    proc = eager("run", str(path), "--tps", "2000", "--plain")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("before\n\\ud800\nafter\n")
    assert "Traceback" not in proc.stderr
    proc = eager("run", str(path), "--tps", "2000", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["runs"][0]["stdout"] == "before\n\ud800\nafter\n"


def test_json_output_is_capped_with_a_notice(tmp_path: Path) -> None:
    path = tmp_path / "flood.py"
    path.write_text("print('head')\nprint('x' * 51_000_000)\nprint('tail')\n")
    # one execution per statement: 'tail' must not share the flood's output budget
    proc = eager("run", str(path), "--tps", "2000", "--json", "--no-batching")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout) < 1_100_000
    run = json.loads(proc.stdout)["runs"][0]
    stdout = run["stdout"]
    assert stdout.startswith("head\nxxx") and stdout.endswith("\ntail\n")
    dropped = run["stdout_dropped_chars"]
    assert dropped > 0  # the backend may cap the output first, with its own notice
    assert f"\n[... {dropped:,} characters of output dropped]\n" in stdout
    kept = len(stdout) - len(f"\n[... {dropped:,} characters of output dropped]\n")
    assert kept == 1_000_000


# --------------------------------------------------------------------------- figures


FIGURE = (
    "import matplotlib\n"
    "matplotlib.use('Agg')\n"
    "import matplotlib.pyplot as plt\n"
    "plt.plot([1, 2, 3])\n"
    "plt.show()\n"
    "print('drawn')\n"
)


def test_save_figures_writes_numbered_pngs_and_says_where(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    (tmp_path / "plot.py").write_text(FIGURE)
    out = tmp_path / "figs"
    proc = eager("run", "plot.py", "--tps", "2000", "--plain", "--save-figures", str(out),
                 cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    png = out / "figure-001.png"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert proc.stdout.startswith(f"[figure saved: {png}]\ndrawn\n")
    proc = eager("run", "plot.py", "--tps", "2000", "--mode", "both", "--save-figures",
                 str(out), cwd=tmp_path)  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [
        "eager-figure-001.png", "figure-001.png", "serial-figure-001.png",
    ]  # fmt: skip


def test_json_images_carry_base64_bundles(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    (tmp_path / "plot.py").write_text(FIGURE)
    proc = eager("run", "plot.py", "--tps", "2000", "--json", "--json-images", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    [bundle] = json.loads(proc.stdout)["runs"][0]["images"]
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")
    proc = eager("run", "plot.py", "--tps", "2000", "--json", cwd=tmp_path)
    assert "images" not in json.loads(proc.stdout)["runs"][0]
    usage_error(eager("run", "plot.py", "--json-images", cwd=tmp_path),
                "eager run: --json-images needs --json")  # fmt: skip


# --------------------------------------------------------------------------- help


def test_bare_eager_prints_short_usage_with_both_subcommands() -> None:
    proc = eager()
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: eager {run,chat} ...\n")
    assert "\n  eager run SCRIPT " in proc.stderr
    assert "\n  eager chat PROMPT " in proc.stderr
    assert len(proc.stderr.splitlines()) < 10


def test_version() -> None:
    proc = eager("--version")
    assert proc.returncode == 0
    assert proc.stdout == f"eager_rt {__version__}\n"


@pytest.mark.parametrize("command", ["run", "chat"])
def test_help_is_plain_text_and_describes_every_option(command: str) -> None:
    proc = eager(command, "--help")
    assert proc.returncode == 0
    markup = re.findall(r"``|:(?:mod|func|class|meth|attr):`", proc.stdout)
    assert markup == [], "reStructuredText markup in --help"
    subparsers = argparse.ArgumentParser().add_subparsers()
    {"run": run, "chat": chat}[command].add_parser(subparsers)
    subparser = subparsers.choices[command]
    undocumented = [
        action.option_strings or [action.dest] for action in subparser._actions if not action.help
    ]
    assert undocumented == []
    for option in ("--mode", "--tokenizer", "--backend", "--exec-timeout", "--plain",
                   "--save-figures"):  # fmt: skip
        if command == "chat" and option in ("--mode", "--tokenizer"):
            continue
        assert option in proc.stdout
