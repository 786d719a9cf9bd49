#!/bin/sh
# Subscribes the demo users that the gateway's home page offers (AGENTIC_DEMO_USERS in
# compose.yaml), with the interests scripts/dev.sh gives them; a user who already has interests is
# left as is, so a restart keeps what was changed in the UI. Valkey: $VALKEY_URL.
set -eu

cli() { valkey-cli -u "${VALKEY_URL:-redis://valkey:6379}" "$@"; }

subscribe() {
  user="user:{$1}"
  shift
  if [ -z "$(cli AGENT.INTERESTS "$user")" ]; then
    cli AGENT.SUBSCRIBE "$user" "$@" >/dev/null
  fi
}

subscribe alice technology science business
subscribe bob sports entertainment
subscribe carol politics climate health
