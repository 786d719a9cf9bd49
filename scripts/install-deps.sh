#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test valkey-agentic.
# Idempotent: skips what is already there. Needs root (or sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# --browser: also Debian's Chromium, for the UI's end-to-end test (Playwright's download does not work here).
# --ops: promtool, redis_exporter and docker-compose, for `make test-ops`.
browser=no
ops=no
[ "${1:-}" = "--browser" ] && browser=yes
[ "${1:-}" = "--ops" ] && ops=yes

need_apt=()
command -v valkey-server >/dev/null 2>&1 || need_apt+=(valkey-server valkey-tools)
dpkg -s libclang-dev >/dev/null 2>&1 || need_apt+=(libclang-dev)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)

command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# The TLS tests make a test CA and certificates with it.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
if [ "$browser" = yes ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
fi

if [ "${#need_apt[@]}" -gt 0 ]; then
  # Valkey 8.0.1 is only in bookworm-backports; add that suite next to the stock sources.
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    $SUDO tee /etc/apt/sources.list.d/backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq -t bookworm-backports "${need_apt[@]}" >/dev/null
fi

# promtool, redis_exporter and docker-compose (bookworm's versions, which the compose file's images
# match). No recommends: docker-compose recommends the whole Docker engine, prometheus the node exporter.
if [ "$ops" = yes ]; then
  ops_apt=()
  command -v promtool >/dev/null 2>&1 || ops_apt+=(prometheus)
  command -v prometheus-redis-exporter >/dev/null 2>&1 || ops_apt+=(prometheus-redis-exporter)
  command -v docker-compose >/dev/null 2>&1 || ops_apt+=(docker-compose)
  if [ "${#ops_apt[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${ops_apt[@]}" >/dev/null
    # Where systemd runs, the packages start a Prometheus on :9090 and an exporter on :9121; the
    # tests start their own.
    $SUDO systemctl disable --now prometheus prometheus-redis-exporter >/dev/null 2>&1 || true
  fi
fi

# The UI needs Node >= 20.19 (Vite 7). Debian 12's own nodejs is 18: it cannot build the UI.
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null; then
  echo "install-deps: Node.js >= 20.19 with npm is needed for the UI (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# The package enables a systemd unit; tests start their own servers, so none is needed.
valkey-server --version
