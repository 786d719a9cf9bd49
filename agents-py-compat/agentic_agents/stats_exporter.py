"""stats exporter: the module's own numbers as Prometheus metrics, read from Valkey at each scrape.

- every AGENT.STATS pair `name value` becomes `agentic_<name>`: a counter (`agentic_<name>_total`)
  for the module's counters and the `_count` of its latency histograms, a gauge for everything else
  (percentiles, queue depths, memory); `topic_subscribers:<slug>` becomes
  `agentic_topic_subscribers{topic="<slug>"}`;
- `INFO agentic_classify`: numeric fields not already exported become gauges under their INFO
  name (`agentic_sidecars_live`, ...), text fields (model status, backend, sidecar devices, ...)
  the labels of `agentic_classify_info` (value 1);
- `topic_stream_len{topic}` (XLEN of every topic:<slug> of the catalog) and `news_raw_len`;
- `agentic_up`: 1 when Valkey answered this scrape, else 0 (and nothing else).

On a Valkey Cluster the module's numbers are each node's own (its users, its deliveries), so every
scrape reads AGENT.STATS and INFO agentic_classify from every node, primaries and replicas, and each
sample of those families gets the labels `node="<host:port>"` and `role="primary"|"replica"`: one
family per metric, one sample per node. A node that does not answer gives `agentic_up{node=...} 0`
and nothing else of its own; the others still export. The stream lengths are cluster-wide (XLEN is
routed to the stream's node) and stay unlabelled."""

from __future__ import annotations

import logging
import re
import threading

import redis
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from redis.cluster import ClusterNode
from redis.exceptions import RedisClusterException

from .config import Config
from .connection import TRANSIENT_ERRORS, Client, connect, is_cluster
from .module import NEWS_RAW, classify_info, node_client, parse_stats, stats, topic_slugs, topic_stream
from .runtime import main_for

log = logging.getLogger(__name__)

METRICS_PORT = 9121
PREFIX = "agentic_"
# A scrape must answer even when Valkey does not.
SOCKET_TIMEOUT_S = 5.0
TOPIC_SUBSCRIBERS = "topic_subscribers:"

# The counters of module/src/metrics.rs; any other AGENT.STATS name is exported as a gauge, which is
# right for a value that can go down and harmless for a new counter.
MODULE_COUNTERS = frozenset(
    """
    fanout_calls fanout_deliveries fanout_duplicates_skipped fanout_stale_subscribers
    fanout_wrongtype_skipped fanout_slices fanout_blocked_calls feed_evictions
    seen_false_positive_expected stream_appends stream_trimmed stream_trim_deferred stream_forced_drops
    subscribe_calls unsubscribe_calls feed_reads feed_blocked_reads feed_read_timeouts feed_missing_docs
    classify_calls classify_inline_calls classify_failures classify_timeouts classify_rejected
    classify_expired_in_queue classify_batches classify_texts classify_tokens topic_texts_embedded
    topic_writes model_loads model_load_failures pipeline_read pipeline_classified pipeline_delivered
    pipeline_deliveries pipeline_acked pipeline_malformed pipeline_retries pipeline_failures
    delivery_messages delivery_message_bytes delivery_messages_unrouted catalog_copies_received
    cluster_acks_dropped_demoted panics_caught load_errors
    """.split()
)
# INFO agentic_classify fields that are text even when they look like a number (a hex fingerprint
# can be all digits).
INFO_TEXT_FIELDS = frozenset(
    "agentic_model_status agentic_model_error agentic_model_dir agentic_model_fingerprint agentic_backend agentic_sidecar_devices".split()
)


def _metric_name(name: str) -> str:
    return PREFIX + re.sub("[^a-zA-Z0-9_]", "_", name)


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def stats_families(module_stats: dict[str, str]) -> list:
    """AGENT.STATS as metric families (see the module docstring)."""
    families = []
    subscribers = GaugeMetricFamily(_metric_name("topic_subscribers"), "Subscribers per topic", labels=["topic"])
    for name, raw in module_stats.items():
        value = _number(raw)
        if value is None:
            continue
        if name.startswith(TOPIC_SUBSCRIBERS):
            subscribers.add_metric([name[len(TOPIC_SUBSCRIBERS) :]], value)
        elif name in MODULE_COUNTERS or name.endswith("_count"):
            families.append(CounterMetricFamily(_metric_name(name), f"AGENT.STATS {name}", value=value))
        else:
            families.append(GaugeMetricFamily(_metric_name(name), f"AGENT.STATS {name}", value=value))
    families.append(subscribers)
    return families


def info_families(info: dict[str, str], exported: set[str]) -> list:
    """INFO agentic_classify as metric families, leaving out gauges named in `exported`."""
    families = []
    labels = {}
    for field, raw in info.items():
        value = None if field in INFO_TEXT_FIELDS else _number(raw)
        if value is None:
            labels[field.removeprefix(PREFIX)] = raw
        elif field not in exported:
            families.append(GaugeMetricFamily(field, f"INFO agentic_classify {field}", value=value))
    classify = GaugeMetricFamily(_metric_name("classify_info"), "INFO agentic_classify text fields", labels=list(labels))
    classify.add_metric(list(labels.values()), 1)
    families.append(classify)
    return families


class ModuleCollector(Collector):
    def __init__(self, client: Client) -> None:
        self.client = client
        # Every cluster node seen by a scrape: one that drops out of the slot layout (a primary
        # without replicas that died) is still reported, as down.
        self.known_nodes: dict[str, ClusterNode] = {}

    def collect(self):
        if is_cluster(self.client):
            yield from self._collect_cluster()
            return
        up = GaugeMetricFamily(_metric_name("up"), "1 when Valkey answered this scrape")
        try:
            module_stats = stats(self.client)
            info = classify_info(self.client)
            slugs, topic_lengths, news_raw_len = self._stream_lengths()
        except (*TRANSIENT_ERRORS, redis.ResponseError) as e:
            log.warning("scrape failed: %s", e)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from module_families(module_stats, info)
        yield from stream_families(slugs, topic_lengths, news_raw_len)

    def _stream_lengths(self) -> tuple[list[str], list[int], int]:
        """The catalog's slugs, the XLEN of their topic streams and of news_raw (one pipeline on a
        standalone server; on a cluster each XLEN goes to the stream's own node)."""
        slugs = topic_slugs(self.client)
        if is_cluster(self.client):
            return slugs, [self.client.xlen(topic_stream(slug)) for slug in slugs], self.client.xlen(NEWS_RAW)
        lengths = self.client.pipeline(transaction=False)
        for slug in slugs:
            lengths.xlen(topic_stream(slug))
        lengths.xlen(NEWS_RAW)
        *topic_lengths, news_raw_len = lengths.execute()
        return slugs, topic_lengths, news_raw_len

    def _collect_cluster(self):
        """One scrape of every node, merged into one family per metric (see the module docstring)."""
        up = GaugeMetricFamily(_metric_name("up"), "1 when the node answered this scrape", labels=["node", "role"])
        merged: dict[str, Metric] = {}
        for node in self._cluster_nodes():
            role = node.server_type or "primary"
            try:
                module_stats = parse_stats(node_client(self.client, node).execute_command("AGENT.STATS"))
                info = classify_info(self.client, node)
            except (*TRANSIENT_ERRORS, redis.ResponseError) as e:
                log.warning("scrape of %s failed: %s", node.name, e)
                up.add_metric([node.name, role], 0)
                continue
            up.add_metric([node.name, role], 1)
            for family in module_families(module_stats, info):
                _merge(merged, family, {"node": node.name, "role": role})
        yield up
        yield from merged.values()
        try:
            yield from stream_families(*self._stream_lengths())
        except (redis.RedisError, RedisClusterException) as e:
            log.warning("stream lengths unavailable: %s", e)

    def _cluster_nodes(self) -> list[ClusterNode]:
        """The nodes of the cluster's current layout, then the ones seen before and gone since."""
        for node in self.client.get_nodes():
            self.known_nodes[node.name] = node
        return list(self.known_nodes.values())


def module_families(module_stats: dict[str, str], info: dict[str, str]) -> list:
    """AGENT.STATS and INFO agentic_classify of one server as metric families."""
    families = stats_families(module_stats)
    return families + info_families(info, {f.name for f in families})


def stream_families(slugs: list[str], topic_lengths: list[int], news_raw_len: int) -> list:
    topic_len = GaugeMetricFamily("topic_stream_len", "Length of each topic stream", labels=["topic"])
    for slug, length in zip(slugs, topic_lengths, strict=True):
        topic_len.add_metric([slug], length)
    return [topic_len, GaugeMetricFamily("news_raw_len", "Length of the news_raw stream", value=news_raw_len)]


def _merge(merged: dict[str, Metric], family: Metric, labels: dict[str, str]) -> None:
    """Adds `family`'s samples, with `labels` added, to the family of the same name in `merged`:
    Prometheus wants each metric family once per scrape, whatever number of nodes report it."""
    target = merged.get(family.name)
    if target is None:
        target = merged[family.name] = Metric(family.name, family.documentation, family.type)
    for sample in family.samples:
        target.add_sample(sample.name, {**labels, **sample.labels}, sample.value)


def run(config: Config, stop: threading.Event, *, registry: CollectorRegistry = REGISTRY) -> int:
    """Serves the module's metrics through `registry` until stopped; returns 0 (it handles no items)."""
    client = connect(config.valkey_url, stop, socket_timeout=SOCKET_TIMEOUT_S)
    collector = ModuleCollector(client)
    registry.register(collector)
    log.info("exporting AGENT.STATS and INFO agentic_classify")
    try:
        stop.wait()
    finally:
        registry.unregister(collector)
        client.close()
    return 0


def main() -> None:
    main_for("agentic-stats-exporter", METRICS_PORT, run)


if __name__ == "__main__":
    main()
