#!/usr/bin/env bash
# The tests that exercise C (libssh2 and the fast path's interposed OpenSSL entry points) and
# threads (the tunnel engine), built and run again under AddressSanitizer and under
# ThreadSanitizer, C targets included. scripts/test.sh runs this after the main run; it needs
# what that run set up (the test user, docker, the base image).
#
# Which tests: the unit tests (DbgboxKitTests: the fast path's self-test, the session and file
# code), the tunnel engine and its fault suite in-process (TunnelEngineTests, TunnelFaultTests),
# up/down (UpDownTests), the forwards' container session and its thread (ForwardTests) and exec
# channels on the engine's node session (RemoteOperationTests), with a sanitizer build of dbgbox as
# the installed binary. The rest
# (image builds, IDE output, config differentials) exercise neither C nor threads beyond these.
# Fails when a test fails or a sanitizer reports anything. LeakSanitizer is off: everything it
# reports here is Foundation's or XCTest's (see Sources/CSanitizerDefaults).
set -euo pipefail
cd "$(dirname "$0")/.."
FILTER="${DBGBOX_SANITIZER_FILTER:-DbgboxKitTests|TunnelEngineTests|TunnelFaultTests|UpDownTests|ForwardTests|RemoteOperationTests}"
status=0
for san in address thread; do
  scratch=".build-$san"
  flags=(-Xswiftc "-sanitize=$san" -Xcc "-fsanitize=$san")
  prefix="$(mktemp -d "/tmp/dbgbox-$san-prefix.XXXXXX")"
  chmod 0755 "$prefix"
  DBGBOX_SCRATCH="$scratch" bash scripts/install.sh --debug --sanitize "$san" --prefix "$prefix"
  log="$(mktemp "/tmp/dbgbox-$san-log.XXXXXX")"
  echo "sanitizers: $san: building and running $FILTER" >&2
  # Bounded in time, line buffered, output to a file (see scripts/bounded.sh).
  ASAN_OPTIONS=detect_leaks=0 DBGBOX_SANITIZER="$san" DBGBOX_BIN="$prefix/bin/dbgbox" \
    bash scripts/bounded.sh "${DBGBOX_SANITIZER_LIMIT:-900}" "$log" \
    stdbuf -oL -eL swift test --disable-swift-testing --scratch-path "$scratch" "${flags[@]}" --filter "$FILTER" || status=1
  if grep -qE "ERROR: AddressSanitizer|WARNING: ThreadSanitizer|ERROR: ThreadSanitizer" "$log"; then
    echo "sanitizers: $san: REPORTED (see above)"
    status=1
  else
    echo "sanitizers: $san: no report"
  fi
  # scripts/test.sh counts the per-test results of every run in its own log.
  [ -z "${DBGBOX_RUN_LOG:-}" ] || cat "$log" >>"$DBGBOX_RUN_LOG"
  rm -rf "$prefix" "$log"
done
exit "$status"
