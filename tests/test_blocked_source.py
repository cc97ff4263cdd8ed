"""A synchronous token source that blocks forever delays nothing and keeps nothing alive.

Reproducer: ``def src(): yield "x=1\\n"; threading.Event().wait()`` with
``run_stream(src(), timeout=2)`` returned after 22 s with a bare
``TimeoutError()`` and the interpreter never exited (the source's thread was a
pool thread, joined at exit, and the loop joined it while cancelling).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest

from eager_rt import runtime
from eager_rt.runtime import run_stream

SCRIPT = textwrap.dedent(
    """
    import threading
    from eager_rt.runtime import run_stream

    def src():
        yield "x = 1\\n"
        threading.Event().wait()

    try:
        run_stream(src(), timeout=1)
    except TimeoutError as exc:
        print("TimeoutError:", exc, flush=True)
    """
)


def test_the_deadline_holds_the_message_survives_and_the_process_exits() -> None:
    # a hang fails here through subprocess's own bound, not a timing assertion
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "TimeoutError: run_stream did not finish within timeout=1 s" in done.stdout
    assert "Traceback" not in done.stderr


def test_a_source_blocked_after_an_error_is_abandoned_and_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime._Pieces, "close_timeout", 0.5)
    release = threading.Event()

    def src() -> Iterator[str]:
        yield "raise ValueError('boom')\n"
        yield "y = 2\n"
        release.wait()  # blocks until the test ends
        yield "z = 3\n"

    try:
        result = run_stream(src(), timeout=60)
    finally:
        release.set()
    assert result.status == "error"
    assert result.error is not None and result.error.ename == "ValueError"
    info = result.source_info
    if "close_failed" in info:  # the error may stop the run before the source blocks
        assert "next()" in info["close_failed"]
    assert not [t for t in threading.enumerate() if t.name == "eager_rt-source" and not t.daemon]


def test_a_source_that_blocks_before_closing_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime._Pieces, "close_timeout", 0.5)
    release = threading.Event()
    pulled = threading.Event()

    class Stuck:
        """Yields one statement that fails, then blocks in next() until released."""

        def __init__(self) -> None:
            self.sent = False

        def __iter__(self) -> Stuck:
            return self

        def __next__(self) -> str:
            if not self.sent:
                self.sent = True
                return "1 / 0\n"
            pulled.set()
            release.wait()
            raise StopIteration

    try:
        result = run_stream(Stuck(), timeout=60)
    finally:
        release.set()
    assert result.status == "error"
    assert pulled.is_set()
    assert result.source_info["close_failed"] == (
        "the source did not return from next() within 0.5 s"
    )
