#!/usr/bin/env bash
# Bring up a Docker engine and the image the Docker backend's tests use,
# without any container registry (none is reachable from CI).
#
#   1. install Debian's docker.io when it is missing;
#   2. start dockerd in the background when no engine answers, with flags a
#      sandboxed machine accepts (no iptables, no bridge: the backend's
#      containers have no network anyway), falling back from the overlay2
#      storage driver to vfs when overlay2 cannot work here;
#   3. build eager-rt-python:local from Debian packages (mmdebstrap, or
#      debootstrap where mmdebstrap is not packaged, makes a minimal root with
#      python3, numpy, pandas and matplotlib; then `docker import`), unless an
#      image built from the same recipe is already there.
#
# Idempotent: a second run costs a `docker info` and an image inspect.
# Runs as root on Debian. Environment:
#   EAGER_RT_LOCAL_IMAGE   tag to build (default eager-rt-python:local)
#   EAGER_RT_DEBIAN_SUITE  suite to build from (default: this host's, else bookworm)
#   EAGER_RT_DEBIAN_MIRROR mirror (default: the one apt uses here, else deb.debian.org)
#   EAGER_RT_DOCKERD_WAIT  seconds to wait for a daemon we start (default 60)
#   EAGER_RT_DOCKERD_LOG   where a daemon we start logs (default /var/log/eager-rt-dockerd.log)
set -euo pipefail

IMAGE="${EAGER_RT_LOCAL_IMAGE:-eager-rt-python:local}"
WAIT="${EAGER_RT_DOCKERD_WAIT:-60}"
DOCKERD_LOG="${EAGER_RT_DOCKERD_LOG:-/var/log/eager-rt-dockerd.log}"
PACKAGES="python3-munkres python3-numpy python3-pandas python3-matplotlib"
# bump when the build below changes in a way the image should follow
RECIPE_VERSION=1

T0=$(date +%s)
APT_UPDATED=""
log() { echo "[setup-docker +$(( $(date +%s) - T0 ))s] $*" >&2; }
die() { log "error: $*"; exit 1; }

engine_answers() { timeout 15 docker info >/dev/null 2>&1; }

# --------------------------------------------------------------------- packages

missing=()
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "need root to install ${missing[*]}"
    log "installing ${missing[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    APT_UPDATED=yes
    # shellcheck disable=SC2068  # word splitting wanted; duplicates are harmless
    apt-get install -y -qq --no-install-recommends ${missing[@]} ca-certificates >/dev/null
fi

# --------------------------------------------------------------------- engine

start_dockerd() {  # $1: storage driver, or empty for the engine's choice
    local driver_flag=()
    [ -n "$1" ] && driver_flag=(--storage-driver "$1")
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    log "starting dockerd ${1:+with storage driver $1 }(log: $DOCKERD_LOG)"
    # setsid + nohup: the daemon outlives this script and the shell that ran it
    setsid nohup dockerd --iptables=false --ip6tables=false --bridge=none \
        "${driver_flag[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null &
    DOCKERD_PID=$!
    local waited=0
    while [ "$waited" -lt "$WAIT" ]; do
        if engine_answers; then
            log "dockerd answers (pid $DOCKERD_PID, after ${waited}s)"
            return 0
        fi
        if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
            log "dockerd exited; its last words:"
            tail -n 5 "$DOCKERD_LOG" >&2 || true
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "dockerd did not answer within ${WAIT}s; stopping it"
    kill "$DOCKERD_PID" 2>/dev/null || true
    wait "$DOCKERD_PID" 2>/dev/null || true
    return 1
}

# A daemon that answers but cannot run a container (overlay2 unsupported on
# this file system, say) is no use: prove it with a throwaway image holding
# only docker-init, a static binary that docker.io ships.
can_run_container() {
    local init probe tag="eager-rt-probe:$$" ok=1
    init=$(readlink -f "$(command -v docker-init 2>/dev/null || echo /nonexistent)" 2>/dev/null || true)
    if [ -z "$init" ] || [ ! -x "$init" ] || ldd "$init" >/dev/null 2>&1; then
        return 0  # nothing static to probe with: trust the engine
    fi
    probe=$(mktemp -d)
    cp "$init" "$probe/init"
    if tar -C "$probe" -c . | docker import - "$tag" >/dev/null 2>&1; then
        timeout 60 docker run --rm --network none "$tag" /init --version >/dev/null 2>&1 && ok=0
        docker rmi -f "$tag" >/dev/null 2>&1 || true
    fi
    rm -rf "$probe"
    return "$ok"
}

if engine_answers; then
    log "a Docker engine answers already"
else
    [ "$(id -u)" = 0 ] || die "no Docker engine answers and starting one needs root"
    started=""
    for driver in "" vfs; do
        if start_dockerd "$driver"; then
            if can_run_container; then
                started=yes
                break
            fi
            log "dockerd ${driver:-(default driver)} answers but cannot run a container; trying the next driver"
            kill "$DOCKERD_PID" 2>/dev/null || true
            for _ in $(seq 1 30); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
        fi
    done
    [ -n "$started" ] || die "could not start a working dockerd; see $DOCKERD_LOG"
fi
log "engine: $(docker info --format 'server {{.ServerVersion}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}}' 2>/dev/null)"

# --------------------------------------------------------------------- image

suite="${EAGER_RT_DEBIAN_SUITE:-}"
if [ -z "$suite" ]; then
    # shellcheck disable=SC1091
    suite=$( (. /etc/os-release 2>/dev/null && [ "${ID:-}" = debian ] && echo "${VERSION_CODENAME:-}") || true)
    suite="${suite:-bookworm}"
fi
mirror="${EAGER_RT_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
    mirror=$(grep -hoE '^URIs: *http[^ ]*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | sed 's/^URIs: *//' || true)
    [ -n "$mirror" ] || mirror=$(grep -hoE '^deb +http[^ ]*/debian/? ' /etc/apt/sources.list 2>/dev/null | head -n1 | awk '{print $2}' || true)
    mirror="${mirror:-http://deb.debian.org/debian}"
fi

recipe="v$RECIPE_VERSION suite=$suite packages=$PACKAGES"
recipe_hash=$(printf '%s' "$recipe" | sha256sum | cut -c1-16)
current=$(docker image inspect "$IMAGE" --format '{{ index .Config.Labels "eager_rt.recipe" }}' 2>/dev/null || true)
if [ "$current" = "$recipe_hash" ]; then
    log "image $IMAGE is current (recipe $recipe_hash: $recipe)"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "building $IMAGE needs root (a chroot)"
# mmdebstrap fetches in parallel and runs dpkg once: two to three times faster
# than debootstrap + apt, which stays as the fallback
builder=""
for tool in mmdebstrap debootstrap; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        [ -n "$APT_UPDATED" ] || { apt-get update -qq; APT_UPDATED=yes; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$tool" \
            >/dev/null 2>&1 || continue
    fi
    builder="$tool"
    break
done
[ -n "$builder" ] || die "neither mmdebstrap nor debootstrap could be installed"
log "building $IMAGE from Debian $suite via $mirror with $builder (recipe $recipe_hash)"
build=$(mktemp -d /var/tmp/eager-rt-image.XXXXXX)
trap 'rm -rf "$build"' EXIT
root="$build/root"

if [ "$builder" = mmdebstrap ]; then
    # apt's resolver, no Recommends: python3-munkres satisfies python3-fonttools,
    # which would otherwise pull scipy, sympy and a compiler
    mmdebstrap --variant=apt --mode=root \
        --include="python3,${PACKAGES// /,}" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        "$suite" "$root" "$mirror" >"$build/build.log" 2>&1 \
        || { tail -n 20 "$build/build.log" >&2; die "mmdebstrap failed"; }
else
    debootstrap --variant=minbase --include=python3 "$suite" "$root" "$mirror" \
        >"$build/build.log" 2>&1 || { tail -n 20 "$build/build.log" >&2; die "debootstrap failed"; }
    # apt inside the root resolves alternatives the way apt does (debootstrap's
    # own resolver pulls scipy, sympy and a compiler through python3-fonttools)
    log "apt: $PACKAGES"
    chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
        apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 $PACKAGES \
        >"$build/apt.log" 2>&1 || { tail -n 20 "$build/apt.log" >&2; die "apt-get in the image root failed"; }
    chroot "$root" apt-get clean
fi
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/var/log/* "$root"/tmp/* "$root"/root/.cache
# the engine gives every container its own; a copy of the host's would be wrong there
: >"$root/etc/resolv.conf"
: >"$root/etc/hostname"
python_version=$(chroot "$root" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')

# import under a temporary tag: a broken build must not pass for current
candidate="${IMAGE%%:*}:candidate-$$"
log "docker import ($(du -sh "$root" | cut -f1) root, python $python_version)"
tar --numeric-owner -C "$root" -c . | docker import \
    --change "LABEL eager_rt.recipe=$recipe_hash" \
    --change "LABEL eager_rt.python=$python_version" \
    --change "ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 MPLBACKEND=Agg" \
    --change 'CMD ["python3"]' \
    - "$candidate" >/dev/null

log "smoke test: hardened, as the backend runs it"
if ! docker run --rm --network none --read-only --tmpfs /tmp:rw,size=64m,mode=1777 \
    --user 65534:65534 --cap-drop ALL --security-opt no-new-privileges "$candidate" \
    python3 -c 'import numpy, pandas, matplotlib.pyplot; print("numpy", numpy.__version__, "pandas", pandas.__version__, "matplotlib", matplotlib.__version__)' >&2
then
    docker rmi -f "$candidate" >/dev/null 2>&1 || true
    die "the new image cannot import its packages"
fi
docker tag "$candidate" "$IMAGE"
docker rmi "$candidate" >/dev/null
log "built $IMAGE"
