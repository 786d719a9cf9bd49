#!/usr/bin/env bash
# ACL users for a deployment (ops/acl/README.md):
#   scripts/acl-users.sh render DIR [HOST:PORT]
# writes DIR/users.acl (ops/acl/users.acl with a random password per user, mode 600) and
# DIR/users.env (per user VALKEY_PASSWORD_<USER>=<password> and
# VALKEY_URL_<USER>=redis://<user>:<password>@HOST:PORT, mode 600).
# Existing files are kept: passwords stay the same across restarts.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = render ] && [ -n "${2:-}" ] || { echo "usage: $0 render DIR [HOST:PORT]" >&2; exit 2; }
dir="$2"
addr="${3:-127.0.0.1:6379}"
mkdir -p "$dir"
if [ -s "$dir/users.acl" ] && [ -s "$dir/users.env" ]; then
  exit 0
fi
umask 077
acl="$(cat ops/acl/users.acl)"
env=""
for user in $(grep -o 'CHANGE-ME-[a-z-]*' ops/acl/users.acl | sed 's/^CHANGE-ME-//' | sort -u); do
  password="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  acl="${acl//CHANGE-ME-$user/$password}"
  name="$(echo "$user" | tr 'a-z-' 'A-Z_')"
  env+="VALKEY_PASSWORD_$name=$password"$'\n'"VALKEY_URL_$name=redis://$user:$password@$addr"$'\n'
done
printf '%s\n' "$acl" > "$dir/users.acl"
printf '%s' "$env" > "$dir/users.env"
