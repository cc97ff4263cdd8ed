"""The chunker's work per character stays O(1) however long a statement grows.

Measured as work, not time: pending text is joined into a block once and again
only at its cut, so no pending block may hold more than one block's worth of
pieces. The old merge re-joined one ever-growing block every 63 pieces (8 MB
fed in 4-character pieces took 10 s, 10 MB 49 s).
"""

from __future__ import annotations

import pytest

from eager_rt.chunker import _BLOCK, Chunker
from eager_rt.scanner_pure import Scanner as ScannerType
from tests.chunker_helpers import SCANNERS

PIECE = 4


def _largest_block(chunker: Chunker) -> int:
    return max((len(p) for p in chunker._pieces), default=0)


@pytest.mark.parametrize("scanner_cls", SCANNERS)
def test_pending_text_is_never_rejoined_before_its_cut(scanner_cls: type[ScannerType]) -> None:
    chunker = Chunker(scanner_cls=scanner_cls)
    stmt = "x = [" + "1, " * 40_000 + "]\n"
    largest = 0
    out = []
    for i in range(0, len(stmt), PIECE):
        out += chunker.feed(stmt[i : i + PIECE])
        largest = max(largest, _largest_block(chunker))
    assert largest <= _BLOCK * PIECE
    out += chunker.close()
    assert [c.code for c in out if c.kind == "statement"] == [stmt]


@pytest.mark.parametrize("scanner_cls", SCANNERS)
def test_a_long_block_body_keeps_blocks_small(scanner_cls: type[ScannerType]) -> None:
    """A ``def`` whose body streams line by line: blank lines trigger early confirmation."""
    body = "def f():\n" + "".join(f"    a{i} = {i}\n\n" for i in range(5_000)) + "f()\n"
    chunker = Chunker(scanner_cls=scanner_cls)
    out = []
    largest_after_join = 0
    for i in range(0, len(body), PIECE):
        out += chunker.feed(body[i : i + PIECE])
        # early confirmation joins everything pending once (budgeted); the
        # blocks fed after it must still stay one block's worth
        largest_after_join = max(largest_after_join, max(map(len, chunker._pieces[1:]), default=0))
    out += chunker.close()
    assert largest_after_join <= _BLOCK * PIECE
    assert "".join(c.code for c in out) == body
    assert [c.kind for c in out] == ["statement", "statement"]
