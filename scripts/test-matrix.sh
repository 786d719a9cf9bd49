#!/usr/bin/env bash
# Runs the module's integration suites (tests/: single node, replicas, AOF, cluster) against each
# Valkey version given (default: all of scripts/valkey-versions.sh) and prints one line per
# version. A server that cannot load modules at all is reported as skipped, with the reason.
#
#   scripts/test-matrix.sh [VERSION ...]
set -uo pipefail
cd "$(dirname "$0")/.."
MODULE="${AGENTIC_MODULE:-$PWD/target/release/libagentic.so}"
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(8.0.1 8.1.8 9.0.0 9.1.2)

# Whether a server binary can load the module: start it on a free port with the module and ask.
can_load_module() {
  local bin=$1 dir port pid ok=1
  dir=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  ( exec "$bin" --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --loadmodule "$MODULE" >"$dir/out.log" 2>&1 ) &
  pid=$!
  for _ in $(seq 50); do
    if valkey-cli -p "$port" MODULE LIST 2>/dev/null | grep -q agentic; then ok=0; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  [ $ok = 0 ] || LOAD_ERROR=$(grep -m1 -E "crashed by signal|Module .* failed|Error loading" "$dir/out.log" || echo "no answer")
  rm -rf "$dir"
  return $ok
}

failed=0
summary=()
for v in "${versions[@]}"; do
  bin=$(scripts/valkey-versions.sh path "$v") || { summary+=("$v: NOT INSTALLED (make test-matrix installs it)"); failed=1; continue; }
  if ! can_load_module "$bin"; then
    if [[ "$(ldd "$bin" 2>&1)" == *"not a dynamic executable"* ]]; then
      summary+=("$v: SKIPPED - this build ($bin) is statically linked and cannot load modules: $LOAD_ERROR")
    else
      summary+=("$v: FAILED - the server does not load the module: $LOAD_ERROR"); failed=1
    fi
    continue
  fi
  echo "=== Valkey $v ($bin)"
  if VALKEY_SERVER="$bin" cargo test --release -q --no-fail-fast -p agentic-tests 2>&1 | tee "/tmp/agentic-matrix-$v.log" | grep -E "^test result|FAILED|panicked|SKIPPED"; then :; fi
  if grep -q "test result: FAILED\|error: test failed" "/tmp/agentic-matrix-$v.log"; then
    summary+=("$v: FAILED (log: /tmp/agentic-matrix-$v.log)"); failed=1
  else
    passed=$(grep -o "[0-9]* passed" "/tmp/agentic-matrix-$v.log" | awk '{s+=$1} END {print s}')
    summary+=("$v: ok, $passed tests passed")
  fi
done
echo "=== Valkey version matrix"
printf '%s\n' "${summary[@]}"
exit $failed
