#!/usr/bin/env bash
# The whole stack in the foreground, natively: valkey-server with the module, the real model and
# the in-server pipeline; the fetcher (synthetic articles, a JSONL/CSV replay, or RSS feeds); the
# gateway with the UI; demo users. Ctrl-C stops everything this script started (by PID).
#
#   scripts/dev.sh                      synthetic articles at $RATE/s (default 2)
#   REPLAY=file.jsonl scripts/dev.sh    replay a file (id,title,text[,url]) in a loop
#   RSS="https://a/feed https://b/rss" scripts/dev.sh   poll real feeds every $RSS_INTERVAL s
#
# Ports: PORT (Valkey, 6379), GATEWAY_PORT (8080), PROMETHEUS_PORT (9090), EXPORTER_PORT (9121).
# Data (AOF, Prometheus's) in .dev-data/. Prometheus and redis_exporter start when installed
# (`make deps-ops`); NO_PROMETHEUS=1 leaves them out.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${PORT:-6379}"
GATEWAY_PORT="${GATEWAY_PORT:-8080}"
RATE="${RATE:-2}"
RSS_INTERVAL="${RSS_INTERVAL:-300}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
EXPORTER_PORT="${EXPORTER_PORT:-9121}"
MODEL_DIR="${MODEL_DIR:-$PWD/model/out/real}"
DEMO_USERS="alice bob carol"
BIN="$PWD/target/release"
mkdir -p .dev-data
# One ACL user per component (ops/acl/README.md), random passwords made on the first start.
bash scripts/acl-users.sh render .dev-data "127.0.0.1:$PORT"
set -a; . .dev-data/users.env; set +a

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

cli() { valkey-cli -p "$PORT" "$@"; }

if cli PING >/dev/null 2>&1; then
  echo "dev: something already answers on port $PORT; stop it or run with PORT=<free port>" >&2
  exit 1
fi

valkey-server --port "$PORT" --bind 127.0.0.1 --dir "$PWD/.dev-data" --appendonly yes --aclfile "$PWD/.dev-data/users.acl" \
  --loadmodule "$BIN/libagentic.so" model-dir "$MODEL_DIR" pipeline yes \
  >.dev-data/valkey.log 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do cli PING >/dev/null 2>&1 && break; sleep 0.1; done
cli MODULE LIST | grep -q agentic || { echo "dev: the module did not load; see .dev-data/valkey.log" >&2; exit 1; }

echo "dev: waiting for the model to load..."
for _ in $(seq 1 600); do
  status="$(cli INFO agentic_classify | tr -d '\r' | sed -n 's/^agentic_model_status://p')"
  [ "$status" = ready ] && break
  [ "$status" = failed ] && { cli INFO agentic_classify; exit 1; }
  sleep 0.2
done

# Demo users: two or three interests each (kept if they already exist).
i=0
for u in $DEMO_USERS; do
  if [ "$(cli AGENT.INTERESTS "user:{$u}" | wc -w)" = 0 ]; then
    case $i in
      0) cli AGENT.SUBSCRIBE "user:{$u}" technology science business >/dev/null ;;
      1) cli AGENT.SUBSCRIBE "user:{$u}" sports entertainment >/dev/null ;;
      *) cli AGENT.SUBSCRIBE "user:{$u}" politics climate health >/dev/null ;;
    esac
  fi
  i=$((i + 1))
done

fetch_args=(--valkey "redis://fetcher:$VALKEY_PASSWORD_FETCHER@127.0.0.1:$PORT" --metrics-addr "127.0.0.1:9187")
if [ -n "${RSS:-}" ]; then
  rss=()
  for url in $RSS; do rss+=(--url "$url"); done
  "$BIN/agentic-fetcher" "${fetch_args[@]}" rss "${rss[@]}" --interval "$RSS_INTERVAL" >.dev-data/fetcher.log 2>&1 &
  source="RSS: $RSS"
elif [ -n "${REPLAY:-}" ]; then
  "$BIN/agentic-fetcher" "${fetch_args[@]}" replay --file "$REPLAY" --rate "$RATE" --loop >.dev-data/fetcher.log 2>&1 &
  source="replay of $REPLAY at $RATE/s"
else
  "$BIN/agentic-fetcher" "${fetch_args[@]}" generate --rate "$RATE" >.dev-data/fetcher.log 2>&1 &
  source="synthetic articles at $RATE/s"
fi
pids+=($!)

"$BIN/agentic-gateway" --valkey "redis://gateway:$VALKEY_PASSWORD_GATEWAY@127.0.0.1:$PORT" --listen "127.0.0.1:$GATEWAY_PORT" \
  --ui-dir "$PWD/gateway/ui/dist" --demo-users "$(echo $DEMO_USERS | tr ' ' ,)" >.dev-data/gateway.log 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$GATEWAY_PORT") 2>/dev/null && break; sleep 0.1; done

# Monitoring: redis_exporter as the `exporter` ACL user with the module's script, and Prometheus
# scraping it, the gateway and the fetcher with the stack's alert rules.
if [ -z "${NO_PROMETHEUS:-}" ] && command -v prometheus >/dev/null && command -v prometheus-redis-exporter >/dev/null; then
  REDIS_ADDR="redis://127.0.0.1:$PORT" REDIS_USER=exporter REDIS_PASSWORD="$VALKEY_PASSWORD_EXPORTER" \
    REDIS_EXPORTER_SCRIPT="$PWD/ops/prometheus/agentic.lua" \
    prometheus-redis-exporter -web.listen-address "127.0.0.1:$EXPORTER_PORT" >.dev-data/redis-exporter.log 2>&1 &
  pids+=($!)
  bash scripts/dev-prometheus.sh render .dev-data "$GATEWAY_PORT" 9187 "$EXPORTER_PORT" "$PROMETHEUS_PORT"
  prometheus --config.file=.dev-data/prometheus.yml --storage.tsdb.path=.dev-data/prometheus \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" >.dev-data/prometheus.log 2>&1 &
  pids+=($!)
  monitoring="  prometheus     http://127.0.0.1:$PROMETHEUS_PORT/targets   (redis_exporter on :$EXPORTER_PORT; try the query
                 redis_script_values{key=\"pipeline_backlog\"}; Grafana: docker/compose.yaml, ops/grafana)"
elif [ -n "${NO_PROMETHEUS:-}" ]; then
  monitoring="  prometheus     left out (NO_PROMETHEUS is set)"
else
  monitoring="  prometheus     not installed: make deps-ops installs Debian's prometheus and redis_exporter"
fi

cat <<MSG

valkey-agentic is running (logs in .dev-data/; Ctrl-C stops everything):
  feed UI        http://127.0.0.1:$GATEWAY_PORT/            (demo users: $DEMO_USERS)
  alice's feed   http://127.0.0.1:$GATEWAY_PORT/u/alice
  operations     http://127.0.0.1:$GATEWAY_PORT/ops
  gateway        http://127.0.0.1:$GATEWAY_PORT/metrics   http://127.0.0.1:$GATEWAY_PORT/healthz
  fetcher        http://127.0.0.1:9187/metrics            ($source)
  valkey         valkey-cli -p $PORT   (try: AGENT.FEED 'user:{alice}' COUNT 5, INFO agentic_stats)
$monitoring
  ACL users      the fetcher and the gateway run as their own users (.dev-data/users.acl;
                 URLs with passwords in .dev-data/users.env; see ops/acl/README.md)
MSG

# Stop everything as soon as any part exits.
wait -n "${pids[@]}" || true
[ "$stopping" = yes ] || echo "dev: a process exited; see .dev-data/*.log"
