"""Which top-level statement of an execution's code wrote an output (``Output.line``).

One rule for the worker and the IPython kernels, which load this module as
source inside the sandbox (standard library only, Python >= 3.8). A
statement is known by the first line of code that is not indented; a line
within it (a loop's body, where the module frame is while the body runs)
maps back to that line, so a loop's prints share one line. A continuation
line at column 0 (a closing bracket) counts as a start too: the host maps
lines to statements by range, so that costs a frame break, never a wrong
statement.
"""

from __future__ import annotations

import bisect
import re

__all__ = ["several", "starts", "statement_at"]

#: a line that may start a top-level statement: not indented, not blank, not a comment
_TOP_LEVEL_LINE = re.compile(r"^[^\s#]", re.MULTILINE)


def several(code: str) -> bool:
    """Whether ``code`` may hold more than one top-level statement (cheap; may say yes wrongly)."""
    found = _TOP_LEVEL_LINE.finditer(code)
    return next(found, None) is not None and next(found, None) is not None


def starts(code: str) -> list[int]:
    """The 1-based lines of ``code`` that may start a top-level statement, in order."""
    found, line, at = [], 1, 0
    for match in _TOP_LEVEL_LINE.finditer(code):
        line += code.count("\n", at, match.start())
        at = match.start()
        found.append(line)
    return found


def statement_at(starts: list[int], line: int) -> int:
    """The start of the statement that holds ``line`` (``line`` itself before the first)."""
    index = bisect.bisect_right(starts, line) - 1
    return starts[index] if index >= 0 else line
