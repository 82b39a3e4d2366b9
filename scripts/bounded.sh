#!/usr/bin/env bash
# Usage: scripts/bounded.sh SECONDS LOG COMMAND [ARG...]
#
# Runs a test command with a time bound, so that a hung test ends the run with a diagnosis instead
# of running into CI's limit. Used by scripts/test.sh and scripts/sanitizers.sh.
#
# - COMMAND's output is appended to LOG and shown as it comes. Nothing waits on a pipe: a process
#   that a test left running with the output inherited cannot hold the run open.
# - Past SECONDS: the processes still running and every thread's stack of each test process
#   (gdb) are printed, the command's process group is killed, and the exit status is 124.
# - When LOG already holds XCTest's closing lines (the bundle finished) and the test process has
#   not exited 60 s later, the same diagnosis is printed as a warning, the process is ended, and
#   the status is the one those lines give: the results are in; the hang is after them.
# Otherwise the status is COMMAND's own.
set -uo pipefail
limit="$1" log="$2"
shift 2

offset=$(( $(stat -c %s "$log" 2>/dev/null || echo 0) + 1 ))
setsid "$@" >>"$log" 2>&1 </dev/null &
pid=$!
# setsid execs in place (a background job of a script leads no process group), so the command's
# process group is its pid; asked anyway.
pgid="$(ps -o pgid= -p "$pid" | tr -d ' ')"
[ -n "$pgid" ] || pgid="$pid"
tail -c "+$offset" -f --pid="$pid" "$log" &
tailer=$!

diagnose() {
  echo "bounded: $1; the processes still running:"
  ps -eo pid,ppid,pgid,etimes,args --forest | grep -v ' \[' | cut -c 1-240 | tail -n 60
  local p
  for p in $(pgrep -f '\.xctest' || true); do
    echo "bounded: threads of test process $p:"
    if command -v gdb >/dev/null 2>&1; then
      timeout 120 gdb -batch -nx -p "$p" -ex 'thread apply all bt 25' 2>&1 | grep -E '^(Thread|#)' | head -n 400
    else
      for t in /proc/"$p"/task/*; do echo "  $(basename "$t") $(cat "$t/comm" 2>/dev/null) $(cat "$t/wchan" 2>/dev/null)"; done
    fi
  done
}

# The verdict of XCTest's closing lines, once the bundle has finished ("" until then).
closing_verdict() {
  local line
  line="$(grep -E "^Test Suite '(All tests|Selected tests)' (passed|failed)" "$log" | tail -n 1)"
  case "$line" in
    *"' passed"*) echo 0 ;;
    *"' failed"*) echo 1 ;;
  esac
}

start=$SECONDS
finished_at=""
status=""
while kill -0 "$pid" 2>/dev/null; do
  sleep 2
  kill -0 "$pid" 2>/dev/null || break
  if [ $((SECONDS - start)) -ge "$limit" ]; then
    diagnose "still running after ${limit} s" >>"$log" 2>&1
    kill -KILL -- "-$pgid" 2>/dev/null
    status=124
    break
  fi
  verdict="$(closing_verdict)"
  if [ -n "$verdict" ]; then
    [ -n "$finished_at" ] || finished_at=$SECONDS
    if [ $((SECONDS - finished_at)) -ge 60 ]; then
      diagnose "warning: the tests finished but their process did not exit within 60 s" >>"$log" 2>&1
      kill -KILL -- "-$pgid" 2>/dev/null
      status="$verdict"
      break
    fi
  fi
done
wait "$pid" 2>/dev/null
rc=$?
# tail --pid ends by itself once the command is gone, after showing the rest of the log.
wait "$tailer" 2>/dev/null
if [ "$status" = 124 ]; then
  echo "bounded: stopped '$*' after ${limit} s (see the stacks above)"
  exit 124
fi
[ -n "$status" ] && exit "$status"
exit "$rc"
