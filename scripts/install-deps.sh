#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test valkey-agentic.
# Idempotent: skips what is already there. Needs root (or sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v valkey-server >/dev/null 2>&1 || need_apt+=(valkey-server valkey-tools)
dpkg -s libclang-dev >/dev/null 2>&1 || need_apt+=(libclang-dev)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)

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

# The package enables a systemd unit; tests start their own servers, so none is needed.
valkey-server --version
