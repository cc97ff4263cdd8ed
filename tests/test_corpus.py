"""The benchmark corpus is sound: every script runs, every error variant fails where intended.

The replay benchmark (``bench/test_bench_replay.py``) compares eager and serial
runs of these scripts; its figures only mean something if each script is a
working program on its own, and each error variant raises the intended
exception at the intended statement. The last tests check, at a token rate high
enough to take seconds, that eager execution gives the same output as serial.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bench.corpus_index import (
    ERROR_VARIANTS,
    ErrorVariant,
    dabench_missing_reason,
    is_dabench,
    script_names,
    script_text,
    session_env,
)
from eager_rt.executor import Backend
from eager_rt.registry import get_backend
from eager_rt.result import RunResult
from eager_rt.runtime import Mode, arun_stream
from eager_rt.sources.replay import replay
from tests.provision import unavailable

SCRIPTS = script_names()
FAST_TPS = 2000.0


def _skip_if_data_missing(script: str) -> None:
    reason = dabench_missing_reason()
    if is_dabench(script) and reason is not None:
        unavailable("The DABench tables", reason, "EAGER_RT_REQUIRE_DABENCH")


def _run_standalone(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(path)],
        cwd=cwd,
        env={**os.environ, **session_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_corpus_is_large_and_varied() -> None:
    assert len(SCRIPTS) >= 30
    assert sum(map(is_dabench, SCRIPTS)) >= 10
    assert sum(not is_dabench(s) for s in SCRIPTS) >= 10
    assert len({v.script for v in ERROR_VARIANTS}) >= 10
    assert len({v.ename for v in ERROR_VARIANTS}) >= 5
    assert all(v.script in SCRIPTS for v in ERROR_VARIANTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_runs_standalone(script: str, tmp_path: Path) -> None:
    _skip_if_data_missing(script)
    proc = _run_standalone(Path("bench/corpus", script).resolve(), tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip(), "a corpus script prints its intermediate results"


@pytest.mark.parametrize("variant", ERROR_VARIANTS, ids=lambda v: v.name)
def test_error_variant_raises_intended_exception(variant: ErrorVariant, tmp_path: Path) -> None:
    _skip_if_data_missing(variant.script)
    path = tmp_path / f"{variant.name}.py"
    path.write_text(variant.text(), encoding="utf-8")
    proc = _run_standalone(path, tmp_path)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{variant.ename}:") or last == variant.ename, proc.stderr[-2000:]
    # the innermost frame of the script itself is the injected statement
    script_frames = [ln for ln in proc.stderr.splitlines() if f'File "{path}"' in ln]
    assert script_frames[0].endswith(f"line {variant.error_line()}, in <module>")


def test_error_variant_rejects_ambiguous_snippet() -> None:
    ambiguous = ErrorVariant("inventory_checks.py", "print(", "print(", "KeyError")
    with pytest.raises(ValueError, match="occurs"):
        ambiguous.text()


# ---------------------------------------------------------------- eager vs serial


@pytest.fixture
async def local_backend() -> AsyncIterator[Backend]:
    backend = get_backend("local")()
    try:
        yield backend
    finally:
        await backend.aclose()


async def _run(backend: Backend, text: str, cwd: Path, mode: Mode, **options: Any) -> RunResult:
    cwd.mkdir()
    session = backend.session(cwd=cwd, env=session_env())
    await session.start(timeout=60)
    try:
        return await arun_stream(replay(text, FAST_TPS), session, mode=mode, **options)
    finally:
        await session.close()


def _images(result: RunResult) -> list[str]:
    return [hashlib.sha256(d["image/png"].encode()).hexdigest() for d in result.displays]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "script",
    [
        "inventory_checks.py",
        "da_titanic_features.py",
        "weather_csv_roundtrip.py",
        "histogram_grid.py",
    ],
)
async def test_eager_output_equals_serial(
    script: str, local_backend: Backend, tmp_path: Path
) -> None:
    _skip_if_data_missing(script)
    text = script_text(script)
    serial = await _run(local_backend, text, tmp_path / "serial", "serial")
    eager = await _run(local_backend, text, tmp_path / "eager", "eager")
    assert serial.status == eager.status == "ok", (serial.error, eager.error)
    assert eager.code == serial.code == text
    assert eager.stdout == serial.stdout
    assert _images(eager) == _images(serial)
    assert sorted(p.name for p in (tmp_path / "eager").iterdir()) == sorted(
        p.name for p in (tmp_path / "serial").iterdir()
    )


@pytest.mark.anyio
@pytest.mark.parametrize("variant", ERROR_VARIANTS[:3], ids=lambda v: v.name)
async def test_eager_error_matches_serial(
    variant: ErrorVariant, local_backend: Backend, tmp_path: Path
) -> None:
    _skip_if_data_missing(variant.script)
    text = variant.text()
    serial = await _run(local_backend, text, tmp_path / "serial", "serial")
    eager = await _run(local_backend, text, tmp_path / "eager", "eager")
    assert serial.status == eager.status == "error"
    assert serial.error is not None and eager.error is not None
    assert serial.error.ename == eager.error.ename == variant.ename
    assert eager.error.lineno == variant.error_line()
    assert variant.new.splitlines()[0] in eager.error.statement
    assert eager.stdout == serial.stdout
    # what was consumed is a prefix of the program; the stream is cut only when the
    # failure came before the end of generation (at this rate, usually not)
    assert text.startswith(eager.code)
    assert eager.stream_closed_early == (len(eager.code) < len(text))


@pytest.mark.anyio
async def test_figure_built_over_several_executions_equals_serial(
    local_backend: Backend, tmp_path: Path
) -> None:
    """Script semantics: a figure is displayed by plt.show(), never cut at an execution's end."""
    text = script_text("kmeans_customers.py")
    serial = await _run(local_backend, text, tmp_path / "serial", "serial")
    # one execution per statement: the figure's statements land in separate executions
    eager = await _run(
        local_backend, text, tmp_path / "eager", "eager", batching=False, gating=False
    )
    assert serial.status == eager.status == "ok"
    assert len(eager.batches) > 20
    assert eager.stdout == serial.stdout
    assert len(serial.displays) == 1
    assert _images(eager) == _images(serial)
