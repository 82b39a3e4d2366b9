#!/usr/bin/env bash
# Builds dbgbox in release mode and installs it under PREFIX (default ~/.local):
#   PREFIX/bin/dbgbox and PREFIX/share/dbgbox/templates/.
# dbgbox finds its templates relative to its own installed location.
# Usage: scripts/install.sh [--prefix DIR] [--debug] [--sanitize address|thread]
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${HOME}/.local"; config=release; flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --debug) config=debug; shift ;;
    --sanitize)
      case "${2:-}" in address|thread) ;; *) echo "install.sh: --sanitize takes address or thread" >&2; exit 2 ;; esac
      flags=(-Xswiftc "-sanitize=$2" -Xcc "-fsanitize=$2"); shift 2 ;;
    *) echo "install.sh: unknown argument $1 (use --prefix DIR, --debug, --sanitize address|thread)" >&2; exit 2 ;;
  esac
done
scratch="${DBGBOX_SCRATCH:-.build}"
swift build -c "$config" --scratch-path "$scratch" ${flags[@]+"${flags[@]}"} --product dbgbox >&2
bin="$(swift build -c "$config" --scratch-path "$scratch" ${flags[@]+"${flags[@]}"} --show-bin-path)"
install -d "$prefix/bin" "$prefix/share/dbgbox/templates"
install -m 0755 "$bin/dbgbox" "$prefix/bin/dbgbox"
cp -R templates/. "$prefix/share/dbgbox/templates/"
chmod -R a+rX "$prefix/share/dbgbox"
echo "installed $prefix/bin/dbgbox" >&2
