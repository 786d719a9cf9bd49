#!/usr/bin/env bash
# Prometheus for `make dev`: the stack's scrape config with the local ports instead of the compose
# stack's service names, and the same alert rules (ops/prometheus/alerts.yml).
#
#   scripts/dev-prometheus.sh render DIR GATEWAY_PORT FETCHER_PORT EXPORTER_PORT PROMETHEUS_PORT
#
# writes DIR/prometheus.yml. scripts/dev.sh starts Debian's prometheus-redis-exporter (as the
# `exporter` ACL user, with ops/prometheus/agentic.lua) and prometheus on it when both are
# installed (`make deps-ops`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

[ "${1:-}" = render ] && [ $# = 6 ] || { echo "usage: $0 render DIR GATEWAY_PORT FETCHER_PORT EXPORTER_PORT PROMETHEUS_PORT" >&2; exit 2; }
dir="$2" gateway="$3" fetcher="$4" exporter="$5" prometheus="$6"
for p in "$gateway" "$fetcher" "$exporter" "$prometheus"; do
  [[ "$p" =~ ^[0-9]+$ ]] && [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || { echo "$0: not a port: $p" >&2; exit 2; }
done
mkdir -p "$dir"
cat >"$dir/prometheus.yml" <<YAML
# Written by scripts/dev-prometheus.sh for make dev; ops/prometheus/prometheus.yml is the compose
# stack's version of the same jobs.
global:
  scrape_interval: 5s
  evaluation_interval: 15s

rule_files:
  - $root/ops/prometheus/alerts.yml

scrape_configs:
  # Valkey and the module: redis_exporter's metrics plus AGENT.STATS (redis_script_values).
  - job_name: valkey
    static_configs:
      - targets: ["127.0.0.1:$exporter"]
  - job_name: gateway
    static_configs:
      - targets: ["127.0.0.1:$gateway"]
  - job_name: fetcher
    static_configs:
      - targets: ["127.0.0.1:$fetcher"]
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$prometheus"]
YAML
