"""MkDocs hook: how mkdocstrings reads the package for the API reference.

Two things, both about this repository's layout and docstrings rather than
the site: ``eager_rt.backends`` lives in ``backends/``, and docstrings use
Sphinx roles (``scripts/griffe_sphinx_roles.py`` turns them into links).

The package is installed with a ``package-dir`` mapping (``eager_rt.backends``
-> ``backends/``) that griffe's static loader cannot follow. As
``scripts/typecheck.sh`` does for mypy, the hook lays the package out as it is
installed, a temporary tree of links (``eager_rt/*`` plus
``eager_rt/backends -> backends/``), and puts it first on the Python handler's
search paths. The tree is removed when MkDocs shuts down. The griffe
extension is given by absolute path, so a config that inherits this one from
elsewhere (tests/test_docs.py) loads it too.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import event_priority

_ROOT = Path(__file__).resolve().parent.parent
_trees: list[Path] = []


def _link_tree() -> Path:
    tree = Path(tempfile.mkdtemp(prefix="eager-rt-docs-"))
    package = tree / "eager_rt"
    package.mkdir()
    for entry in (_ROOT / "eager_rt").iterdir():
        if entry.name == "__pycache__" or entry.suffix == ".so":
            continue
        (package / entry.name).symlink_to(entry)
    (package / "backends").symlink_to(_ROOT / "backends")
    _trees.append(tree)
    return tree


@event_priority(100)  # before mkdocstrings reads its handler options
def on_config(config: MkDocsConfig) -> MkDocsConfig:
    handlers: dict[str, Any] = config.plugins["mkdocstrings"].config["handlers"]
    python = handlers.setdefault("python", {})
    python["paths"] = [str(_link_tree()), *python.get("paths", [])]
    options = python.setdefault("options", {})
    roles = f"{_ROOT / 'scripts' / 'griffe_sphinx_roles.py'}:SphinxRoles"
    options["extensions"] = [roles, *options.get("extensions", [])]
    return config


def on_shutdown() -> None:
    while _trees:
        shutil.rmtree(_trees.pop(), ignore_errors=True)
