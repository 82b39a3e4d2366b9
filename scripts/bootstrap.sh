#!/usr/bin/env bash
# Idempotent setup of everything dbgbox and its tests need on a Debian 12 machine:
# system packages (Slurm and munge for the sandbox's scheduler too), a running Docker engine, and
# a local base image (there is no registry).
# Safe to run again: each step checks before it acts.
set -euo pipefail

BASE_IMAGE="${DBGBOX_BASE_IMAGE:-dbgbox-base/debian:bookworm}"
SUITE="${DBGBOX_BASE_SUITE:-bookworm}"
# gdb: the thread stacks of a hung test run (scripts/bounded.sh).
PACKAGES=(libssh2-1-dev openssh-client openssh-server docker.io debootstrap iproute2 iptables procps psmisc util-linux python3-minimal
  slurmctld slurmd slurm-client munge gdb)

# The Debian mirror this machine's apt already uses (deb822 or one-line sources).
apt_mirror() {
  local uri
  uri="$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  [ -n "$uri" ] || uri="$(awk '$1=="deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  [ -n "$uri" ] || { echo "bootstrap: no Debian mirror found in /etc/apt sources" >&2; exit 1; }
  printf '%s\n' "$uri"
}
log() { printf 'bootstrap: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The sandbox has no NVIDIA runtime: register a runtime named `nvidia` that is plain runc, so
# `--gpu-runtime nvidia` runs end to end (the container gets NVIDIA_VISIBLE_DEVICES, no device).
# Only where no NVIDIA container toolkit is installed (a real GPU node configures the real one) and
# only into a daemon.json of our own; dockerd reads it when it starts.
DAEMON_JSON=/etc/docker/daemon.json
if ! command -v nvidia-container-runtime >/dev/null 2>&1; then
  if [ ! -e "$DAEMON_JSON" ]; then
    as_root mkdir -p /etc/docker
    printf '%s\n' '{' '  "runtimes": { "nvidia": { "path": "runc" } }' '}' | as_root tee "$DAEMON_JSON" >/dev/null
    log "wrote $DAEMON_JSON: runtime nvidia = runc (the sandbox's stand-in)"
  elif ! grep -q '"nvidia"' "$DAEMON_JSON"; then
    log "$DAEMON_JSON has no runtime named nvidia: add \"runtimes\": {\"nvidia\": {\"path\": \"runc\"}} for the sandbox's --gpu-runtime nvidia tests"
  fi
fi

# A Docker engine: use one that answers, else start dockerd and wait for its socket.
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  as_root mkdir -p /var/log
  as_root sh -c 'nohup /usr/sbin/dockerd >/var/log/dbgbox-dockerd.log 2>&1 &'
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /var/log/dbgbox-dockerd.log"; exit 1; }
fi
has_nvidia_runtime() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"nvidia"'; }
if ! has_nvidia_runtime && [ -e "$DAEMON_JSON" ] && grep -q '"nvidia"' "$DAEMON_JSON"; then
  # Started before daemon.json had it: runtimes are among what dockerd reloads on SIGHUP (no
  # restart, running containers stay).
  log "dockerd runs without the runtime nvidia of $DAEMON_JSON: reloading its configuration (SIGHUP)"
  as_root pkill -HUP -x dockerd || true
  for _ in $(seq 1 20); do has_nvidia_runtime && break; sleep 0.25; done
fi
if ! has_nvidia_runtime; then
  log "dockerd runs without a runtime named nvidia: add it to $DAEMON_JSON and restart dockerd; the --gpu-runtime nvidia tests need it"
fi

# The local base image: debootstrap minbase piped into docker import, built once.
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "building $BASE_IMAGE with debootstrap (a few minutes, once)"
  root="$(mktemp -d /tmp/dbgbox-rootfs.XXXXXX)"
  trap 'as_root rm -rf "$root"' EXIT
  as_root debootstrap --variant=minbase "$SUITE" "$root" "$(apt_mirror)" >/tmp/dbgbox-debootstrap.log 2>&1 \
    || { log "debootstrap failed; see /tmp/dbgbox-debootstrap.log"; exit 1; }
  as_root rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  as_root tar -C "$root" -c . | docker import - "$BASE_IMAGE" >/dev/null
  log "built $BASE_IMAGE"
fi
log "ready"
