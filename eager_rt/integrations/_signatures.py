"""What every adapter needs to turn a framework's tool into a function the code calls.

A framework describes a tool by a name and a schema; the sandbox calls a
Python function with a signature (eager_rt writes a stub from it). Two pieces
are the same for every framework: the identifier a tool name becomes, and the
default of an optional parameter that the framework fills in itself (the code
may leave it out; the call then passes nothing for it). Nothing here imports a
framework.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["OMITTED", "given", "python_name"]


class _Omitted:
    """The default of a parameter the framework fills in: shown as ``...``, never passed on."""

    def __repr__(self) -> str:
        return "..."


OMITTED: Any = _Omitted()


def python_name(name: str) -> str:
    """The identifier the code calls a tool by (``get-weather`` -> ``get_weather``)."""
    text = re.sub(r"\W", "_", name)
    if not text or text[0].isdigit():
        text = "_" + text
    return text + "_" if keyword.iskeyword(text) else text


def given(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """``arguments`` without the parameters left to the framework's defaults."""
    return {k: v for k, v in arguments.items() if v is not OMITTED}
