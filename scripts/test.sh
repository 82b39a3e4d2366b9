#!/usr/bin/env bash
# The test command (README and .ci/run call this). Sets up what it needs, then runs the unit
# and integration tests. Under CI=true a missing prerequisite fails the run; it is never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh

# Cluster users are never root: the integration tests run dbgbox as this ordinary user,
# in the docker group, as on a real node.
TEST_USER="${DBGBOX_TEST_USER:-dbgtest}"
if ! id "$TEST_USER" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash "$TEST_USER"
fi
# useradd leaves the account locked ("!"), and sshd without PAM refuses even key logins to a
# locked account; a real cluster user's account is usable, so make this one so too.
usermod -p '*' "$TEST_USER"
getent group docker >/dev/null || groupadd docker
usermod -aG docker "$TEST_USER"

# Install the binary where the test user can run it, with its templates beside it: this also
# tests that templates are found from the installed location.
PREFIX="$(mktemp -d /tmp/dbgbox-test-prefix.XXXXXX)"
chmod 0755 "$PREFIX"
bash scripts/install.sh --debug --prefix "$PREFIX"

export DBGBOX_BIN="$PREFIX/bin/dbgbox" DBGBOX_TEST_USER="$TEST_USER"
export DBGBOX_BASE_IMAGE="${DBGBOX_BASE_IMAGE:-dbgbox-base/debian:bookworm}"
status=0
log="$(mktemp /tmp/dbgbox-test-log.XXXXXX)"
# XCTest only (there are no Swift Testing tests); its output is kept for the summary line. Line
# buffered, so the log shows how far a run got; bounded in time (DBGBOX_TEST_LIMIT seconds, the
# build included) so a hang fails the run with a diagnosis.
bash scripts/bounded.sh "${DBGBOX_TEST_LIMIT:-2100}" "$log" \
  stdbuf -oL -eL swift test --disable-swift-testing "$@" || status=$?
rm -rf "$PREFIX"
# The C and thread tests again under AddressSanitizer and ThreadSanitizer (scripts/sanitizers.sh).
# A full run does this (CI always); DBGBOX_SANITIZERS=0 or a filter given as arguments skips it.
if [ "${CI:-}" = true ] || { [ "$#" -eq 0 ] && [ "${DBGBOX_SANITIZERS:-1}" != 0 ]; }; then
  DBGBOX_RUN_LOG="$log" bash scripts/sanitizers.sh || status=1
fi
# One plain closing line: N passed, N failed, counted from XCTest's per-test results (the
# sanitizer runs' included).
passed="$(grep -cE "^Test Case '.*' passed" "$log" || true)"
failed="$(grep -cE "^Test Case '.*' failed" "$log" || true)"
skipped="$(grep -cE "^Test Case '.*' skipped" "$log" || true)"
rm -f "$log"
if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
  echo "tests: no test ran" >&2
  status=1
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
