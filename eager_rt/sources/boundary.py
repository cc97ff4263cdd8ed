"""The end-of-unit marker a token source can put in its stream.

A compound statement stays open until the next column-0 line shows it cannot
grow. When the model closes a fenced code block or finishes a tool call's
arguments, the source *knows* the code unit is over, long before the next block
(or the end of the stream, after the prose that follows) would tell the
chunker. Yielding :data:`BOUNDARY` says so: the runtime then flushes the
chunker, and the last statement of the block runs at once.

``BOUNDARY`` is an empty ``str``, so a consumer that only concatenates text
pieces (``"".join(source)``) is unaffected.
"""

from __future__ import annotations

__all__ = ["BOUNDARY", "Boundary", "is_boundary"]


class Boundary(str):
    """The type of :data:`BOUNDARY`; an empty string that means "the code unit ended"."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "BOUNDARY"


BOUNDARY = Boundary()


def is_boundary(piece: object) -> bool:
    return type(piece) is Boundary
