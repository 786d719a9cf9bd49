"""stats exporter: the module's own numbers as Prometheus metrics, read from Valkey at each scrape.

- every AGENT.STATS pair `name value` becomes `agentic_<name>`: a counter (`agentic_<name>_total`)
  for the module's counters and the `_count` of its latency histograms, a gauge for everything else
  (percentiles, queue depths, memory); `topic_subscribers:<slug>` becomes
  `agentic_topic_subscribers{topic="<slug>"}`;
- `INFO agentic_classify`: numeric fields not already exported become gauges under their INFO
  name (`agentic_sidecars_live`, ...), text fields (model status, backend, sidecar devices, ...)
  the labels of `agentic_classify_info` (value 1);
- `topic_stream_len{topic}` (XLEN of every topic:<slug> of the catalog) and `news_raw_len`;
- `agentic_up`: 1 when Valkey answered this scrape, else 0 (and nothing else)."""

from __future__ import annotations

import logging
import re
import threading

import redis
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .config import Config
from .connection import TRANSIENT_ERRORS, connect
from .module import NEWS_RAW, classify_info, stats, topic_slugs, topic_stream
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
    delivery_messages delivery_message_bytes panics_caught load_errors
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
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def collect(self):
        up = GaugeMetricFamily(_metric_name("up"), "1 when Valkey answered this scrape")
        try:
            module_stats = stats(self.client)
            info = classify_info(self.client)
            slugs = topic_slugs(self.client)
            lengths = self.client.pipeline(transaction=False)
            for slug in slugs:
                lengths.xlen(topic_stream(slug))
            lengths.xlen(NEWS_RAW)
            *topic_lengths, news_raw_len = lengths.execute()
        except (*TRANSIENT_ERRORS, redis.ResponseError) as e:
            log.warning("scrape failed: %s", e)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        families = stats_families(module_stats)
        yield from families
        yield from info_families(info, {f.name for f in families})
        topic_len = GaugeMetricFamily("topic_stream_len", "Length of each topic stream", labels=["topic"])
        for slug, length in zip(slugs, topic_lengths, strict=True):
            topic_len.add_metric([slug], length)
        yield topic_len
        yield GaugeMetricFamily("news_raw_len", "Length of the news_raw stream", value=news_raw_len)


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
