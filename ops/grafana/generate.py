#!/usr/bin/env python3
"""Writes the Grafana dashboard of valkey-agentic and its provisioning files.

    python3 ops/grafana/generate.py [--out DIR]      (default: next to this script)

Outputs, committed and never edited by hand (ops/tests/test_grafana.py regenerates them and
compares byte for byte, and checks every query against real /metrics scrapes):
    dashboards/agentic.json                   the dashboard
    provisioning/datasources/prometheus.yaml  the Prometheus datasource (uid "prometheus")
    provisioning/dashboards/agentic.yaml      loads dashboards/ mounted at /etc/grafana/dashboards

Module numbers are AGENT.STATS through redis_exporter -script (redis_script_values{key="..."},
ops/prometheus/agentic.lua); its percentiles (_p50, _p99, ...) are since the server started.
"""

from __future__ import annotations

import argparse
import json
import os

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
DASHBOARD_UID = "valkey-agentic"
# Where docker/compose.yaml mounts ops/grafana/dashboards in the Grafana container.
DASHBOARDS_MOUNT = "/etc/grafana/dashboards"
PROMETHEUS_URL = "http://prometheus:9090"

RATE = "$__rate_interval"


def stat(name: str) -> str:
    """An AGENT.STATS value as redis_exporter exports it."""
    return f'redis_script_values{{key="{name}"}}'


def per_second(name: str) -> str:
    """Rate of an AGENT.STATS counter (exported as a gauge, but monotonic until a restart)."""
    return f"rate({stat(name)}[{RATE}])"


class Layout:
    """Places panels left to right, two per row, in titled sections."""

    WIDTH = 12
    HEIGHT = 8

    def __init__(self) -> None:
        self.panels: list[dict] = []
        self.y = 0
        self.x = 0

    def _next_id(self) -> int:
        return len(self.panels) + 1

    def section(self, title: str) -> None:
        if self.x:
            self.y += self.HEIGHT
            self.x = 0
        self.panels.append(
            {
                "id": self._next_id(),
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def panel(self, title: str, description: str, unit: str, targets: list[tuple[str, str]], kind: str = "timeseries") -> None:
        panel = {
            "id": self._next_id(),
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "gridPos": {"h": self.HEIGHT, "w": self.WIDTH, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": _options(kind),
            "targets": [
                {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                for i, (expr, legend) in enumerate(targets)
            ],
        }
        self.panels.append(panel)
        self.x += self.WIDTH
        if self.x >= 24:
            self.x = 0
            self.y += self.HEIGHT


def _options(kind: str) -> dict:
    if kind == "stat":
        return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value", "graphMode": "area"}
    return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}, "tooltip": {"mode": "multi", "sort": "none"}}


def gateway_quantile(q: float) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate(gateway_delivery_latency_ms_bucket[{RATE}])))"


def panels() -> list[dict]:
    lay = Layout()

    lay.section("Pipeline")
    lay.panel(
        "Ingest (articles/s)",
        "Articles the fetchers wrote to news_raw, and articles the in-server pipeline read from it.",
        "short",
        [
            (f"sum(rate(fetcher_articles_written_total[{RATE}]))", "fetchers wrote"),
            (per_second("pipeline_read"), "pipeline read"),
        ],
    )
    lay.panel(
        "Classify throughput (/s)",
        "Texts the model embedded (every AGENT.CLASSIFY caller), and pipeline articles classified.",
        "short",
        [
            (per_second("classify_texts"), "texts classified"),
            (per_second("pipeline_classified"), "pipeline articles classified"),
        ],
    )
    lay.panel(
        "Delivery throughput (/s)",
        "Feed entries delivered by every fan-out (AGENT.FANOUT and the pipeline), and pipeline articles fanned out.",
        "short",
        [
            (per_second("fanout_deliveries"), "feed deliveries"),
            (per_second("pipeline_delivered"), "articles delivered"),
        ],
    )
    lay.panel(
        "Pipeline backlog (entries)",
        "news_raw entries the pipeline's consumer group has not read or not acknowledged, in flight, and the "
        "fetchers' own reading (they pause at --max-backlog).",
        "short",
        [
            (stat("pipeline_backlog"), "backlog (unread + pending)"),
            (stat("pipeline_inflight"), "in flight"),
            ("max(fetcher_backlog)", "fetcher's reading"),
        ],
    )
    lay.panel(
        "Pipeline lag (ms, since server start)",
        "news_raw XADD to acknowledgement after fan-out. All-time percentiles of AGENT.STATS.",
        "ms",
        [
            (stat("pipeline_lag_ms_p50"), "p50"),
            (stat("pipeline_lag_ms_p99"), "p99"),
        ],
    )
    lay.panel(
        "Forced drops and held-back trims (per 5 min)",
        "stream_forced_drops: topic-stream entries dropped unread above topic-hard-maxlen (alerted). "
        "stream_trim_deferred: trims held back because a consumer group had not processed the entries.",
        "short",
        [
            (f"increase({stat('stream_forced_drops')}[5m])", "dropped unread"),
            (f"increase({stat('stream_trim_deferred')}[5m])", "trims held back"),
        ],
    )

    lay.section("Classification")
    lay.panel(
        "Classify latency (µs, since server start)",
        "AGENT.CLASSIFY call to answer, and model time per batch. All-time percentiles of AGENT.STATS.",
        "µs",
        [
            (stat("classify_latency_us_p50"), "call p50"),
            (stat("classify_latency_us_p99"), "call p99"),
            (stat("classify_inference_us_p99"), "inference per batch p99"),
        ],
    )
    lay.panel(
        "Classifiers live",
        "model_ready: the CPU pool's model is loaded. sidecars_live: GPU sidecars registered. Both 0 means no classifier (alerted).",
        "short",
        [
            (stat("model_ready"), "CPU model ready"),
            (stat("sidecars_live"), "sidecars live"),
        ],
        kind="stat",
    )
    lay.panel(
        "GPU sidecars (/s)",
        "Batches and texts the sidecars classified, requests that timed out there, and fallbacks to the CPU pool.",
        "short",
        [
            (per_second("sidecar_batches"), "batches"),
            (per_second("sidecar_texts"), "texts"),
            (per_second("sidecar_timeouts"), "timeouts"),
            (per_second("sidecar_fallbacks"), "fallbacks to CPU"),
        ],
    )
    lay.panel(
        "Classify queue",
        "Requests waiting for a pool worker, and refusals past classify-queue-max (/s).",
        "short",
        [
            (stat("classify_queue_depth"), "waiting"),
            (per_second("classify_rejected"), "rejected /s"),
        ],
    )
    lay.panel(
        "Classify tiers (/s)",
        "Texts answered by the static tier and by the encoder, escalations the cascade sent on, "
        "and texts below the escalation threshold that the budget kept on the static tier.",
        "short",
        [
            (per_second("classify_tier_static"), "static tier"),
            (per_second("classify_tier_model"), "encoder"),
            (per_second("classify_escalations"), "escalated"),
            (per_second("classify_escalations_over_budget"), "over budget"),
        ],
    )
    lay.panel(
        "Cascade budget and self-training",
        "Escalation budget (texts/s; -1 = not limited yet), escalations waiting for the encoder, "
        "and the version of the self-trained heads in use.",
        "short",
        [
            (stat("classify_escalation_rate_per_sec"), "budget /s"),
            (stat("classify_escalations_waiting"), "waiting"),
            (stat("classify_head_version"), "head version"),
        ],
    )

    lay.section("Fan-out")
    lay.panel(
        "Fan-out latency (µs, since server start)",
        "A whole fan-out (call to last delivery), and one event-loop slice of it. All-time percentiles of AGENT.STATS.",
        "µs",
        [
            (stat("fanout_latency_us_p50"), "fan-out p50"),
            (stat("fanout_latency_us_p99"), "fan-out p99"),
            (stat("fanout_slice_us_p99"), "slice p99"),
        ],
    )
    lay.panel(
        "Delivery announcements (/s)",
        "Delivery-channel messages the module published (one per fan-out slice) and the gateways received.",
        "short",
        [
            (per_second("delivery_messages"), "published"),
            (f"sum(rate(gateway_delivery_messages_total[{RATE}]))", "received by gateways"),
        ],
    )

    lay.section("Gateway")
    lay.panel(
        "Open WebSockets",
        "User and topic feed sockets, all gateway replicas.",
        "short",
        [("sum by (kind) (gateway_sockets)", "{{kind}}")],
    )
    lay.panel(
        "Entries sent (/s)",
        "Feed entries written to sockets by how they were read: backlog, resume, live, resync.",
        "short",
        [(f"sum by (mode) (rate(gateway_entries_sent_total[{RATE}]))", "{{mode}}")],
    )
    lay.panel(
        "Resyncs and drops (/s)",
        "Sockets re-read from Valkey (slow client, reconnect), and live entries dropped from full socket queues.",
        "short",
        [
            (f"sum by (reason) (rate(gateway_resyncs_total[{RATE}]))", "resync: {{reason}}"),
            (f"sum(rate(gateway_entries_dropped_total[{RATE}]))", "dropped"),
        ],
    )
    lay.panel(
        "Ingest to socket latency (ms)",
        "From the article entering news_raw to the gateway writing the live entry to a socket.",
        "ms",
        [(gateway_quantile(0.5), "p50"), (gateway_quantile(0.99), "p99")],
    )

    lay.section("Valkey")
    lay.panel(
        "Memory vs maxmemory",
        "used_memory (the model and its length plans included) against maxmemory (0 = unbounded).",
        "bytes",
        [
            ("redis_memory_used_bytes", "used"),
            ("redis_memory_max_bytes", "maxmemory"),
        ],
    )
    lay.panel(
        "Module memory",
        "Memory of the module's structures: user values and the subscriber index.",
        "bytes",
        [
            (stat("user_bytes"), "user values"),
            (stat("index_bytes"), "subscriber index"),
        ],
    )
    return lay.panels


def dashboard() -> dict:
    return {
        "uid": DASHBOARD_UID,
        "title": "valkey-agentic",
        "description": "The in-server pipeline, classification, fan-out, gateways and Valkey. Generated by ops/grafana/generate.py.",
        "tags": ["valkey", "agentic"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "",
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels(),
    }


DATASOURCES_YAML = f"""\
# Generated by ops/grafana/generate.py; do not edit.
apiVersion: 1
datasources:
  - name: Prometheus
    uid: {DATASOURCE["uid"]}
    type: prometheus
    access: proxy
    url: {PROMETHEUS_URL}
    isDefault: true
"""

DASHBOARDS_YAML = f"""\
# Generated by ops/grafana/generate.py; do not edit.
apiVersion: 1
providers:
  - name: valkey-agentic
    type: file
    disableDeletion: true
    allowUiUpdates: false
    options:
      path: {DASHBOARDS_MOUNT}
"""


def outputs() -> dict[str, str]:
    """Relative path -> content of every generated file."""
    return {
        "dashboards/agentic.json": json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n",
        "provisioning/datasources/prometheus.yaml": DATASOURCES_YAML,
        "provisioning/dashboards/agentic.yaml": DASHBOARDS_YAML,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)), help="folder to write into")
    out = parser.parse_args().out
    for rel, content in outputs().items():
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(content)
        print(path)


if __name__ == "__main__":
    main()
