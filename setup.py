"""Build the optional Cython scanner; fall back to pure Python when it cannot be built.

All metadata lives in pyproject.toml. This file exists only because the
extension must be optional: a machine without a C compiler or Cython still
gets a working install that uses ``eager_rt.scanner`` (the pure twin).
"""

from __future__ import annotations

import os
import warnings

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Turn a failed native build into a warning instead of a failed install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure means "use pure Python"
            warnings.warn(f"eager_rt: native scanner not built ({exc}); using pure Python")

    def build_extension(self, ext: object) -> None:
        try:
            super().build_extension(ext)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"eager_rt: native scanner not built ({exc}); using pure Python")


def native_extensions() -> list[object]:
    if os.environ.get("EAGER_RT_PURE") == "1" or not os.path.exists("native/_native.pyx"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        warnings.warn("eager_rt: Cython not available; installing the pure-Python scanner only")
        return []
    from setuptools import Extension

    ext = Extension("eager_rt._native", ["native/_native.pyx"])
    return list(
        cythonize([ext], compiler_directives={"language_level": "3", "boundscheck": False,
                                              "wraparound": False, "cdivision": True})
    )


setup(ext_modules=native_extensions(), cmdclass={"build_ext": OptionalBuildExt})
