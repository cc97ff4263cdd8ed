#!/usr/bin/env bash
# Run E2B's own SDK test suite (python/tests of e2b-dev/code-interpreter) against
# the project's local E2B server (tests/e2b_server), to measure how faithfully
# that server plays E2B: every Python-language test must pass here as it does
# against E2B's real service.
#
#   scripts/e2b-sdk-tests.sh [CHECKOUT] [-- extra pytest arguments]
#
# CHECKOUT is a checkout of e2b-dev/code-interpreter at the pinned commit
# ($E2B_SDK_SRC, default /var/tmp/e2b-src; cloned there when missing). Their
# tests run from that checkout, unmodified, in a venv of their own
# ($E2B_SDK_VENV, default /var/tmp/e2b-sdk-venv: the SDK at the version this
# project's venv has, pytest, pytest-asyncio, pytest-xdist, pytest-dotenv) so
# their pytest plugins never touch the project's. The server's kernels run in
# the template's environment ($E2B_TEMPLATE_VENV, default /var/tmp/e2b-venv:
# the kernel packages at the versions the checkout's template/requirements.txt
# pins, e2b_charts included, plus its server's requirements, so that the same
# venv also runs E2B's own server: tests/e2b_server/upstream.py). The SDK is
# pointed at the server with its own settings (E2B_API_URL, E2B_SANDBOX_URL,
# E2B_API_KEY), nothing patched.
#
# Left out, because they test what is not a Python code context: other
# kernels (JavaScript, TypeScript, R, Java, Bash: the local server runs Python
# kernels only) and the sandbox's systemd services (test_systemd: envd's
# process API, which the local server does not serve).
set -euo pipefail

PIN=7df1757bfd5baa037f909ce97c2dbe014da973c0
REPO_URL=https://github.com/e2b-dev/code-interpreter.git
root="$(cd "$(dirname "$0")/.." && pwd)"
src="${E2B_SDK_SRC:-/var/tmp/e2b-src}"
if [ $# -gt 0 ] && [ "$1" != "--" ]; then src="$1"; shift; fi
[ "${1:-}" = "--" ] && shift
venv="${E2B_SDK_VENV:-/var/tmp/e2b-sdk-venv}"
project_python="$root/.venv/bin/python"

log() { echo "[e2b-sdk-tests] $*" >&2; }
die() { log "error: $*"; exit 1; }

if [ ! -d "$src/python/tests" ]; then
    log "cloning e2b-dev/code-interpreter at $PIN into $src"
    git clone -q "$REPO_URL" "$src"
    git -C "$src" checkout -q "$PIN"
fi
if [ -d "$src/.git" ]; then
    head="$(git -C "$src" rev-parse HEAD)"
    [ "$head" = "$PIN" ] || die "$src is at $head, not the pinned $PIN"
else
    log "$src is not a git checkout: taking it to be the pinned $PIN"
fi

sdk_version="$("$project_python" -c 'import importlib.metadata as m; print(m.version("e2b-code-interpreter"))')"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "
import importlib.metadata as m, sys
sys.exit(m.version('e2b-code-interpreter') != '$sdk_version')" 2>/dev/null; then
    log "making $venv (e2b-code-interpreter $sdk_version)"
    "$project_python" -m venv "$venv"
    "$venv/bin/pip" install -q "e2b-code-interpreter==$sdk_version" pytest pytest-asyncio \
        pytest-xdist pytest-dotenv
fi

template_venv="${E2B_TEMPLATE_VENV:-/var/tmp/e2b-venv}"
if [ ! -x "$template_venv/bin/python" ] || ! "$template_venv/bin/python" -c "import e2b_charts, ipykernel, pandas, PIL, orjson" 2>/dev/null; then
    log "making $template_venv (the template's kernel packages)"
    pins="$(grep -E '^(jupyter-server|ipykernel|ipython|orjson|pandas|matplotlib|pillow|numpy|e2b_charts)\b' "$src/template/requirements.txt")"
    "$project_python" -m venv "$template_venv"
    # shellcheck disable=SC2086 - one requirement per word
    "$template_venv/bin/pip" install -q -r "$src/template/server/requirements.txt" $pins
fi

key="e2b_local_sdk_tests"
# The server runs until its stdin ends: the coprocess's pipe, closed on exit.
coproc SERVER { cd "$root" && exec "$project_python" -m tests.e2b_server --api-key "$key" \
    --kernel-python "$template_venv/bin/python"; }
server_in="${SERVER[1]}"
trap 'exec {server_in}>&-; wait "$SERVER_PID" 2>/dev/null || true' EXIT
read -r -t 60 line <&"${SERVER[0]}" || die "the local E2B server did not start"
port="$(sed -E 's/.*"port": *([0-9]+).*/\1/' <<<"$line")"
url="http://127.0.0.1:$port"
log "local E2B server at $url"

not_python="test_cwd_javascript or test_cwd_typescript or test_cwd_r or test_cwd_java or test_cwd_bash"
cd "$src/python"
env -u E2B_DEBUG -u E2B_DOMAIN \
    E2B_API_KEY="$key" E2B_API_URL="$url" E2B_SANDBOX_URL="$url" \
    "$venv/bin/pytest" tests -p no:cacheprovider \
    --ignore=tests/async/env_vars/test_bash.py --ignore=tests/sync/env_vars/test_bash.py \
    --ignore=tests/async/env_vars/test_java.py --ignore=tests/sync/env_vars/test_java.py \
    --ignore=tests/async/env_vars/test_js.py --ignore=tests/sync/env_vars/test_js.py \
    --ignore=tests/async/env_vars/test_r.py --ignore=tests/sync/env_vars/test_r.py \
    --ignore=tests/async/test_async_bash.py --ignore=tests/sync/test_bash.py \
    --ignore=tests/async/test_async_default_kernels.py --ignore=tests/sync/test_default_kernels.py \
    --ignore=tests/async/test_async_systemd.py --ignore=tests/sync/test_systemd.py \
    -k "not ($not_python)" "$@"
