#!/usr/bin/env bash
# mypy --strict over eager_rt *and* backends/, which installs as eager_rt.backends.
# mypy cannot see the editable install's package_dir mapping, so we lay the
# package out as it is installed: a temporary tree of links, eager_rt/* plus
# eager_rt/backends -> backends/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
mkdir "$tree/eager_rt"
for entry in "$root"/eager_rt/*; do
    case "$(basename "$entry")" in __pycache__|*.so) continue ;; esac
    ln -s "$entry" "$tree/eager_rt/$(basename "$entry")"
done
ln -s "$root/backends" "$tree/eager_rt/backends"
cd "$tree"
"$root/.venv/bin/mypy" --config-file "$root/pyproject.toml" --strict --cache-dir "$root/.mypy_cache" -p eager_rt "$@"
