#!/usr/bin/env bash
# Build the documentation site (mkdocs.yml) in strict mode: a broken link,
# anchor or API reference fails the build. Used by `make docs`, CI and
# tests/test_docs.py. Arguments go to `mkdocs build` (e.g. --site-dir DIR).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export NO_MKDOCS_2_WARNING=1
exec "$root/.venv/bin/mkdocs" build --strict --clean "$@"
