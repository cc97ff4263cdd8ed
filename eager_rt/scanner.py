"""Pick the statement scanner once, at import: the Cython one when it is built.

``Scanner`` is the active implementation and ``NATIVE`` says which it is.
``EAGER_RT_PURE=1`` forces the pure-Python twin (``eager_rt.scanner_pure``);
a build without the extension falls back to it with a warning.  Both
implement one contract, so callers never need to know which one runs.
"""

from __future__ import annotations

import os
import warnings

from eager_rt import scanner_pure
from eager_rt.scanner_pure import EV_CUT, EV_PROBE, EV_SPEC, Event

__all__ = [
    "EV_CUT",
    "EV_PROBE",
    "EV_SPEC",
    "NATIVE",
    "Event",
    "PureScanner",
    "Scanner",
    "native_scanner",
]

PureScanner = scanner_pure.Scanner


def native_scanner() -> type[scanner_pure.Scanner] | None:
    """The compiled scanner class, or None when the extension is not built."""
    try:
        from eager_rt import _native
    except ImportError:
        return None
    cls: type[scanner_pure.Scanner] = _native.Scanner
    return cls


Scanner: type[scanner_pure.Scanner]
if os.environ.get("EAGER_RT_PURE") == "1":
    Scanner = PureScanner
    NATIVE = False
else:
    _native_cls = native_scanner()
    if _native_cls is None:
        warnings.warn(
            "eager_rt: the native scanner (eager_rt._native) is not built; "
            "using the pure-Python scanner",
            RuntimeWarning,
            stacklevel=2,
        )
        Scanner = PureScanner
        NATIVE = False
    else:
        Scanner = _native_cls
        NATIVE = True
