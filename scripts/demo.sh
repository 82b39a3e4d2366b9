#!/usr/bin/env bash
# The whole node-side flow on this machine, narrated, as an ordinary user in the docker group:
#   keygen → image create → container create → ssh in → cleanup
# Run as root on a fresh Debian 12 machine (it installs what it needs and makes a demo user),
# or as a user in the docker group. Idempotent; it removes what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ "$(id -u)" -eq 0 ]; then
  bash scripts/bootstrap.sh
  DEMO_USER="${DBGBOX_DEMO_USER:-dbgdemo}"
  if ! id "$DEMO_USER" >/dev/null 2>&1; then
    say "creating the demo user $DEMO_USER (cluster users are never root)"
    useradd --create-home --shell /bin/bash "$DEMO_USER"
  fi
  usermod -p '*' "$DEMO_USER"            # usable account, no password
  getent group docker >/dev/null || groupadd docker
  usermod -aG docker "$DEMO_USER"
  PREFIX=/opt/dbgbox
  bash scripts/install.sh --prefix "$PREFIX"
  # Re-run this script as the demo user, with the installed binary.
  exec runuser -u "$DEMO_USER" -- env -i HOME="$(getent passwd "$DEMO_USER" | cut -d: -f6)" \
    USER="$DEMO_USER" LOGNAME="$DEMO_USER" PATH="$PREFIX/bin:/usr/local/bin:/usr/bin:/bin" \
    TERM="${TERM:-dumb}" DBGBOX_BASE_IMAGE="${DBGBOX_BASE_IMAGE:-dbgbox-base/debian:bookworm}" \
    bash "$PWD/scripts/demo.sh"
fi

command -v dbgbox >/dev/null || { echo "demo: dbgbox is not on PATH: run scripts/install.sh, or run this script as root" >&2; exit 1; }
BASE="${DBGBOX_BASE_IMAGE:-dbgbox-base/debian:bookworm}"
NAME=""
finish() {
  if [ -n "$NAME" ]; then
    say "cleanup: container, pinned host key, known_hosts entries"
    dbgbox cleanup --container "$NAME" || true
  fi
}
trap finish EXIT

say "1. a key pair for dbgbox (ed25519, ~/.ssh/id_dbgbox)"
if [ -f "$HOME/.ssh/id_dbgbox" ]; then echo "key exists, reusing it"; else dbgbox keygen; fi

say "2. an image that adds a key-only sshd for $USER to $BASE"
dbgbox image create --base "$BASE"

say "3. a container with a checked port on 127.0.0.1, your home mounted, a 1h TTL"
json="$(dbgbox container create --gpu none --port auto --ttl 1h --json)"
echo "$json"
NAME="$(sed -E 's/.*"name" *: *"([^"]+)".*/\1/' <<<"$json")"
PORT="$(sed -E 's/.*"port" *: *([0-9]+).*/\1/' <<<"$json")"

say "4. ssh in with strict host key checking against the pinned key"
ssh -p "$PORT" -i "$HOME/.ssh/id_dbgbox" -o IdentitiesOnly=yes -o BatchMode=yes \
  -o HostKeyAlias="dbgbox-$NAME" -o UserKnownHostsFile="$HOME/.ssh/dbgbox/known_hosts" \
  -o StrictHostKeyChecking=yes "$USER@127.0.0.1" \
  'echo "inside $(hostname) as $(id -un) ($(id -u):$(id -g)), home $HOME"; ls -ld "$HOME"'

say "5. cleanup"
dbgbox cleanup --container "$NAME"
NAME=""
left="$(docker ps -a --filter "label=dbgbox.owner=$USER" -q | wc -l)"
[ "$left" -eq 0 ] || { echo "demo: $left container(s) of $USER left behind" >&2; exit 1; }
grep -q "dbgbox-" "$HOME/.ssh/dbgbox/known_hosts" 2>/dev/null && { echo "demo: a pinned key was left" >&2; exit 1; }
say "done: nothing of this session is left"
