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
# Usage (root):  scripts/bench.sh [--quick] [--rounds N]
#   --quick      128 MiB transfers, 4 MiB streams, fewer samples
#   --rounds N   rounds per metric (default 3)
#   DBGBOX_BIN=/path/to/dbgbox   use this binary instead of building the release one (.build-bench)
#   BENCH_KEEP=1                 keep the work directory (logs) at the end
# Brings the testbed up if it is down and takes it down at the end only then. Network: the testbed's
# addresses and loopback only. Everything it starts is killed on exit. Full, 3 rounds: about 8 minutes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOL="$ROOT/scripts/bench_tool.py"
TESTBED="$ROOT/scripts/testbed.sh"
QUICK=""
ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=--quick ;;
    --rounds)
      [ $# -ge 2 ] && [[ "$2" =~ ^[1-9][0-9]?$ ]] || { echo "bench: --rounds takes a number from 1 to 99" >&2; exit 2; }
      ROUNDS="$2"; shift ;;
    -h|--help) sed -n '2,25p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bench: unknown argument $1 (use --quick, --rounds N)" >&2; exit 2 ;;
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

cleanup() {
  local rc=$? pid i
  trap - EXIT INT TERM
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
