#!/usr/bin/env bash
# The chained-tunnel testbed: three "hosts" on this machine, each with its own OpenSSH sshd.
#
#   laptop (netns dbgbox-laptop)  --veth-->  login (netns dbgbox-login)  --veth-->  node (root netns)
#   198.18.1.1/24                            198.18.1.2/24 | 198.18.2.2/24          198.18.2.1/24
#
# - laptop reaches only login (one connected /24, no default route);
# - login reaches laptop and node, and does not forward between them (ip_forward=0 there);
# - node is the root namespace, where dockerd runs and containers publish on 127.0.0.1:PORT.
#   Its sshd listens only on 198.18.2.1:22, which only login can reach.
# All addresses are in 198.18.0.0/15 (RFC 2544 benchmarking) and exist only on these veths.
#
# A real Slurm (Debian's 22.05: slurmctld, slurmd, munge) runs on these hosts, as on a cluster:
# - slurmctld on login (in the login namespace, and in a UTS namespace of its own whose hostname
#   is dbgbox-login, the SlurmctldHost), listening on 198.18.2.2:6817;
# - slurmd for the node dbgbox-node (`slurmd -N dbgbox-node`, NodeAddr 198.18.2.1) in the root
#   namespace, where dockerd runs, so batch jobs run docker as their user (docker group);
# - one munged (its socket is a file: every namespace reaches it), one key (0400 munge);
# - four fake GPUs: gres.conf `Name=gpu File=/dev/nvidia[0-3]` (AutoDetect=off) over character
#   devices 195:0-3 that `up` makes when absent (and `down` removes again), so jobs get
#   SLURM_JOB_GPUS and CUDA_VISIBLE_DEVICES as on a GPU node;
# - partitions: `gpu` (default, the node with its 4 GPUs, MaxTime 1 day) and `pending`, which is
#   State=DOWN: it queues jobs and never starts them (reason PartitionDown), for tests of a job
#   that waits;
# - /etc/slurm/slurm.conf and gres.conf (the default paths, so sbatch/squeue/scontrol/scancel/srun
#   work for every user on login without SLURM_CONF); state, spool, logs under $STATE/slurm.
# One Slurm serves every test user (it is one cluster). `down` stops slurmd, slurmctld and the
# munged it started, and removes the config files it wrote.
#
# Usage (root):
#   scripts/testbed.sh up        bring everything up (idempotent: repairs what is missing), print env
#   scripts/testbed.sh env       print the env of a running testbed (KEY=value lines, shell-sourceable)
#   scripts/testbed.sh status    print what is up; exit 0 when all of it is (Slurm included)
#   scripts/testbed.sh down      remove everything up added (safe when nothing is up)
#   scripts/testbed.sh link down|up          set the laptop-side veth down / up
#   scripts/testbed.sh silence on|off        drop (not refuse) every packet between laptop and login
#   scripts/testbed.sh kill-login-sessions   kill login sshd's per-connection processes, keep its listener
#
# The hosts are shared by every user `up` ran for (DBGBOX_TEST_USER, default dbgtest for the tests;
# the demo uses its own user). Each user gets a directory in the state dir (DBGBOX_TESTBED_DIR,
# default /run/dbgbox-testbed): users/USER/ holds ed25519/RSA/"wrong" keys, the authorized_keys the
# sshds read for that user, an ssh config with the aliases, and the env. `up` for a second user adds
# that directory and touches neither the hosts nor the first user's files, so the demo and the tests
# can share one running testbed.
# Both sshds take a user's keys from users/%u/authorized_keys and, as on a real cluster, from the
# user's own ~/.ssh/authorized_keys (login and node share the home), so a key that
# `dbgbox key install` added logs in. StrictModes is on. For `--node-via exec` (login runs
# `ssh -W NODE:22 NODE` as the user) a marked Host block for the node address is put at the top of
# the user's ~/.ssh/config; `down` removes exactly those bytes, for every user.
#
# Use from a shell: eval "$(sudo scripts/testbed.sh up)"
#   (or: set -a; . /run/dbgbox-testbed/users/dbgtest/env; set +a)
set -euo pipefail

LAPTOP_NS=dbgbox-laptop
LOGIN_NS=dbgbox-login
LAPTOP_IF=dbgbox-lap0     # in laptop, peer of LOGIN_IF_L
LOGIN_IF_L=dbgbox-lin0    # in login, facing laptop
LOGIN_IF_N=dbgbox-lin1    # in login, facing node
NODE_IF=dbgbox-node0      # in the root ns, facing login
LAPTOP_ADDR=198.18.1.1
LOGIN_ADDR=198.18.1.2     # login as the laptop sees it
LOGIN_NODE_SIDE_ADDR=198.18.2.2
NODE_ADDR=198.18.2.1      # node as login sees it
PREFIX_LEN=24
LOGIN_PORT=22
NODE_PORT=22

STATE="${DBGBOX_TESTBED_DIR:-/run/dbgbox-testbed}"
TB_USER="${DBGBOX_TEST_USER:-dbgtest}"
MARK_BEGIN="# >>> dbgbox testbed (scripts/testbed.sh; \`testbed.sh down\` removes this block) >>>"
MARK_END="# <<< dbgbox testbed <<<"

log() { printf 'testbed: %s\n' "$*" >&2; }
die() { printf 'testbed: error: %s\n' "$*" >&2; exit 1; }

case "$STATE" in
  /*) ;;
  *) die "DBGBOX_TESTBED_DIR must be an absolute path: $STATE" ;;
esac
[[ "$STATE" =~ ^/[A-Za-z0-9._/-]+$ ]] || die "DBGBOX_TESTBED_DIR may hold only [A-Za-z0-9._/-]: $STATE"
[ "$STATE" != / ] || die "DBGBOX_TESTBED_DIR must not be /"
[[ "$TB_USER" =~ ^[A-Za-z0-9_][A-Za-z0-9._-]*$ ]] || die "DBGBOX_TEST_USER is not a user name: $TB_USER"

require_root() { [ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces, sshd)"; }
require_tools() {
  local t
  for t in ip ss ssh ssh-keygen /usr/sbin/sshd getent flock; do
    command -v "$t" >/dev/null 2>&1 || die "missing $t: run scripts/bootstrap.sh (iproute2, openssh-server)"
  done
}

# Serialize every command on one machine-wide lock file: concurrent up/down never interleave, also
# between copies of this script in different checkouts (the hosts are the machine's, not the copy's).
mkdir -p /run/lock
exec 9>>/run/lock/dbgbox-testbed.lock
flock 9

# The file `ip netns add` creates (and refuses to create again): the same test it makes. (A listing
# piped into grep -q once said "absent" for a namespace whose file was there, and the add failed.)
ns_exists() { [ -e "/run/netns/$1" ]; }
in_ns() { local ns="$1"; shift; ip netns exec "$ns" "$@"; }
link_exists() { # [ns] ifname
  if [ -n "$1" ]; then in_ns "$1" ip link show dev "$2" >/dev/null 2>&1; else ip link show dev "$2" >/dev/null 2>&1; fi
}

user_home() { getent passwd "$TB_USER" | cut -d: -f6; }
user_group() { id -gn "$TB_USER"; }
# The user's own directory in the state dir: keys, authorized_keys, ssh config, env, records.
user_dir() { printf '%s/users/%s' "$STATE" "$TB_USER"; }

# --- sshd processes -------------------------------------------------------------------------------

sshd_config_path() { printf '%s/%s/sshd_config' "$STATE" "$1"; }
sshd_pid_path() { printf '%s/%s/sshd.pid' "$STATE" "$1"; }

# The pid of the running listener of host $1 (login|node), from its PidFile, checked against its
# command line so a stale pid never names someone else's process.
sshd_pid() {
  local pidfile pid cfg
  pidfile="$(sshd_pid_path "$1")"; cfg="$(sshd_config_path "$1")"
  [ -s "$pidfile" ] || return 1
  pid="$(tr -dc '0-9' <"$pidfile")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-f $cfg" || return 1
  printf '%s\n' "$pid"
}

# All descendants of pid $1 (children first collected breadth-first).
descendants() {
  local queue=("$1") out=() p c
  while [ "${#queue[@]}" -gt 0 ]; do
    p="${queue[0]}"; queue=("${queue[@]:1}")
    for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do out+=("$c"); queue+=("$c"); done
  done
  [ "${#out[@]}" -eq 0 ] || printf '%s\n' "${out[@]}"
}

kill_pids() { # signal pid...
  local sig="$1"; shift
  [ "$#" -gt 0 ] || return 0
  kill "-$sig" "$@" 2>/dev/null || true
}

# Whether pid $1 runs (a zombie does not: this machine's pid 1 may never reap it).
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [ "${stat%% *}" != Z ]
}

wait_gone() { # pid...
  local p i
  for i in $(seq 1 50); do
    local alive=0
    for p in "$@"; do if alive "$p"; then alive=1; fi; done
    [ "$alive" -eq 0 ] && return 0
    sleep 0.1
  done
  kill_pids KILL "$@"
}

stop_sshd() { # host
  local pid kids
  pid="$(sshd_pid "$1")" || return 0
  kids="$(descendants "$pid")"
  # shellcheck disable=SC2086
  kill_pids TERM "$pid" $kids
  # shellcheck disable=SC2086
  wait_gone "$pid" $kids
}

listening() { # ns(or "") addr port
  local out
  if [ -n "$1" ]; then out="$(in_ns "$1" ss -Hltn "src $2:$3" 2>/dev/null || true)"
  else out="$(ss -Hltn "src $2:$3" 2>/dev/null || true)"; fi
  [ -n "$out" ]
}

start_sshd() { # host ns(or "") addr port
  local host="$1" ns="$2" addr="$3" port="$4" cfg log i
  cfg="$(sshd_config_path "$host")"; log="$STATE/$host/sshd.log"
  /usr/sbin/sshd -t -f "$cfg" || die "$host sshd config $cfg is invalid"
  # (9<&-: the daemon must not hold this script's lock.)
  if [ -n "$ns" ]; then in_ns "$ns" /usr/sbin/sshd -f "$cfg" -E "$log" 9<&-
  else /usr/sbin/sshd -f "$cfg" -E "$log" 9<&-; fi
  for i in $(seq 1 100); do
    if sshd_pid "$host" >/dev/null && listening "$ns" "$addr" "$port"; then return 0; fi
    sleep 0.05
  done
  die "$host sshd did not listen on $addr:$port; see $log"
}

# --- network --------------------------------------------------------------------------------------

ensure_network() {
  ns_exists "$LAPTOP_NS" || ip netns add "$LAPTOP_NS"
  ns_exists "$LOGIN_NS" || ip netns add "$LOGIN_NS"

  # login <-> laptop
  if ! link_exists "$LAPTOP_NS" "$LAPTOP_IF" || ! link_exists "$LOGIN_NS" "$LOGIN_IF_L"; then
    in_ns "$LAPTOP_NS" ip link del "$LAPTOP_IF" 2>/dev/null || true
    in_ns "$LOGIN_NS" ip link del "$LOGIN_IF_L" 2>/dev/null || true
    ip link del "$LAPTOP_IF" 2>/dev/null || true
    ip link add "$LAPTOP_IF" netns "$LAPTOP_NS" type veth peer name "$LOGIN_IF_L" netns "$LOGIN_NS"
  fi
  # login <-> node (root ns)
  if ! link_exists "" "$NODE_IF" || ! link_exists "$LOGIN_NS" "$LOGIN_IF_N"; then
    ip link del "$NODE_IF" 2>/dev/null || true
    in_ns "$LOGIN_NS" ip link del "$LOGIN_IF_N" 2>/dev/null || true
    ip link add "$NODE_IF" type veth peer name "$LOGIN_IF_N" netns "$LOGIN_NS"
  fi

  # No IPv6 on the testbed links: nothing but the addresses above ever appears on them.
  in_ns "$LAPTOP_NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
  in_ns "$LOGIN_NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
  sysctl -qw "net.ipv6.conf.$NODE_IF.disable_ipv6=1" >/dev/null 2>&1 || true
  in_ns "$LOGIN_NS" sysctl -qw net.ipv4.ip_forward=0 >/dev/null

  in_ns "$LAPTOP_NS" ip addr replace "$LAPTOP_ADDR/$PREFIX_LEN" dev "$LAPTOP_IF"
  in_ns "$LOGIN_NS" ip addr replace "$LOGIN_ADDR/$PREFIX_LEN" dev "$LOGIN_IF_L"
  in_ns "$LOGIN_NS" ip addr replace "$LOGIN_NODE_SIDE_ADDR/$PREFIX_LEN" dev "$LOGIN_IF_N"
  ip addr replace "$NODE_ADDR/$PREFIX_LEN" dev "$NODE_IF"

  in_ns "$LAPTOP_NS" ip link set lo up
  in_ns "$LOGIN_NS" ip link set lo up
  in_ns "$LAPTOP_NS" ip link set "$LAPTOP_IF" up
  in_ns "$LOGIN_NS" ip link set "$LOGIN_IF_L" up
  in_ns "$LOGIN_NS" ip link set "$LOGIN_IF_N" up
  ip link set "$NODE_IF" up
}

remove_network() {
  # Processes still inside the namespaces (sshds, tunnels a test left) would keep them alive.
  local ns pids
  for ns in "$LAPTOP_NS" "$LOGIN_NS"; do
    ns_exists "$ns" || continue
    pids="$(ip netns pids "$ns" 2>/dev/null || true)"
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086
      kill_pids TERM $pids
      # shellcheck disable=SC2086
      wait_gone $pids
    fi
  done
  ip link del "$NODE_IF" 2>/dev/null || true
  if ns_exists "$LAPTOP_NS"; then ip netns del "$LAPTOP_NS"; fi
  if ns_exists "$LOGIN_NS"; then ip netns del "$LOGIN_NS"; fi
}

# --- files ----------------------------------------------------------------------------------------

# Writes stdin to $1 with mode $2 (and owner $3 when given), only when the content differs.
# Returns 0 when the file changed.
put_file() {
  local path="$1" mode="$2" owner="${3:-}" tmp
  tmp="$(mktemp "$path.XXXXXX")"
  cat >"$tmp"
  chmod "$mode" "$tmp"
  [ -z "$owner" ] || chown "$owner" "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then rm -f "$tmp"; return 1; fi
  mv -f "$tmp" "$path"
}

keygen() { # type path comment [bits]
  [ -f "$2" ] && [ -f "$2.pub" ] && return 1
  rm -f "$2" "$2.pub"
  if [ -n "${4:-}" ]; then ssh-keygen -q -t "$1" -b "$4" -N '' -C "$3" -f "$2"
  else ssh-keygen -q -t "$1" -N '' -C "$3" -f "$2"; fi
}

pub_key() { awk '{print $1" "$2}' "$1"; }

# Writes the hosts' keys, known_hosts and sshd configs. Sets LOGIN_CHANGED / NODE_CHANGED when an
# sshd must restart. Nothing here depends on the user: adding a user never restarts an sshd.
ensure_host_files() {
  local host addr port
  LOGIN_CHANGED=0; NODE_CHANGED=0
  if [ -L "$STATE" ]; then die "$STATE is a symlink"; fi
  mkdir -p "$STATE/login" "$STATE/node" "$STATE/hostkeys" "$STATE/users" /run/sshd
  chmod 0755 "$STATE" "$STATE/login" "$STATE/node" "$STATE/users"
  chmod 0700 "$STATE/hostkeys"

  for host in login node; do
    local changed=0
    keygen ed25519 "$STATE/hostkeys/${host}_ed25519" "dbgbox-testbed-$host" && changed=1
    keygen ecdsa "$STATE/hostkeys/${host}_ecdsa" "dbgbox-testbed-$host" && changed=1
    [ "$changed" -eq 0 ] || { [ "$host" = login ] && LOGIN_CHANGED=1 || NODE_CHANGED=1; }
  done

  {
    for key in ed25519 ecdsa; do printf '%s %s\n' "$LOGIN_ADDR" "$(pub_key "$STATE/hostkeys/login_$key.pub")"; done
    for key in ed25519 ecdsa; do printf '%s %s\n' "$NODE_ADDR" "$(pub_key "$STATE/hostkeys/node_$key.pub")"; done
  } | put_file "$STATE/known_hosts" 0644 || true

  # No AllowUsers: a user gets in only with a key of users/USER/authorized_keys (root's file, written
  # by `up` for that user) or of their own ~/.ssh/authorized_keys; root not at all.
  for host in login node; do
    if [ "$host" = login ]; then addr="$LOGIN_ADDR"; port="$LOGIN_PORT"; else addr="$NODE_ADDR"; port="$NODE_PORT"; fi
    if put_file "$(sshd_config_path "$host")" 0644 <<EOF; then
# dbgbox testbed: the $host host's sshd (scripts/testbed.sh)
ListenAddress $addr:$port
AddressFamily inet
HostKey $STATE/hostkeys/${host}_ed25519
HostKey $STATE/hostkeys/${host}_ecdsa
PidFile $(sshd_pid_path "$host")
AuthorizedKeysFile $STATE/users/%u/authorized_keys .ssh/authorized_keys
AuthorizedPrincipalsFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
PermitRootLogin no
UsePAM no
StrictModes yes
AllowTcpForwarding yes
AllowStreamLocalForwarding no
X11Forwarding no
PermitTunnel no
PrintMotd no
MaxStartups 200:30:300
MaxSessions 200
LoginGraceTime 30
LogLevel VERBOSE
Subsystem sftp internal-sftp
EOF
      if [ "$host" = login ]; then LOGIN_CHANGED=1; else NODE_CHANGED=1; fi
    fi
  done
}

# Writes the user's directory: keys (authorized ed25519 and RSA, an unauthorized "wrong" ed25519),
# the authorized_keys both sshds read for the user, and an ssh config with the aliases.
ensure_user_files() {
  local group dir
  group="$(user_group)"; dir="$(user_dir)"
  mkdir -p "$dir"
  chmod 0755 "$dir"
  keygen ed25519 "$dir/id_ed25519" "dbgbox-testbed-$TB_USER" || true
  keygen rsa "$dir/id_rsa" "dbgbox-testbed-$TB_USER-rsa" 3072 || true
  keygen ed25519 "$dir/id_wrong_ed25519" "dbgbox-testbed-$TB_USER-wrong" || true
  chown "$TB_USER:$group" "$dir"/id_ed25519* "$dir"/id_rsa* "$dir"/id_wrong_ed25519*
  chmod 0600 "$dir/id_ed25519" "$dir/id_rsa" "$dir/id_wrong_ed25519"
  chmod 0644 "$dir/id_ed25519.pub" "$dir/id_rsa.pub" "$dir/id_wrong_ed25519.pub"

  { pub_key "$dir/id_ed25519.pub"; pub_key "$dir/id_rsa.pub"; } | put_file "$dir/authorized_keys" 0644 || true

  put_file "$dir/ssh_config" 0644 <<EOF || true
# dbgbox testbed aliases for $TB_USER (scripts/testbed.sh). Use: ssh -F $dir/ssh_config tb-login
Host tb-login
  HostName $LOGIN_ADDR
  User $TB_USER
  Port $LOGIN_PORT
  IdentityFile $dir/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $STATE/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes

Host tb-node
  HostName $NODE_ADDR
  User $TB_USER
  Port $NODE_PORT
  IdentityFile $dir/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $STATE/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
EOF
}

# --- the user's ~/.ssh/config block (for `ssh -W` run on login) ------------------------------------

user_block() {
  printf '%s\n' "$MARK_BEGIN" \
    "Host $NODE_ADDR" \
    "  IdentityFile $(user_dir)/id_ed25519" \
    "  IdentitiesOnly yes" \
    "  UserKnownHostsFile $STATE/known_hosts" \
    "  StrictHostKeyChecking yes" \
    "  BatchMode yes" \
    "Host *" \
    "$MARK_END"
}

# Reads a whole file into the variable named $2, keeping trailing newlines.
slurp() { local __c; __c="$(cat -- "$1"; printf x)"; printf -v "$2" '%s' "${__c%x}"; }

ensure_user_block() {
  local home sshdir cfg group block content recorded dir
  home="$(user_home)"; sshdir="$home/.ssh"; cfg="$sshdir/config"; group="$(user_group)"; dir="$(user_dir)"
  [ -n "$home" ] && [ -d "$home" ] || die "test user $TB_USER has no home directory"
  block="$(user_block; printf x)"; block="${block%x}"
  if [ -f "$dir/user_block" ] && [ -f "$cfg" ]; then
    slurp "$dir/user_block" recorded
    slurp "$cfg" content
    # shellcheck disable=SC2154
    if [[ "$content" == *"$recorded"* ]]; then return 0; fi
  fi
  if [ -f "$cfg" ]; then
    slurp "$cfg" content
    # The same block left by an earlier testbed whose state was lost: adopt it, never add twice.
    if [[ "$content" == *"$block"* ]]; then printf '%s' "$block" >"$dir/user_block"; return 0; fi
  fi
  if [ ! -d "$sshdir" ]; then
    install -d -m 0700 -o "$TB_USER" -g "$group" "$sshdir"
    : >"$dir/user_created_sshdir"
  fi
  if [ ! -e "$cfg" ]; then
    install -m 0600 -o "$TB_USER" -g "$group" /dev/null "$cfg"
    : >"$dir/user_created_config"
  fi
  slurp "$cfg" content
  # At the top, so it wins over the user's own entries (first value wins); its `Host *` line
  # returns the rest of the file to matching every host, as it did before.
  printf '%s' "$block" >"$dir/user_block"
  printf '%s%s' "$block" "$content" >"$cfg"     # in place: owner and mode are kept
}

remove_user_block() {
  local home sshdir cfg recorded content dir
  dir="$(user_dir)"
  home="$(user_home 2>/dev/null || true)"
  [ -n "$home" ] || return 0
  sshdir="$home/.ssh"; cfg="$sshdir/config"
  if [ -f "$dir/user_block" ] && [ -f "$cfg" ]; then
    slurp "$dir/user_block" recorded
    slurp "$cfg" content
    if [ -n "$recorded" ] && [[ "$content" == *"$recorded"* ]]; then
      printf '%s' "${content/"$recorded"/}" >"$cfg"
    fi
  fi
  if [ -f "$dir/user_created_config" ] && [ -f "$cfg" ] && [ ! -s "$cfg" ]; then rm -f "$cfg"; fi
  if [ -f "$dir/user_created_sshdir" ] && [ -d "$sshdir" ]; then rmdir "$sshdir" 2>/dev/null || true; fi
}

# --- Slurm ----------------------------------------------------------------------------------------

SLURM_NODE=dbgbox-node
SLURM_CTLD_HOST=dbgbox-login
SLURM_ETC=/etc/slurm
SLURM_MARK="# dbgbox testbed (scripts/testbed.sh): \`testbed.sh down\` removes this file"
MUNGE_KEY=/etc/munge/munge.key
GPU_COUNT=4

slurm_dir() { printf '%s/slurm' "$STATE"; }

slurm_conf_text() {
  local dir; dir="$(slurm_dir)"
  cat <<EOF
$SLURM_MARK
# One node (the root namespace, where dockerd runs) and a controller on login, on the testbed veth.
ClusterName=dbgbox
SlurmctldHost=$SLURM_CTLD_HOST($LOGIN_NODE_SIDE_ADDR)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
SrunPortRange=60001-60200
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroup plugins: they need systemd/dbus, which this machine has not.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
# The node's CPUs as configured here, not as probed (2 real cores): several sessions' jobs fit.
SlurmdParameters=config_overrides
ReturnToService=2
# Ended jobs stay visible to squeue/scontrol for 5 minutes (there is no accounting database).
MinJobAge=300
KillWait=30
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$SLURM_NODE NodeAddr=$NODE_ADDR CPUs=16 Sockets=1 CoresPerSocket=16 ThreadsPerCore=1 Gres=gpu:$GPU_COUNT State=UNKNOWN
PartitionName=gpu Nodes=$SLURM_NODE Default=YES MaxTime=1-00:00:00 State=UP
# Queues jobs and never starts them: a job here pends (reason PartitionDown) until cancelled.
PartitionName=pending Nodes=$SLURM_NODE MaxTime=1-00:00:00 State=DOWN
EOF
}

gres_conf_text() {
  cat <<EOF
$SLURM_MARK
AutoDetect=off
NodeName=$SLURM_NODE Name=gpu File=/dev/nvidia[0-$((GPU_COUNT - 1))]
EOF
}

# The fake GPU device nodes (NVIDIA's major 195). Made only where absent; `down` removes the ones
# recorded here, never a real device.
ensure_gpu_devices() {
  local i dev
  for i in $(seq 0 $((GPU_COUNT - 1))); do
    dev="/dev/nvidia$i"
    [ -e "$dev" ] && continue
    mknod -m 0666 "$dev" c 195 "$i"
    printf '%s\n' "$dev" >>"$(slurm_dir)/made_devices"
  done
}

remove_gpu_devices() {
  local list dev
  list="$(slurm_dir)/made_devices"
  [ -f "$list" ] || return 0
  while IFS= read -r dev; do
    [[ "$dev" =~ ^/dev/nvidia[0-9]+$ ]] && [ -c "$dev" ] && rm -f -- "$dev"
  done <"$list"
  rm -f -- "$list"
}

munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

ensure_munge() {
  if [ ! -s "$MUNGE_KEY" ]; then
    install -d -m 0700 -o munge -g munge /etc/munge
    dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
  fi
  chown munge:munge "$MUNGE_KEY"
  chmod 0400 "$MUNGE_KEY"
  munge_works && return 0
  install -d -m 0755 -o munge -g munge /run/munge
  install -d -m 0700 -o munge -g munge /var/lib/munge /var/log/munge
  setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged 9<&- \
    || die "munged did not start; see /var/log/munge/munged.log"
  : >"$(slurm_dir)/started_munged"
  local i
  for i in $(seq 1 50); do munge_works && return 0; sleep 0.1; done
  die "munge does not answer; see /var/log/munge/munged.log"
}

# The pid of a Slurm daemon (slurmctld|slurmd) from its PidFile, checked against its command line.
slurm_pid() {
  local pidfile pid
  pidfile="$(slurm_dir)/$1.pid"
  [ -s "$pidfile" ] || return 1
  pid="$(tr -dc '0-9' <"$pidfile")"
  [ -n "$pid" ] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$1" || return 1
  printf '%s\n' "$pid"
}

stop_slurm_daemon() { # slurmctld|slurmd
  local pid
  pid="$(slurm_pid "$1")" || return 0
  kill_pids TERM "$pid"
  local i
  for i in $(seq 1 100); do alive "$pid" || return 0; sleep 0.1; done
  kill_pids KILL "$pid"
}

slurm_ready() {
  local state
  timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' || return 1
  state="$(timeout 5 sinfo -h -p gpu -n "$SLURM_NODE" -o %T 2>/dev/null | head -n1)"
  case "$state" in
    idle*|mix*|alloc*|completing*) return 0 ;;
    *) return 1 ;;
  esac
}

ensure_slurm() {
  local dir changed=0
  for t in slurmctld slurmd sbatch scontrol munged setpriv unshare mknod; do
    command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] \
      || die "missing $t: run scripts/bootstrap.sh (slurmctld, slurmd, slurm-client, munge)"
  done
  dir="$(slurm_dir)"
  mkdir -p "$dir/ctld" "$dir/spool" "$SLURM_ETC"
  chmod 0755 "$dir"
  ensure_gpu_devices
  ensure_munge
  if [ -e "$SLURM_ETC/slurm.conf" ] && ! grep -qF "$SLURM_MARK" "$SLURM_ETC/slurm.conf"; then
    die "$SLURM_ETC/slurm.conf exists and is not the testbed's: move it away to run the testbed's Slurm"
  fi
  slurm_conf_text | put_file "$SLURM_ETC/slurm.conf" 0644 && changed=1
  gres_conf_text | put_file "$SLURM_ETC/gres.conf" 0644 && changed=1
  if [ "$changed" -eq 1 ]; then stop_slurm_daemon slurmd; stop_slurm_daemon slurmctld; fi
  if ! slurm_pid slurmctld >/dev/null; then
    # In the login namespace, with the controller's hostname (slurmctld checks it against SlurmctldHost).
    in_ns "$LOGIN_NS" unshare --uts sh -c 'hostname "$1" && exec /usr/sbin/slurmctld' sh "$SLURM_CTLD_HOST" 9<&- \
      || die "slurmctld did not start; see $dir/slurmctld.log"
  fi
  if ! slurm_pid slurmd >/dev/null; then
    /usr/sbin/slurmd -N "$SLURM_NODE" 9<&- || die "slurmd did not start; see $dir/slurmd.log"
  fi
  local i
  for i in $(seq 1 150); do
    if slurm_ready; then return 0; fi
    # A node that was down (an earlier run's kill) comes back once its slurmd registers.
    if [ "$i" -eq 50 ]; then timeout 5 scontrol update NodeName="$SLURM_NODE" State=RESUME >/dev/null 2>&1 || true; fi
    sleep 0.2
  done
  die "Slurm did not come up (node $SLURM_NODE not idle); see $dir/slurmctld.log and $dir/slurmd.log"
}

stop_slurm() {
  local dir; dir="$(slurm_dir)"
  [ -d "$dir" ] || return 0
  # Jobs first (their scripts remove their containers on TERM), then the daemons.
  if slurm_pid slurmctld >/dev/null; then
    timeout 10 scancel --full --state=PENDING >/dev/null 2>&1 || true
    timeout 10 scancel --full >/dev/null 2>&1 || true
    local i
    for i in $(seq 1 100); do
      [ -z "$(timeout 5 squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  stop_slurm_daemon slurmd
  stop_slurm_daemon slurmctld
  if [ -f "$dir/started_munged" ]; then
    local pid
    pid="$(tr -dc '0-9' </run/munge/munged.pid 2>/dev/null || true)"
    if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q munged; then
      kill_pids TERM "$pid"; wait_gone "$pid"
    fi
  fi
  local f
  for f in "$SLURM_ETC/slurm.conf" "$SLURM_ETC/gres.conf"; do
    if [ -f "$f" ] && grep -qF "$SLURM_MARK" "$f"; then rm -f -- "$f"; fi
  done
  remove_gpu_devices
}

check_slurm() { slurm_pid slurmctld >/dev/null && slurm_pid slurmd >/dev/null && slurm_ready; }

# --- env ------------------------------------------------------------------------------------------

env_text() {
  cat <<EOF
TB_LAPTOP_NS=$LAPTOP_NS
TB_LOGIN_NS=$LOGIN_NS
TB_LAPTOP_ADDR=$LAPTOP_ADDR
TB_LOGIN_ADDR=$LOGIN_ADDR
TB_NODE_ADDR=$NODE_ADDR
TB_LOGIN_PORT=$LOGIN_PORT
TB_NODE_PORT=$NODE_PORT
TB_LOGIN_ALIAS=tb-login
TB_NODE_ALIAS=tb-node
TB_KEY=$(user_dir)/id_ed25519
TB_RSA_KEY=$(user_dir)/id_rsa
TB_WRONG_KEY=$(user_dir)/id_wrong_ed25519
TB_KNOWN_HOSTS=$STATE/known_hosts
TB_SSH_CONFIG=$(user_dir)/ssh_config
TB_STATE_DIR=$STATE
TB_USER=$TB_USER
TB_SLURM_NODE=$SLURM_NODE
TB_SLURM_PARTITION=gpu
TB_SLURM_PENDING_PARTITION=pending
TB_SLURM_GPUS=$GPU_COUNT
TB_SLURM_DIR=$(slurm_dir)
EOF
}

# --- status ---------------------------------------------------------------------------------------

# Prints one line per component; returns 0 when the hosts are all up. The user line is for
# information: `up` adds a user to running hosts, and whoever brought the hosts up takes them down.
check_all() {
  local ok=0
  chk() { local name="$1"; shift; if "$@" >/dev/null 2>&1; then echo "up    $name"; else echo "down  $name"; ok=1; fi; }
  chk "netns $LAPTOP_NS" ns_exists "$LAPTOP_NS"
  chk "netns $LOGIN_NS" ns_exists "$LOGIN_NS"
  chk "link laptop<->login ($LAPTOP_IF up)" link_up "$LAPTOP_NS" "$LAPTOP_IF"
  chk "link login<->node ($NODE_IF up)" link_up "" "$NODE_IF"
  chk "login sshd on $LOGIN_ADDR:$LOGIN_PORT" check_sshd login
  chk "node sshd on $NODE_ADDR:$NODE_PORT" check_sshd node
  chk "slurm: slurmctld on login, slurmd for $SLURM_NODE (idle or busy)" check_slurm
  if [ -f "$(user_dir)/env" ]; then echo "up    user $TB_USER ($(user_dir))"; else echo "down  user $TB_USER (up adds it)"; fi
  return "$ok"
}

link_up() { # ns(or "") ifname: administratively up
  local out
  if [ -n "$1" ]; then out="$(in_ns "$1" ip -o link show dev "$2" 2>/dev/null)" || return 1
  else out="$(ip -o link show dev "$2" 2>/dev/null)" || return 1; fi
  [[ "$out" =~ \<([A-Z_,-]*,)?UP[,\>] ]]
}

check_sshd() { # host
  sshd_pid "$1" >/dev/null || return 1
  if [ "$1" = login ]; then listening "$LOGIN_NS" "$LOGIN_ADDR" "$LOGIN_PORT"
  else listening "" "$NODE_ADDR" "$NODE_PORT"; fi
}

# --- commands -------------------------------------------------------------------------------------

cmd_up() {
  require_root; require_tools
  getent passwd "$TB_USER" >/dev/null || die "no test user $TB_USER (scripts/test.sh creates it; or set DBGBOX_TEST_USER)"
  ensure_network
  ensure_host_files
  ensure_user_files
  if [ "$LOGIN_CHANGED" -eq 1 ]; then stop_sshd login; fi
  if [ "$NODE_CHANGED" -eq 1 ]; then stop_sshd node; fi
  check_sshd login || { stop_sshd login; start_sshd login "$LOGIN_NS" "$LOGIN_ADDR" "$LOGIN_PORT"; }
  check_sshd node || { stop_sshd node; start_sshd node "" "$NODE_ADDR" "$NODE_PORT"; }
  ensure_slurm
  ensure_user_block
  env_text | put_file "$(user_dir)/env" 0644 || true
  env_text
}

cmd_down() {
  require_root
  if [ -d "$STATE" ]; then
    stop_slurm
    stop_sshd login
    stop_sshd node
  fi
  remove_network
  if [ -d "$STATE" ]; then
    local dir
    for dir in "$STATE"/users/*/; do
      [ -d "$dir" ] || continue
      dir="${dir%/}"
      TB_USER="${dir##*/}" remove_user_block
    done
    rm -rf -- "$STATE"
  fi
  log "down"
}

cmd_env() {
  [ -f "$(user_dir)/env" ] || die "the testbed is not up for $TB_USER (DBGBOX_TEST_USER=$TB_USER scripts/testbed.sh up)"
  cat "$(user_dir)/env"
}

cmd_status() {
  if check_all; then echo "testbed: up"; else echo "testbed: not (fully) up"; return 1; fi
}

# A silent path: packets between laptop and login are dropped in the laptop namespace (iptables
# there only), so neither side hears a refusal; only timeouts can tell. Idempotent.
cmd_silence() {
  require_root
  case "${1:-}" in
    on|off) ;;
    *) die "usage: testbed.sh silence on|off" ;;
  esac
  ns_exists "$LAPTOP_NS" || die "the testbed is not up"
  local rule
  for rule in "OUTPUT -d $LOGIN_ADDR -j DROP" "INPUT -s $LOGIN_ADDR -j DROP"; do
    # shellcheck disable=SC2086
    if [ "$1" = on ]; then
      in_ns "$LAPTOP_NS" iptables -C $rule 2>/dev/null || in_ns "$LAPTOP_NS" iptables -I $rule
    else
      while in_ns "$LAPTOP_NS" iptables -C $rule 2>/dev/null; do in_ns "$LAPTOP_NS" iptables -D $rule; done
    fi
  done
}

cmd_link() {
  require_root
  case "${1:-}" in
    up|down) ;;
    *) die "usage: testbed.sh link down|up" ;;
  esac
  ns_exists "$LAPTOP_NS" || die "the testbed is not up"
  in_ns "$LAPTOP_NS" ip link set "$LAPTOP_IF" "$1"
  if [ "$1" = up ]; then
    # The connected route comes back with the link; wait until it is usable.
    local i
    for i in $(seq 1 50); do
      in_ns "$LAPTOP_NS" ip route get "$LOGIN_ADDR" >/dev/null 2>&1 && return 0
      sleep 0.05
    done
    die "route to $LOGIN_ADDR did not return"
  fi
}

cmd_kill_login_sessions() {
  require_root
  local pid kids
  pid="$(sshd_pid login)" || die "login sshd is not running"
  kids="$(descendants "$pid")"
  if [ -z "$kids" ]; then log "no login sessions"; return 0; fi
  # shellcheck disable=SC2086
  kill_pids KILL $kids
  # shellcheck disable=SC2086
  wait_gone $kids
  log "killed login sessions: $(echo $kids)"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  link) shift; cmd_link "$@" ;;
  silence) shift; cmd_silence "$@" ;;
  kill-login-sessions) cmd_kill_login_sessions ;;
  *) echo "usage: $0 up|down|status|env|link down|up|silence on|off|kill-login-sessions" >&2; exit 2 ;;
esac
