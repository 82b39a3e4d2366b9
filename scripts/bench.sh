#!/usr/bin/env bash
# Benchmark (not a test): `dbgbox tunnel` side by side with OpenSSH's equivalent over the same path.
#
#   laptop netns --(hop 1: login 198.18.1.2)--(hop 2: node 198.18.2.1)--> node 127.0.0.1:N (bench_tool.py server)
#
#   dbgbox  : dbgbox tunnel -F TB_SSH_CONFIG --login tb-login --node tb-node --port N --local-port M
#   OpenSSH : ssh -F TB_SSH_CONFIG -o ProxyCommand='ssh -F TB_SSH_CONFIG -W %h:%p tb-login' -N -L M2:127.0.0.1:N tb-node
#
# Both run in the laptop namespace as the test user, each with the ciphers it negotiates by default.
# Measured for both: 1 GiB download and upload (MiB/s), 64-byte echo RTT p50/p99 over 2000 round
# trips, new connection to first byte p50 over 200 connections, 64 concurrent streams x 16 MiB (half
# download, half upload, all crc32-checked; aggregate MiB/s) and the tunnel's peak RSS (VmHWM, reset
# before the streams; OpenSSH: both ssh processes summed). Each metric runs ROUNDS times per tunnel,
# who goes first alternating by round; the figures are the medians (peak RSS: the highest), and each
# round's ratio is printed too (the testbed's TCP makes single transfers vary by +-20%). Under each
# measurement: the busiest threads on the machine, each with its CPU and the time it waited on a run
# queue (runnable, not running; /proc/*/schedstat), and how busy and idle the machine's CPUs were.
# Then ratios and the issue's targets.
#
# The user-level part (issue 15; --part user): through a real container made by `dbgbox up` as the
# test user (its Host block dbgbox-NAME, which shares one ssh connection), against OpenSSH's own
# ways to the same container, `ssh -J LOGIN,NODE -p PORT user@127.0.0.1` and the same with
# ControlMaster/ControlPersist: a new `ssh HOST true` (p50/p90 over 50 runs, also dbgbox's block
# with sharing off), an sftp upload and download of a generated project tree (2,000 files, 50 MiB),
# 1 GiB through `ssh HOST cat` (checksummed), and 2,000 HTTP-sized round trips (1 KiB request,
# 64 KiB answer) through a forwarded port to a server in the container (`dbgbox forward` against
# `ssh -L` through -J; skipped while `dbgbox forward` does not exist). Then ratios, and PASS/FAIL
# for the issue's targets. `dbgbox down` removes the session at the end.
#
# Usage (root):  scripts/bench.sh [--part tunnel|user|all] [--quick] [--rounds N]
#   --part P     tunnel: the tunnel part only; user: the user-level part only; all (default): both
#   --quick      128 MiB transfers, 4 MiB streams, fewer samples (user part: 20 ssh runs, a tree
#                of 500 files / 10 MiB, 128 MiB through cat, 500 round trips)
#   --rounds N   rounds per metric (default 3)
#   DBGBOX_BIN=/path/to/dbgbox   use this binary instead of building the release one (.build-bench)
#   BENCH_KEEP=1                 keep the work directory (logs) at the end
#   BENCH_USER_ONLY=a,b          user part: only these metrics (new_ssh, sftp, cat, forward), e.g. forward
# Brings the testbed up if it is down and takes it down at the end only then. Network: the testbed's
# addresses and loopback only. Everything it starts is killed on exit. Full, 3 rounds: about 8 minutes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOL="$ROOT/scripts/bench_tool.py"
TESTBED="$ROOT/scripts/testbed.sh"
QUICK=""
ROUNDS=3
PART=all
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=--quick ;;
    --part)
      [ $# -ge 2 ] && [[ "$2" =~ ^(tunnel|user|all)$ ]] || { echo "bench: --part takes tunnel, user or all" >&2; exit 2; }
      PART="$2"; shift ;;
    --rounds)
      [ $# -ge 2 ] && [[ "$2" =~ ^[1-9][0-9]?$ ]] || { echo "bench: --rounds takes a number from 1 to 99" >&2; exit 2; }
      ROUNDS="$2"; shift ;;
    -h|--help) sed -n '2,40p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bench: unknown argument $1 (use --part tunnel|user|all, --quick, --rounds N)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (network namespaces)"
for t in ip ss setpriv timeout ssh; do command -v "$t" >/dev/null || die "missing $t"; done
PY="$(command -v /usr/bin/python3 || command -v python3)" || die "missing python3"

WORK="$(mktemp -d /tmp/dbgbox-bench.XXXXXX)"
chmod 0755 "$WORK"
STARTED=()          # pids we started (killed on exit)
BROUGHT_UP=0
USER_SESSION=""     # the user part's session: dbgbox down on exit

cleanup() {
  local rc=$? pid i
  trap - EXIT INT TERM
  [ -n "$USER_SESSION" ] && user_part_cleanup
  for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for i in $(seq 1 50); do
    local alive=0
    for pid in "${STARTED[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${STARTED[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if [ "$BROUGHT_UP" -eq 1 ]; then say "taking the testbed down (this run brought it up)"; "$TESTBED" down >/dev/null 2>&1 || true; fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then say "logs kept in $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- binary ---------------------------------------------------------------------------------------
if [ -n "${DBGBOX_BIN:-}" ]; then
  [ -x "$DBGBOX_BIN" ] || die "DBGBOX_BIN=$DBGBOX_BIN is not executable"
  SRC_BIN="$DBGBOX_BIN"
else
  say "building the release binary (swift build -c release --scratch-path .build-bench --product dbgbox)"
  # The working tree may be mid-edit by someone else: retry a few times before giving up.
  for attempt in 1 2 3 4; do
    if (cd "$ROOT" && timeout 1800 swift build -c release --scratch-path .build-bench --product dbgbox >"$WORK/build.log" 2>&1); then
      built=1; break
    fi
    built=0
    grep -m2 'error:' "$WORK/build.log" | sed 's/^/bench:   /' >&2 || true
    [ "$attempt" -lt 4 ] && { say "build failed (attempt $attempt of 4); retrying in 30 s"; sleep 30; }
  done
  [ "$built" = 1 ] || { tail -30 "$WORK/build.log" >&2; die "release build failed"; }
  SRC_BIN="$(cd "$ROOT" && swift build -c release --scratch-path .build-bench --show-bin-path)/dbgbox"
  BIN_FROM="working tree"
fi
BIN_FROM="${BIN_FROM:-DBGBOX_BIN}"
BIN="$WORK/dbgbox"        # a copy the test user can execute wherever the tree lives
install -m 0755 "$SRC_BIN" "$BIN"

# --- testbed --------------------------------------------------------------------------------------
if ! "$TESTBED" status >/dev/null 2>&1; then
  say "bringing the testbed up"
  BROUGHT_UP=1
  "$TESTBED" up >/dev/null
elif ! "$TESTBED" env >/dev/null 2>&1; then
  # The hosts are up for other users only: add this user to them (and leave them up at the end).
  say "adding ${DBGBOX_TEST_USER:-dbgtest} to the running testbed"
  "$TESTBED" up >/dev/null
fi
eval "$("$TESTBED" env)"
U_UID="$(id -u "$TB_USER")"; U_GID="$(id -g "$TB_USER")"; U_HOME="$(getent passwd "$TB_USER" | cut -d: -f6)"
install -d -m 0755 -o "$TB_USER" -g "$U_GID" "$WORK/user"

as_user_in_laptop() {  # in the background: ( exec ... ) semantics via BENCH_EXEC=exec, so $! is the command's pid
  ${BENCH_EXEC:-} ip netns exec "$TB_LAPTOP_NS" setpriv --reuid="$U_UID" --regid="$U_GID" --init-groups env -i \
    PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin USER="$TB_USER" LOGNAME="$TB_USER" HOME="$U_HOME" LANG=C.UTF-8 "$@"
}
port_free() { # ns("" = root) port
  if [ -n "$1" ]; then ! ip netns exec "$1" ss -Htan "sport = :$2" | grep -q .; else ! ss -Htan "sport = :$2" | grep -q .; fi
}
pick_port() { # ns base
  local p i
  for i in $(seq 0 200); do
    p=$(( $2 + (RANDOM % 5000) ))
    port_free "$1" "$p" && { echo "$p"; return 0; }
  done
  die "no free port near $2"
}
wait_listen() { # ns port seconds
  local i
  for i in $(seq 1 $(( $3 * 10 ))); do
    if ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q .; then return 0; fi
    sleep 0.1
  done
  return 1
}

# --- the user-level part (issue 15) ---------------------------------------------------------------
# Runs as the test user in the laptop namespace with a scratch HOME (the session's Host block and
# Include go there; ssh reads them with -F HOME/.ssh/config, as ssh takes ~ from the passwd entry).
UHOME="$WORK/user/home"
JCM_EXIT=()
# The binary is a copy in WORK: its templates are given (copied where the test user can read them).
user_dbgbox() {
  as_user_in_laptop env HOME="$UHOME" XDG_STATE_HOME="$UHOME/state" DBGBOX_TEMPLATES="$WORK/user/templates" "$BIN" "$@"
}
user_part_cleanup() {
  if [ "${#JCM_EXIT[@]}" -gt 0 ]; then as_user_in_laptop "${JCM_EXIT[@]}" >/dev/null 2>&1 || true; JCM_EXIT=(); fi
  if [ -n "$USER_SESSION" ]; then
    user_dbgbox down "$USER_SESSION" >"$WORK/user-down.log" 2>&1 || { say "dbgbox down $USER_SESSION failed:"; cat "$WORK/user-down.log" >&2; }
    USER_SESSION=""
  fi
}

# The user part's config for bench_tool.py: argv OUT HOSTCFG NAME USER NODEPORT LF1 LF2 QUICK ROUNDS WORK SKIP NJ JOPTS... SOPTS...
USER_CONFIG_PY='
import json, os, sys
out, cfg, name, user, nport, lf1, lf2, quick, rounds, work, skip, nj = sys.argv[1:13]
rest = sys.argv[13:]
jopts, sopts = rest[:int(nj)], rest[int(nj):]
dest = "%s@127.0.0.1" % user
sides = {
    "dbgbox": {"ssh": ["ssh", "-F", cfg, "-o", "BatchMode=yes", "dbgbox-" + name],
               "sftp": ["sftp", "-F", cfg, "-o", "BatchMode=yes"], "sftp_host": "dbgbox-" + name, "bulk": True,
               "forward_port": int(lf1) if lf1 else None},
    "dbgbox, no sharing": {"ssh": ["ssh", "-F", cfg, "-o", "BatchMode=yes", "-S", "none", "dbgbox-" + name]},
    "ssh -J": {"ssh": ["ssh"] + jopts + ["-p", nport, dest], "sftp": ["sftp"] + jopts + ["-P", nport], "sftp_host": dest,
               "bulk": True, "forward_port": int(lf2) if lf2 else None},
    "ssh -J, ControlMaster": {"ssh": ["ssh"] + jopts + sopts + ["-p", nport, dest]},
}
with open(out, "w") as f:
    json.dump({"sides": sides, "order": ["dbgbox", "dbgbox, no sharing", "ssh -J", "ssh -J, ControlMaster"],
               "dbgbox": "dbgbox", "plain": "ssh -J", "shared": "ssh -J, ControlMaster",
               "quick": bool(quick), "rounds": int(rounds), "work": work, "forward_skip": skip or None,
               "only": [x for x in os.environ.get("BENCH_USER_ONLY", "").split(",") if x] or None}, f, indent=1)
'

user_part() {
  local lower image forward_ok=0 row name lport nport cfg pinned skip="" fport="" lf1="" lf2="" i
  local remote=(-F "$TB_SSH_CONFIG" --login "$TB_LOGIN_ALIAS" --node "$TB_NODE_ALIAS" --known-hosts "$TB_KNOWN_HOSTS")
  lower="$(printf '%s' "$TB_USER" | tr 'A-Z' 'a-z')"
  install -d -m 0700 -o "$TB_USER" -g "$U_GID" "$UHOME" "$UHOME/.ssh"
  install -d -m 0755 -o "$TB_USER" -g "$U_GID" "$WORK/user/work"
  cp -r "$ROOT/templates" "$WORK/user/templates" && chmod -R a+rX "$WORK/user/templates"
  # `forward --help` of a dbgbox without the command prints the top-level help (and exits 0).
  if user_dbgbox forward --help 2>&1 | grep -q '^USAGE: dbgbox forward'; then
    forward_ok=1
    image="$lower/bench-user-py:latest"
    # The forwarded port's server in the container needs python3.
    printf 'RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*\n' >"$WORK/user/python.Dockerfile"
    say "user part: building $image on the node (python3 for the forwarded port's server)"
    user_dbgbox image create --base dbgbox-base/debian:bookworm --append "$WORK/user/python.Dockerfile" --name "$image" "${remote[@]}" \
      >"$WORK/user-image.log" 2>&1 || { tail -20 "$WORK/user-image.log" >&2; die "dbgbox image create failed"; }
  else
    image="$lower/bench-user:latest"
    skip="dbgbox forward not built yet"
  fi
  say "user part: dbgbox up (image $image)"
  user_dbgbox up --gpu none --port auto --ttl 2h --base dbgbox-base/debian:bookworm --image "$image" --key "$TB_KEY.pub" "${remote[@]}" \
    >"$WORK/user-up.log" 2>&1 || { tail -20 "$WORK/user-up.log" >&2; die "dbgbox up failed"; }
  row="$(user_dbgbox status --json | "$PY" -c 'import json,sys; r=json.load(sys.stdin)[0]; print(r["name"], r["local_port"], r["node_port"])')" \
    || die "dbgbox status --json after up gave no session"
  read -r name lport nport <<<"$row"
  USER_SESSION="$name"
  pinned="$UHOME/.ssh/dbgbox/known_hosts"
  cfg="$UHOME/.ssh/config"
  # OpenSSH's way to the same container: ProxyJump through the testbed's aliases, the container's
  # host key checked against the key dbgbox pinned.
  local jopts=(-F "$TB_SSH_CONFIG" -J "$TB_LOGIN_ALIAS,$TB_NODE_ALIAS" -o BatchMode=yes -o IdentitiesOnly=yes -i "$TB_KEY"
               -o HostKeyAlias="dbgbox-$name" -o UserKnownHostsFile="$pinned" -o StrictHostKeyChecking=yes)
  local sopts=(-o ControlMaster=auto -o ControlPath="$WORK/user/cmJ-%C" -o ControlPersist=10m)
  JCM_EXIT=(ssh "${jopts[@]}" "${sopts[@]}" -p "$nport" -O exit "$TB_USER@127.0.0.1")

  if [ "$forward_ok" = 1 ]; then
    fport="$(pick_port "" 43000)"; lf1="$(pick_port "$TB_LAPTOP_NS" 31000)"; lf2="$(pick_port "$TB_LAPTOP_NS" 36000)"
    while [ "$lf2" = "$lf1" ]; do lf2="$(pick_port "$TB_LAPTOP_NS" 36000)"; done
    as_user_in_laptop ssh -F "$cfg" -o BatchMode=yes "dbgbox-$name" "cat > /tmp/dbgbox-bench-tool.py" <"$TOOL" \
      || die "could not copy bench_tool.py into the container"
    BENCH_EXEC=exec as_user_in_laptop ssh -F "$cfg" -o BatchMode=yes "dbgbox-$name" \
      "exec python3 /tmp/dbgbox-bench-tool.py server --port $fport --lifetime 2900" >"$WORK/user-server.log" 2>&1 &
    STARTED+=("$!")
    for i in $(seq 1 100); do grep -q listening "$WORK/user-server.log" 2>/dev/null && break; sleep 0.1; done
    grep -q listening "$WORK/user-server.log" || { cat "$WORK/user-server.log" >&2; die "server in the container did not start"; }
    user_dbgbox forward "$name" "$fport:$lf1" >"$WORK/user-forward.log" 2>&1 \
      || { cat "$WORK/user-forward.log" >&2; die "dbgbox forward failed"; }
    BENCH_EXEC=exec as_user_in_laptop ssh "${jopts[@]}" -o ExitOnForwardFailure=yes -p "$nport" -N \
      -L "127.0.0.1:$lf2:127.0.0.1:$fport" "$TB_USER@127.0.0.1" >"$WORK/user-ssh-L.log" 2>&1 &
    STARTED+=("$!")
    wait_listen "$TB_LAPTOP_NS" "$lf1" 30 || die "dbgbox forward not listening on $lf1 within 30 s"
    wait_listen "$TB_LAPTOP_NS" "$lf2" 30 || { tail -5 "$WORK/user-ssh-L.log" >&2; die "ssh -L not listening on $lf2 within 30 s"; }
  fi

  if [ "$PART" = user ]; then
    echo "== machine =="
    "$PY" "$TOOL" facts | sed 's/^/  /'
    echo "  OpenSSH: $(ssh -V 2>&1)"
    echo "  dbgbox: release build from the $BIN_FROM (HEAD $(cd "$ROOT" && git rev-parse --short HEAD)), $SRC_BIN"
    echo
  fi
  echo "== user-level part (${QUICK:-full}, $ROUNDS round(s) per metric) =="
  echo "  dbgbox: ssh -F HOME/.ssh/config dbgbox-$name → 127.0.0.1:$lport (dbgbox tunnel) → node 127.0.0.1:$nport (the container's sshd)"
  echo "  Host block: $(grep -E '^ *Control' "$UHOME/.ssh/dbgbox/config" | sed 's/^ *//' | paste -sd ';' -)"
  echo "  ssh -J: ssh -J $TB_LOGIN_ALIAS,$TB_NODE_ALIAS -p $nport $TB_USER@127.0.0.1; with ControlMaster: ${sopts[*]}"
  [ -n "$skip" ] && echo "  forwarded port: $skip"
  "$PY" -c "$USER_CONFIG_PY" "$WORK/user/user.json" "$cfg" "$name" "$TB_USER" "$nport" "$lf1" "$lf2" "$QUICK" "$ROUNDS" \
    "$WORK/user/work" "$skip" "${#jopts[@]}" "${jopts[@]}" "${sopts[@]}"
  chmod 0644 "$WORK/user/user.json"
  as_user_in_laptop timeout 3000 "$PY" "$TOOL" user --config "$WORK/user/user.json" --json "$WORK/user/work/results.json"
  user_part_cleanup
}

if [ "$PART" = user ]; then user_part; exit 0; fi

# --- the tunnel part ------------------------------------------------------------------------------
N="$(pick_port "" 40000)"
M="$(pick_port "$TB_LAPTOP_NS" 30000)"
M2="$(pick_port "$TB_LAPTOP_NS" 35000)"
while [ "$M2" = "$M" ]; do M2="$(pick_port "$TB_LAPTOP_NS" 35000)"; done

# --- target on the node (root namespace) ----------------------------------------------------------
timeout 3000 "$PY" "$TOOL" server --port "$N" --lifetime 2900 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!; STARTED+=("$SERVER_PID")
for i in $(seq 1 50); do grep -q listening "$WORK/server.log" 2>/dev/null && break; sleep 0.1; done
grep -q listening "$WORK/server.log" || { cat "$WORK/server.log" >&2; die "target server did not start"; }

# --- negotiated methods ---------------------------------------------------------------------------
# dbgbox: libssh2_session_methods() read under gdb at authentication time (once per hop), in a
# separate short-lived instance (the measured one is never traced). OpenSSH: ssh -v of both processes.
methods_dbgbox() {
  command -v gdb >/dev/null || { echo "  dbgbox: not exposed by dbgbox (and no gdb to read libssh2_session_methods)"; return; }
  local probe_port
  probe_port="$(pick_port "$TB_LAPTOP_NS" 45000)"
  cat >"$WORK/user/probe.py" <<'EOF'
import gdb
gdb.execute("set pagination off"); gdb.execute("set confirm off"); gdb.execute("set breakpoint pending on")
gdb.execute("handle SIGPIPE SIGUSR1 SIGUSR2 nostop noprint pass")
for f in ("libssh2_userauth_publickey_fromfile_ex", "libssh2_userauth_list", "libssh2_userauth_publickey"):
    gdb.execute("break " + f)
names = ("kex", "hostkey", "cipher c>s", "cipher s>c", "mac c>s", "mac s>c")
seen = []
gdb.execute("run")
for _ in range(20):
    if gdb.selected_inferior().pid == 0:
        break
    s = int(gdb.parse_and_eval("$rdi"))
    if s not in seen:
        seen.append(s)
        vals = []
        for t in range(6):
            v = gdb.parse_and_eval("(const char *)libssh2_session_methods((void *)%d, %d)" % (s, t))
            vals.append(v.string() if int(v) else "?")
        print("METHODS hop%d %s" % (len(seen), "  ".join("%s=%s" % nv for nv in zip(names, vals))))
    if len(seen) >= 2:
        break
    gdb.execute("continue")
try:
    gdb.execute("kill")
except gdb.error:
    pass
EOF
  as_user_in_laptop timeout -s KILL 60 gdb -q -nx -batch -x "$WORK/user/probe.py" --args "$BIN" tunnel \
    -F "$TB_SSH_CONFIG" --login "$TB_LOGIN_ALIAS" --node "$TB_NODE_ALIAS" --port "$N" --local-port "$probe_port" \
    --known-hosts "$TB_KNOWN_HOSTS" --quiet >"$WORK/gdb.log" 2>&1 || true
  if grep -q '^METHODS' "$WORK/gdb.log"; then
    sed -n 's/^METHODS hop1 /  dbgbox  hop 1 (laptop→login): /p; s/^METHODS hop2 /  dbgbox  hop 2 (→node, inside hop 1): /p' "$WORK/gdb.log"
  else
    echo "  dbgbox: not exposed by dbgbox; the gdb probe failed (see gdb.log); its preferences (Sources/SSH/NonBlockingSession.swift):"
    grep -E 'static let (cipher|mac)Preference' "$ROOT/Sources/SSH/NonBlockingSession.swift" | sed 's/^ */    /'
  fi
}
methods_openssh() {
  as_user_in_laptop timeout 30 ssh -v -E "$WORK/user/ssh-main.log" -F "$TB_SSH_CONFIG" -o BatchMode=yes \
    -o ProxyCommand="ssh -v -E $WORK/user/ssh-proxy.log -F $TB_SSH_CONFIG -W %h:%p $TB_LOGIN_ALIAS" "$TB_NODE_ALIAS" true \
    >/dev/null 2>&1 || echo "  OpenSSH probe failed"
  local f label
  for f in proxy main; do
    [ "$f" = proxy ] && label="hop 1 (laptop→login, ProxyCommand ssh -W)" || label="hop 2 (→node, ssh -L)"
    printf '  OpenSSH %s: kex=%s  hostkey=%s  c>s: %s  s>c: %s\n' "$label" \
      "$(sed -n 's/.*debug1: kex: algorithm: //p' "$WORK/user/ssh-$f.log" | head -1)" \
      "$(sed -n 's/.*debug1: kex: host key algorithm: //p' "$WORK/user/ssh-$f.log" | head -1)" \
      "$(sed -n 's/.*debug1: kex: client->server cipher: \(.*\) compression.*/\1/p' "$WORK/user/ssh-$f.log" | head -1)" \
      "$(sed -n 's/.*debug1: kex: server->client cipher: \(.*\) compression.*/\1/p' "$WORK/user/ssh-$f.log" | head -1)"
  done
}

# --- facts ----------------------------------------------------------------------------------------
echo "== machine =="
"$PY" "$TOOL" facts | sed 's/^/  /'
echo "  libssh2: $(dpkg-query -W -f='${Version}' libssh2-1 2>/dev/null || echo '?') (header $(sed -n 's/^#define LIBSSH2_VERSION "\(.*\)"/\1/p' /usr/include/libssh2.h 2>/dev/null))"
echo "  OpenSSH: $(ssh -V 2>&1) (server $(dpkg-query -W -f='${Version}' openssh-server 2>/dev/null || echo '?'))"
echo "  dbgbox: release build from the $BIN_FROM (HEAD $(cd "$ROOT" && git rev-parse --short HEAD)$( [ "$BIN_FROM" = "working tree" ] && [ -n "$(cd "$ROOT" && git status --porcelain -- Sources Package.swift)" ] && echo ' + uncommitted Sources changes')), $SRC_BIN"
echo "  mode: ${QUICK:-full}, $ROUNDS round(s) per metric; target 127.0.0.1:$N on the node; dbgbox on laptop:$M, OpenSSH on laptop:$M2"
echo
echo "== negotiated methods =="
methods_dbgbox
methods_openssh
echo

# --- the two tunnels ------------------------------------------------------------------------------
BENCH_EXEC=exec as_user_in_laptop "$BIN" tunnel -F "$TB_SSH_CONFIG" --login "$TB_LOGIN_ALIAS" --node "$TB_NODE_ALIAS" --port "$N" \
  --local-port "$M" --known-hosts "$TB_KNOWN_HOSTS" --quiet >"$WORK/dbgbox.out" 2>"$WORK/dbgbox.err" &
DPID=$!; STARTED+=("$DPID")
BENCH_EXEC=exec as_user_in_laptop ssh -F "$TB_SSH_CONFIG" -o BatchMode=yes -o ExitOnForwardFailure=yes \
  -o ProxyCommand="ssh -F $TB_SSH_CONFIG -W %h:%p $TB_LOGIN_ALIAS" -N -L "127.0.0.1:$M2:127.0.0.1:$N" "$TB_NODE_ALIAS" \
  >"$WORK/ssh.out" 2>"$WORK/ssh.err" &
SPID=$!; STARTED+=("$SPID")

for i in $(seq 1 300); do
  grep -q '^ready: ' "$WORK/dbgbox.out" 2>/dev/null && break
  kill -0 "$DPID" 2>/dev/null || break
  sleep 0.1
done
grep -q '^ready: ' "$WORK/dbgbox.out" || { tail -20 "$WORK/dbgbox.err" >&2; die "dbgbox tunnel not ready within 30 s"; }
wait_listen "$TB_LAPTOP_NS" "$M2" 30 || { tail -20 "$WORK/ssh.err" >&2; die "ssh -L not listening within 30 s"; }
PROXY_PID="$(pgrep -P "$SPID" -x ssh | head -1 || true)"
[ -n "$PROXY_PID" ] || die "no ProxyCommand ssh under $SPID"
[ "$(cat "/proc/$DPID/comm")" = dbgbox ] || die "pid $DPID is $(cat "/proc/$DPID/comm"), not dbgbox"
echo "== tunnels =="
echo "  dbgbox : pid $DPID  $(head -1 "$WORK/dbgbox.out")"
echo "  OpenSSH: pid $SPID (ssh -L) + $PROXY_PID (ProxyCommand ssh -W)"
echo

# --- measure --------------------------------------------------------------------------------------
echo "== measurements (round by round, who goes first alternating; CPU = busiest threads on the machine during that figure, % of one core, and % of the time each waited for a CPU) =="
ip netns exec "$TB_LAPTOP_NS" timeout 2800 "$PY" "$TOOL" run $QUICK --rounds "$ROUNDS" \
  --tunnel "dbgbox=$M=$DPID" --tunnel "openssh=$M2=$SPID,$PROXY_PID" \
  --label "$DPID=dbgbox" --label "$SPID=ssh-L" --label "$PROXY_PID=ssh-W" --label "$(pgrep -P "$SERVER_PID" | head -1)=target" \
  --json "$WORK/results.json"
kill -0 "$DPID" 2>/dev/null || { say "dbgbox exited during the run:"; tail -20 "$WORK/dbgbox.err" >&2; }
kill -0 "$SPID" 2>/dev/null || { say "ssh exited during the run:"; tail -20 "$WORK/ssh.err" >&2; }

if [ "$PART" = all ]; then echo; user_part; fi
