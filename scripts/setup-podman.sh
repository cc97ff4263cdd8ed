#!/usr/bin/env bash
# Bring up rootful Podman and the image the Podman backend's tests use,
# without any container registry (none is reachable from CI).
#
#   1. install Debian's podman (and catatonit, the init `podman run --init`
#      uses) when missing;
#   2. write a containers.conf drop-in so rootful Podman can start containers
#      on a machine like these: `default_ulimits = []` (Podman otherwise sets
#      RLIMIT_NOFILE and friends on every container, and where raising rlimits
#      is not permitted runc fails with "error setting rlimit type 7"), and,
#      without systemd, the cgroupfs cgroup manager and a file events logger.
#      No network configuration: the backend's containers run --network=none;
#   3. copy the Docker test image into Podman's store (`docker save | podman
#      load`) unless the same image id is there already. The image comes from
#      scripts/setup-docker.sh, so run that first (.ci/run does);
#   4. prove it: start the image hardened, as the backend does, and import
#      numpy, pandas and matplotlib. Where the overlay storage driver cannot
#      run a container here, fall back to vfs (this resets Podman's store).
#
# Idempotent: a second run costs two image inspects and one container start.
# Runs as root on Debian. Environment:
#   EAGER_RT_LOCAL_IMAGE   tag to copy from Docker (default eager-rt-python:local)
#   EAGER_RT_PODMAN_CONF   the drop-in written (default
#                          /etc/containers/containers.conf.d/50-eager-rt.conf)
set -euo pipefail

IMAGE="${EAGER_RT_LOCAL_IMAGE:-eager-rt-python:local}"
CONF="${EAGER_RT_PODMAN_CONF:-/etc/containers/containers.conf.d/50-eager-rt.conf}"
STORAGE_CONF=/etc/containers/storage.conf

T0=$(date +%s)
log() { echo "[setup-podman +$(( $(date +%s) - T0 ))s] $*" >&2; }
die() { log "error: $*"; exit 1; }

# --------------------------------------------------------------------- packages

missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
[ -x /usr/libexec/podman/catatonit ] || command -v catatonit >/dev/null 2>&1 || missing+=(catatonit)
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "need root to install ${missing[*]}"
    log "installing ${missing[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # no Recommends: buildah, slirp4netns, fuse-overlayfs and uidmap serve
    # rootless use and networking, neither of which the backend needs
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
log "$(podman --version)"

# --------------------------------------------------------------------- configuration

# rootful: the configuration below is the system's, and the store is /var/lib/containers
[ "$(id -u)" = 0 ] || die "rootful Podman needs root (the backend's tests run it as root)"

wanted="# Written by eager_rt's scripts/setup-podman.sh (rootful Podman for its backend).
[containers]
# no rlimits set on containers: raising them is not permitted on every machine
default_ulimits = []"
if [ ! -d /run/systemd/system ]; then
    wanted="$wanted
[engine]
# no systemd here: cgroups by hand, events to a file
cgroup_manager = \"cgroupfs\"
events_logger = \"file\""
fi
if [ "$(cat "$CONF" 2>/dev/null || true)" != "$wanted" ]; then
    mkdir -p "$(dirname "$CONF")"
    printf '%s\n' "$wanted" >"$CONF.tmp"
    mv "$CONF.tmp" "$CONF"
    log "wrote $CONF"
else
    log "$CONF is current"
fi
timeout 60 podman info >/dev/null 2>&1 || die "podman info fails: $(timeout 60 podman info 2>&1 | tail -n 3)"

# --------------------------------------------------------------------- image

docker_id() { timeout 30 docker image inspect "$IMAGE" --format '{{.Id}}' 2>/dev/null | sed 's/^sha256://'; }
podman_id() { podman image inspect "$IMAGE" --format '{{.Id}}' 2>/dev/null || true; }

load_image() {
    local want
    want=$(docker_id || true)
    if [ -z "$want" ]; then
        [ -n "$(podman_id)" ] || die "no $IMAGE in Docker to copy; run scripts/setup-docker.sh first"
        log "Docker has no $IMAGE; keeping Podman's copy"
        return 0
    fi
    if [ "$(podman_id)" = "$want" ]; then
        log "image $IMAGE is current in Podman (id ${want:0:12})"
        return 0
    fi
    log "copying $IMAGE from Docker into Podman (id ${want:0:12})"
    docker save "$IMAGE" | podman load -q >/dev/null
    [ "$(podman_id)" = "$want" ] || die "podman load did not produce $IMAGE with id ${want:0:12}"
}

# the backend's hardening, so what fails here would fail there
smoke_test() {
    timeout 120 podman run --rm -i --init --network=none --read-only --read-only-tmpfs=false \
        --tmpfs /work:rw,size=64m,mode=0700,U --tmpfs /tmp:rw,size=64m,mode=1777 \
        --user 65534:65534 --cap-drop=all --security-opt no-new-privileges \
        --memory 1g --memory-swap 1g --pids-limit 256 --cpus 1 --log-driver=none \
        -w /work -e HOME=/work -e MPLCONFIGDIR=/tmp/matplotlib "$IMAGE" \
        python3 -c 'import numpy, pandas, matplotlib.pyplot; print("numpy", numpy.__version__, "pandas", pandas.__version__, "matplotlib", matplotlib.__version__)' \
        </dev/null
}

load_image
log "smoke test: hardened, as the backend runs it"
if ! smoke_test >&2; then
    driver=$(podman info --format '{{.Store.GraphDriverName}}' 2>/dev/null || true)
    [ "$driver" = overlay ] || die "podman cannot run $IMAGE (storage driver ${driver:-unknown})"
    log "overlay cannot run a container here; switching Podman's store to vfs (resets it)"
    podman system reset --force >/dev/null 2>&1 || true
    printf '%s\n' '# Written by eager_rt'"'"'s scripts/setup-podman.sh: overlay cannot run containers here.' \
        '[storage]' 'driver = "vfs"' 'runroot = "/run/containers/storage"' \
        'graphroot = "/var/lib/containers/storage"' >"$STORAGE_CONF"
    load_image
    smoke_test >&2 || die "podman cannot run $IMAGE with the vfs driver either"
fi
log "ready: $(podman info --format 'podman {{.Version.Version}}, storage {{.Store.GraphDriverName}}, cgroup {{.Host.CgroupsVersion}} via {{.Host.CgroupManager}}')"
