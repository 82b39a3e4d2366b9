#!/usr/bin/env bash
# The main job on an embedded default: a local sandbox cluster, narrated.
#
#   laptop (netns)  →  login host (netns)  →  node (this machine, with dockerd)  →  container
#
# scripts/testbed.sh makes the three hosts (ip netns + veth, one throwaway OpenSSH sshd per host).
# Then, from the laptop namespace and as an ordinary user (cluster users are never root):
#   1. dbgbox keygen, then dbgbox key install on the login host. That first login uses the sandbox's
#      own key for the demo user (a real cluster asks for your password there); from then on every
#      hop logs in with ~/.ssh/id_dbgbox alone, through the demo's own ssh config for the two hosts
#   2. dbgbox image create on the node, through the libssh2 chain (the base plus python3)
#   3. dbgbox up --scheduler slurm --gpus 1: a job on the sandbox's real Slurm runs the container on
#      the node it gets, with the job's GPU; pinned host key, detached tunnel, Host block
#   4. ssh dbgbox-<name>: the job's GPU variables (NVIDIA_VISIBLE_DEVICES, SLURM_JOB_ID) and python3
#   5. dbgbox status (the job's state and time left), dbgbox ide pycharm <name>
#   6. dbgbox down (cancels the job), and a check that no job, container or trace is left
#   7. the same without a scheduler, on a node given by hand: dbgbox up --node … --gpu none, ssh, down
# Run as root on a fresh Debian 12 machine: it installs what it needs. Idempotent; it removes what
# it started (the sandbox too, unless it was already up).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (the sandbox needs network namespaces): sudo bash scripts/demo.sh" >&2; exit 1; }

bash scripts/bootstrap.sh
DEMO_USER="${DBGBOX_DEMO_USER:-dbgdemo}"
if ! id "$DEMO_USER" >/dev/null 2>&1; then
  say "creating the demo user $DEMO_USER (cluster users are never root)"
  useradd --create-home --shell /bin/bash "$DEMO_USER"
fi
usermod -p '*' "$DEMO_USER"            # a usable account without a password (sshd refuses locked ones)
getent group docker >/dev/null || groupadd docker
usermod -aG docker "$DEMO_USER"
DEMO_HOME="$(getent passwd "$DEMO_USER" | cut -d: -f6)"

# DBGBOX_DEMO_BIN: an installed dbgbox to use (its templates beside it, as install.sh puts them)
# instead of building and installing one under DBGBOX_PREFIX (the test of this demo does so).
if [ -n "${DBGBOX_DEMO_BIN:-}" ]; then
  [ -x "$DBGBOX_DEMO_BIN" ] || { echo "demo: DBGBOX_DEMO_BIN=$DBGBOX_DEMO_BIN is not an executable: install dbgbox with scripts/install.sh, or unset it" >&2; exit 1; }
  DBGBOX="$DBGBOX_DEMO_BIN"
else
  PREFIX="${DBGBOX_PREFIX:-/opt/dbgbox}"
  bash scripts/install.sh --prefix "$PREFIX"
  DBGBOX="$PREFIX/bin/dbgbox"
fi

started_bed=0
DBGBOX_TEST_USER="$DEMO_USER" bash scripts/testbed.sh status >/dev/null 2>&1 || started_bed=1
say "the sandbox cluster: laptop → login → node (scripts/testbed.sh up)"
# (Already up for the tests' user: this adds the demo user to it, and leaves it up at the end.)
eval "$(DBGBOX_TEST_USER="$DEMO_USER" bash scripts/testbed.sh up)"

# Everything below runs in the laptop namespace as the demo user.
laptop() {
  ip netns exec "$TB_LAPTOP_NS" setpriv --reuid="$DEMO_USER" --regid="$DEMO_USER" --init-groups \
    env -i HOME="$DEMO_HOME" USER="$DEMO_USER" LOGNAME="$DEMO_USER" LANG=C.UTF-8 TERM="${TERM:-dumb}" \
    PATH="$(dirname "$DBGBOX"):/usr/local/bin:/usr/bin:/bin" "$@"
}
# The two hosts as a user would write them in ~/.ssh/config, with the key dbgbox keygen makes
# (the demo keeps them in a file of its own and passes -F). The host keys are the sandbox's, as
# known_hosts holds them after a first login.
HOSTS="$DEMO_HOME/.ssh/dbgbox-demo-hosts"
HOPS=(-F "$HOSTS" --login sandbox-login --node sandbox-node)

NAME=""
finish() {
  status=$?
  if [ -n "$NAME" ]; then laptop "$DBGBOX" down "$NAME" >/dev/null 2>&1 || true; fi
  rm -f "$HOSTS"
  if [ "$started_bed" -eq 1 ]; then DBGBOX_TEST_USER="$DEMO_USER" bash "$REPO/scripts/testbed.sh" down >/dev/null 2>&1 || true; fi
  exit "$status"
}
trap finish EXIT

say "0. the laptop cannot reach the node directly"
if laptop bash -c "exec 3<>/dev/tcp/$TB_NODE_ADDR/22" 2>/dev/null; then
  echo "demo: the laptop reached the node directly; the sandbox is wrong" >&2; exit 1
fi
echo "connect to $TB_NODE_ADDR:22 from the laptop: refused, as on a real cluster"

say "1. a key pair for the container (ed25519, ~/.ssh/id_dbgbox)"
if [ -f "$DEMO_HOME/.ssh/id_dbgbox" ]; then echo "key exists, reusing it"; else laptop "$DBGBOX" keygen; fi

say "1b. dbgbox key install: append ~/.ssh/id_dbgbox.pub to ~/.ssh/authorized_keys on the login host"
echo "(this first login uses the sandbox's own key for $DEMO_USER; on a real cluster dbgbox asks for your password here)"
laptop "$DBGBOX" key install -F "$TB_SSH_CONFIG" --login tb-login --known-hosts "$TB_KNOWN_HOSTS"

say "1c. from here on, login and node accept ~/.ssh/id_dbgbox alone (the home is shared, as on a cluster)"
{
  for host in login node; do
    if [ "$host" = login ]; then addr="$TB_LOGIN_ADDR"; port="$TB_LOGIN_PORT"; else addr="$TB_NODE_ADDR"; port="$TB_NODE_PORT"; fi
    # The node also under its address: where a job lands, Slurm names it and dbgbox connects to its NodeAddr.
    alias="sandbox-$host"; [ "$host" = node ] && alias="sandbox-node $TB_NODE_ADDR"
    printf 'Host %s\n  HostName %s\n  Port %s\n  User %s\n  IdentityFile ~/.ssh/id_dbgbox\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n' \
      "$alias" "$addr" "$port" "$DEMO_USER" "$TB_KNOWN_HOSTS"
  done
} >"$HOSTS"
chown "$DEMO_USER:" "$HOSTS"; chmod 0600 "$HOSTS"
sed 's/^/    /' "$HOSTS"
laptop ssh -F "$HOSTS" -o BatchMode=yes sandbox-login 'echo "logged in to the login host as $(id -un) with ~/.ssh/id_dbgbox"'

say "2. the image, built on the node through login → node (dbgbox image create --login --node)"
printf '%s\n' 'RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*' \
  > "$DEMO_HOME/.dbgbox-demo-python.Dockerfile"
chown "$DEMO_USER:" "$DEMO_HOME/.dbgbox-demo-python.Dockerfile"
laptop "$DBGBOX" image create "${HOPS[@]}" --base dbgbox-base/debian:bookworm \
  --append "$DEMO_HOME/.dbgbox-demo-python.Dockerfile" >/dev/null
rm -f "$DEMO_HOME/.dbgbox-demo-python.Dockerfile"
echo "built $DEMO_USER/ssh:latest on the node"

# On the login host as the demo user, from the home directory (as an ssh session runs there).
on_login() {
  ip netns exec "$TB_LOGIN_NS" setpriv --reuid="$DEMO_USER" --regid="$DEMO_USER" --init-groups \
    env -i HOME="$DEMO_HOME" USER="$DEMO_USER" PATH=/usr/bin:/bin sh -c 'cd && exec "$@"' sh "$@"
}

say "3. dbgbox up --scheduler slurm --gpus 1 (sbatch on the login host; the job runs the container on its node)"
echo "(--gpu-runtime nvidia: the sandbox's docker has a runtime of that name that is plain runc; a real GPU node has the NVIDIA toolkit)"
start=$(date +%s.%N)
out="$(laptop "$DBGBOX" up -F "$HOSTS" --login sandbox-login --scheduler slurm --gpus 1 --time 30m --gpu-runtime nvidia)"
end=$(date +%s.%N)
echo "$out"
NAME="$(sed -nE 's/.*ssh dbgbox-([A-Za-z0-9_.-]+).*/\1/p' <<<"$out" | head -n 1)"
JOB="$(sed -nE 's/^job +([0-9]+) .*/\1/p' <<<"$out" | head -n 1)"
[ -n "$NAME" ] && [ -n "$JOB" ] || { echo "demo: could not find the session name and job in up's output" >&2; exit 1; }
awk -v s="$start" -v e="$end" 'BEGIN { printf "up took %.1f s\n", e - s }'
on_login squeue --me

say "4. ssh dbgbox-$NAME: the job's GPU as the container sees it, and python3"
laptop ssh -o BatchMode=yes "dbgbox-$NAME" 'echo "NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES SLURM_JOB_ID=$SLURM_JOB_ID SLURM_JOB_GPUS=$SLURM_JOB_GPUS"'
laptop ssh -o BatchMode=yes "dbgbox-$NAME" python3 -c "'import os; print(os.getcwd())'"
echo "scontrol show job -d $JOB: $(on_login scontrol show job -d "$JOB" | grep -o 'GRES=[^ ]*' | tail -n 1)"

say "5. dbgbox status, and what PyCharm needs"
laptop "$DBGBOX" status
laptop "$DBGBOX" ide pycharm "$NAME" || true

say "6. dbgbox down (cancels job $JOB, waits until its container is gone)"
laptop "$DBGBOX" down "$NAME"
N="$NAME"; NAME=""

say "check: no job, container or trace of session $N is left"
left=0
nothing_left() { # NAME [JOB]
  docker ps -a --format '{{.Names}}' | grep -qx "$1" && { echo "left: container $1"; left=1; }
  pgrep -u "$DEMO_USER" -f "dbgbox tunnel" >/dev/null && { echo "left: a tunnel process"; left=1; }
  grep -qs "dbgbox-$1" "$DEMO_HOME/.ssh/dbgbox/config" && { echo "left: the Host block"; left=1; }
  grep -qs "dbgbox-$1" "$DEMO_HOME/.ssh/dbgbox/known_hosts" && { echo "left: the pinned host key"; left=1; }
  if [ -n "${2:-}" ]; then
    # A cancelled job is COMPLETING for a moment (its processes end), then leaves the queue.
    for _ in $(seq 1 60); do on_login squeue -h --me -o %i | grep -qx "$2" || break; sleep 0.5; done
    on_login squeue -h --me -o %i | grep -qx "$2" && { echo "left: job $2"; left=1; }
    ls "$DEMO_HOME" | grep -q "^dbgbox-job-$2" && { echo "left: the job's output file"; left=1; }
  fi
  return 0
}
nothing_left "$N" "$JOB"
[ "$left" -eq 0 ] || exit 1
echo "nothing left: no job, no container, no tunnel, no Host block, no pinned key, no output file"

say "7. without a scheduler: dbgbox up on a node given by hand (--node sandbox-node --gpu none --port auto)"
out="$(laptop "$DBGBOX" up "${HOPS[@]}" --gpu none --port auto)"
echo "$out"
NAME="$(sed -nE 's/.*ssh dbgbox-([A-Za-z0-9_.-]+).*/\1/p' <<<"$out" | head -n 1)"
[ -n "$NAME" ] || { echo "demo: could not find the session name in up's output" >&2; exit 1; }
laptop ssh -o BatchMode=yes "dbgbox-$NAME" 'echo "in $(hostname), no job: SLURM_JOB_ID=${SLURM_JOB_ID:-none}"'
laptop "$DBGBOX" down "$NAME"
N="$NAME"; NAME=""
nothing_left "$N"
[ "$left" -eq 0 ] || exit 1
echo "nothing left: no container, no tunnel, no Host block, no pinned key"
say "done"
