"""Checks of what a person types: argument types, the script, and paths written later.

Every rejection is a sentence naming the option or file and what is wrong
with it; argparse turns the argument types' errors into a usage message and
exit code 2, and :class:`UsageError` carries the others to the same end.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "UsageError",
    "number",
    "read_script",
    "writable_dir",
    "writable_file",
]


class UsageError(Exception):
    """What the person asked for cannot be done; the message says why (exit code 2)."""


def number(
    *, minimum: float | None = None, above: float | None = None, maximum: float | None = None
) -> Callable[[str], float]:
    """An argparse type: a finite float within bounds (``above`` is exclusive)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below the minimum, {minimum:g}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"{text} must be greater than {above:g}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{text} is above the maximum, {maximum:g}")
        return value

    return parse


def read_script(path: Path) -> str:
    """The script's text, or a :class:`UsageError` saying exactly why it cannot be read."""
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not a script")
    if not path.exists():
        raise UsageError(f"no such script: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start]
        raise UsageError(
            f"{path} is not UTF-8 text: byte 0x{byte:02x} at offset {exc.start} "
            f"(line {line}) is not valid UTF-8"
        ) from None


def writable_file(path: Path, option: str) -> None:
    """Fail now, before a run, if ``path`` could not be written after it."""
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: no such directory: {parent}")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{option} {path}: not writable")


def writable_dir(path: Path, option: str) -> None:
    """Create ``path`` (and parents) if needed; fail now if it cannot hold files."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{option} {path}: exists and is not a directory") from None
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path}: not writable")
