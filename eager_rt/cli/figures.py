"""Figures a run displayed: written to ``--save-figures DIR`` as numbered files.

The live view and the plain printer both hand each display bundle here and
print the path it returns, so a person can open what the code drew.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

__all__ = ["FigureSaver", "describe_bundle"]

#: the bundle types written to files, in order of preference, and their file suffix
_SAVED = {"image/png": ".png", "image/jpeg": ".jpg", "image/svg+xml": ".svg"}


def describe_bundle(data: dict[str, Any]) -> str:
    """A one-line stand-in for a display bundle a terminal cannot show."""
    mime = next((m for m in ("image/png", "image/svg+xml", "text/html") if m in data), None)
    if mime is None:
        return str(data.get("text/plain", "<display>"))
    size = len(str(data[mime]))
    return f"[{mime} output, {size:,} bytes]"


class FigureSaver:
    """Writes each image bundle to ``directory/figure-NNN.ext``, numbered from 1 per process.

    ``prefix`` keeps the runs of ``--mode both`` apart (``serial-figure-001.png``).
    """

    def __init__(self, directory: Path, prefix: str = "") -> None:
        self.directory = directory
        self.prefix = prefix
        self.saved: list[Path] = []

    def save(self, data: dict[str, Any]) -> Path | None:
        """The file the bundle's image went to, or None when it holds no image."""
        mime = next((m for m in _SAVED if m in data), None)
        if mime is None:
            return None
        value = data[mime]
        if mime == "image/svg+xml":
            raw = str(value).encode("utf-8")
        else:
            try:
                raw = base64.b64decode(str(value), validate=False)
            except (binascii.Error, ValueError):
                return None
        path = self.directory / f"{self.prefix}figure-{len(self.saved) + 1:03d}{_SAVED[mime]}"
        path.write_bytes(raw)
        self.saved.append(path)
        return path

    def describe(self, data: dict[str, Any]) -> str:
        """``[figure saved: PATH]`` when the bundle was an image, else its stand-in."""
        try:
            path = self.save(data)
        except OSError as exc:
            return f"{describe_bundle(data)} (not saved: {exc.strerror or exc})"
        return describe_bundle(data) if path is None else f"[figure saved: {path}]"
