#!/usr/bin/env bash
# Bring up bubblewrap for the local backend's sandbox (isolation="bwrap").
#
#   1. install Debian's bubblewrap when `bwrap` is missing;
#   2. prove it: start a sandbox the way the backend does (a read-only host
#      root, fresh /dev, /proc and /tmp, its own pid, network, IPC and UTS
#      namespaces, no capabilities) and check, inside, that the host's
#      network and processes are gone and the root is read-only.
#
# Idempotent: a second run costs one `command -v` and one sandbox start.
# Needs root to install; the check runs as whoever calls it (unprivileged
# users need user namespaces: sysctl user.max_user_namespaces > 0).
set -euo pipefail

T0=$(date +%s)
log() { echo "[setup-bwrap +$(( $(date +%s) - T0 ))s] $*" >&2; }
die() { log "error: $*"; exit 1; }

if ! command -v bwrap >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "bwrap is missing and installing it needs root"
    log "installing bubblewrap (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null
fi
log "$(bwrap --version)"

python=$(command -v python3 || true)
[ -n "$python" ] || die "no python3 on PATH to check the sandbox with"
check='
import os, socket
assert os.getpid() == 2 and os.getppid() == 1, (os.getpid(), os.getppid())
assert [n for _, n in socket.if_nameindex()] == ["lo"], socket.if_nameindex()
try:
    open("/usr/eager-rt-probe", "w")
except OSError:
    pass
else:
    raise SystemExit("the root is writable")
open("/tmp/ok", "w").write("ok")
print("sandbox ok")
'
out=$(timeout 60 bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --tmpfs /run \
    --unshare-pid --unshare-ipc --unshare-uts --unshare-net --unshare-cgroup-try \
    --cap-drop ALL --die-with-parent --new-session -- "$python" -c "$check" </dev/null 2>&1) \
    || die "bwrap cannot start a sandbox here: $out"
[ "$out" = "sandbox ok" ] || die "unexpected answer from the sandbox: $out"
log "ready: a sandbox starts, with its own pid and network namespaces and a read-only root"
