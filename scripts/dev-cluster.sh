#!/usr/bin/env bash
# The whole stack on a local Valkey Cluster (what `make dev CLUSTER=3` runs): $CLUSTER primaries
# with one replica each, on ports $PORT.. ($PORT+2*$CLUSTER-1), every node with the module, the
# real model and the pipeline; the fetcher and the gateway as cluster clients; demo users.
# Ctrl-C stops everything this script started (by PID). Data (nodes.conf, AOF) and logs in
# $DATA_DIR (.dev-data/cluster), one folder per port, so a second run brings the same cluster back.
#
#   CLUSTER=3 scripts/dev-cluster.sh            synthetic articles at $RATE/s (default 2)
#   REPLAY=file.jsonl / RSS="url ..."          as scripts/dev.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PRIMARIES="${CLUSTER:-3}"
PORT="${PORT:-7000}"
GATEWAY_PORT="${GATEWAY_PORT:-8080}"
RATE="${RATE:-2}"
RSS_INTERVAL="${RSS_INTERVAL:-300}"
MODEL_DIR="${MODEL_DIR:-$PWD/model/out/real}"
DEMO_USERS="alice bob carol"
BIN="$PWD/target/release"
VALKEY_SERVER="${VALKEY_SERVER:-valkey-server}"
DATA_DIR="${DATA_DIR:-$PWD/.dev-data/cluster}"
FETCHER_METRICS="${FETCHER_METRICS:-127.0.0.1:9187}"
case "$PRIMARIES" in
  '' | *[!0-9]*) echo "dev-cluster: CLUSTER must be a number of primaries (3 or more)" >&2; exit 2 ;;
esac
[ "$PRIMARIES" -ge 3 ] || { echo "dev-cluster: Valkey Cluster needs at least 3 primaries (CLUSTER=$PRIMARIES)" >&2; exit 2; }
NODES=$((PRIMARIES * 2))
ports=()
for i in $(seq 0 $((NODES - 1))); do ports+=($((PORT + i))); done

pids=()
stopping=no
stop_all() {
  stopping=yes
  trap - INT TERM EXIT
  echo
  echo "stopping: ${pids[*]:-nothing}"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop_all INT TERM EXIT

cli() { valkey-cli -p "$1" "${@:2}"; }
field() { cli "$1" INFO "$2" | tr -d '\r' | sed -n "s/^$3://p"; }

for p in "${ports[@]}"; do
  if cli "$p" PING >/dev/null 2>&1; then
    echo "dev-cluster: something already answers on port $p; stop it or run with PORT=<first free port>" >&2
    exit 1
  fi
done

# One ACL user per component (ops/acl/README.md), the same file on every node.
bash scripts/acl-users.sh render "$DATA_DIR" "127.0.0.1:$PORT"
set -a; . "$DATA_DIR/users.env"; set +a
for p in "${ports[@]}"; do
  dir="$DATA_DIR/$p"
  mkdir -p "$dir"
  "$VALKEY_SERVER" --port "$p" --bind 127.0.0.1 --dir "$dir" --appendonly yes --aclfile "$DATA_DIR/users.acl" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
    --loadmodule "$BIN/libagentic.so" model-dir "$MODEL_DIR" pipeline yes \
    >"$dir/valkey.log" 2>&1 &
  pids+=($!)
done
for p in "${ports[@]}"; do
  for _ in $(seq 1 100); do cli "$p" PING >/dev/null 2>&1 && break; sleep 0.1; done
  cli "$p" MODULE LIST | grep -q agentic || { echo "dev-cluster: the module did not load on $p; see $DATA_DIR/$p/valkey.log" >&2; exit 1; }
done

# A cluster is created once: after that the nodes find each other again from their nodes.conf.
assigned="$(cli "$PORT" CLUSTER INFO | tr -d '\r' | sed -n 's/^cluster_slots_assigned://p')"
if [ "$assigned" = 0 ]; then
  echo "dev-cluster: creating a cluster of $PRIMARIES primaries and $PRIMARIES replicas"
  addrs=()
  for p in "${ports[@]}"; do addrs+=("127.0.0.1:$p"); done
  valkey-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$DATA_DIR/create.log" 2>&1 ||
    { cat "$DATA_DIR/create.log" >&2; exit 1; }
fi

echo "dev-cluster: waiting for the cluster and the model on every node..."
for p in "${ports[@]}"; do
  for _ in $(seq 1 600); do
    [ "$(cli "$p" CLUSTER INFO | tr -d '\r' | sed -n 's/^cluster_state://p')" = ok ] && break
    sleep 0.2
  done
  # Until every node puts each replica in its primary's shard: a node restarted before the shard
  # IDs agree can refuse its own nodes.conf as corrupted (valkey-io/valkey#774).
  for _ in $(seq 1 300); do
    [ "$(cli "$p" CLUSTER SHARDS | tr -d '\r' | grep -cx slots)" = "$PRIMARIES" ] && break
    sleep 0.2
  done
  for _ in $(seq 1 600); do
    status="$(field "$p" agentic_classify agentic_model_status)"
    [ "$status" = ready ] && break
    [ "$status" = failed ] && { cli "$p" INFO agentic_classify; exit 1; }
    sleep 0.2
  done
done

# Demo users, each on the node of its slot (valkey-cli -c follows MOVED).
i=0
for u in $DEMO_USERS; do
  if [ "$(valkey-cli -c -p "$PORT" AGENT.INTERESTS "user:{$u}" | wc -w)" = 0 ]; then
    case $i in
      0) valkey-cli -c -p "$PORT" AGENT.SUBSCRIBE "user:{$u}" technology science business >/dev/null ;;
      1) valkey-cli -c -p "$PORT" AGENT.SUBSCRIBE "user:{$u}" sports entertainment >/dev/null ;;
      *) valkey-cli -c -p "$PORT" AGENT.SUBSCRIBE "user:{$u}" politics climate health >/dev/null ;;
    esac
  fi
  i=$((i + 1))
done

seeds_as() { local s; s="$(for p in "${ports[@]:0:3}"; do printf 'redis://%s@127.0.0.1:%s,' "$1" "$p"; done)"; echo "${s%,}"; }
fetch_args=(--cluster --valkey "$(seeds_as "fetcher:$VALKEY_PASSWORD_FETCHER")" --metrics-addr "$FETCHER_METRICS")
if [ -n "${RSS:-}" ]; then
  rss=()
  for url in $RSS; do rss+=(--url "$url"); done
  "$BIN/agentic-fetcher" "${fetch_args[@]}" rss "${rss[@]}" --interval "$RSS_INTERVAL" >"$DATA_DIR/fetcher.log" 2>&1 &
  source="RSS: $RSS"
elif [ -n "${REPLAY:-}" ]; then
  "$BIN/agentic-fetcher" "${fetch_args[@]}" replay --file "$REPLAY" --rate "$RATE" --loop >"$DATA_DIR/fetcher.log" 2>&1 &
  source="replay of $REPLAY at $RATE/s"
else
  "$BIN/agentic-fetcher" "${fetch_args[@]}" generate --rate "$RATE" >"$DATA_DIR/fetcher.log" 2>&1 &
  source="synthetic articles at $RATE/s"
fi
pids+=($!)

"$BIN/agentic-gateway" --cluster --valkey "$(seeds_as "gateway:$VALKEY_PASSWORD_GATEWAY")" --listen "127.0.0.1:$GATEWAY_PORT" \
  --ui-dir "$PWD/gateway/ui/dist" --demo-users "$(echo $DEMO_USERS | tr ' ' ,)" >"$DATA_DIR/gateway.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$GATEWAY_PORT") 2>/dev/null && break; sleep 0.1; done

ingest="$(valkey-cli -c -p "$PORT" CLUSTER KEYSLOT news_raw)"
cat <<MSG

valkey-agentic is running on a cluster of $PRIMARIES primaries + $PRIMARIES replicas, ports ${ports[0]}-${ports[-1]}
(logs in $DATA_DIR; Ctrl-C stops everything):
  feed UI        http://127.0.0.1:$GATEWAY_PORT/            (demo users: $DEMO_USERS)
  alice's feed   http://127.0.0.1:$GATEWAY_PORT/u/alice
  operations     http://127.0.0.1:$GATEWAY_PORT/ops
  gateway        http://127.0.0.1:$GATEWAY_PORT/metrics   http://127.0.0.1:$GATEWAY_PORT/healthz
  fetcher        http://$FETCHER_METRICS/metrics            ($source)
  valkey         valkey-cli -c -p $PORT   (CLUSTER NODES; news_raw is in slot $ingest;
                 try: AGENT.FEED 'user:{alice}' COUNT 5, INFO agentic_stats on each node)
MSG

wait -n "${pids[@]}" || true
[ "$stopping" = yes ] || echo "dev-cluster: a process exited; see $DATA_DIR/*.log and $DATA_DIR/*/valkey.log"
