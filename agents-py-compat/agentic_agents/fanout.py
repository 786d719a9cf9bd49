"""fanout: the reference's fan-out agent on the module. Reads every `topic:<slug>` stream of the
catalog with the consumer group `cg_fanout` and hands each entry to AGENT.FANOUT, which stores the
document once and delivers a reference to every subscriber's feed inside the server, skipping users
who already got it within `agentic.seen-ttl` (24 h, as the reference's seen sets). The reference's
per-user SADD / EXPIRE / LPUSH / LTRIM / XADD / XTRIM round trips become one command per article.

FEED_LEN, when set, becomes the module's `agentic.feed-len` at startup (CONFIG SET)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import redis
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from .config import Config
from .connection import TRANSIENT_ERRORS, connect
from .group_reader import GroupReader
from .module import agentic, doc_key, topic_stream
from .runtime import LATENCY_BUCKETS, FatalError, main_for, refuse_on_cluster, run_loop
from .topic_catalog import TopicCatalog

log = logging.getLogger(__name__)

GROUP = "cg_fanout"
METRICS_PORT = 9111
READ_COUNT = 64
READ_BLOCK_MS = 500
TOPIC_PREFIX = topic_stream("")


class FanoutMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter("fan_in_total", "Topic stream entries consumed (acknowledged)", registry=registry)
        self.fanned_out = Counter("fan_out_total", "Articles fanned out, by topic", ["topic"], registry=registry)
        self.pushes = Counter("feed_push_total", "Feed entries delivered", registry=registry)
        self.duplicates = Counter(
            "fanout_duplicates_skipped_total", "Deliveries skipped because the user already had the article", registry=registry
        )
        self.errors = Counter(
            "fanout_errors_total",
            "Entries not fanned out: malformed, trimmed (deleted while pending), refused (AGENT.FANOUT error)",
            ["reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "fanout_latency_seconds", "AGENT.FANOUT round trip of one article", buckets=LATENCY_BUCKETS, registry=registry
        )
        self.stream_len = Gauge("topic_stream_len", "Length of each topic stream", ["topic"], registry=registry)


def apply_feed_len(client: redis.Redis, feed_len: int | None) -> None:
    """FEED_LEN is the module's agentic.feed-len: every delivery trims feeds to it."""
    if feed_len is None:
        return
    try:
        client.config_set("agentic.feed-len", feed_len)
    except redis.exceptions.NoPermissionError as e:
        # A least-privilege user (ops/acl/users.acl) may read settings but not change them.
        current = client.config_get("agentic.feed-len").get("agentic.feed-len")
        if current == str(feed_len):
            log.info("FEED_LEN=%d: the module's agentic.feed-len is already %d", feed_len, feed_len)
            return
        raise FatalError(
            f"FEED_LEN={feed_len}: the module's agentic.feed-len is {current} and this user may not change it ({e});"
            f" an operator can: CONFIG SET agentic.feed-len {feed_len}"
        ) from None
    except redis.ResponseError as e:
        raise FatalError(f"FEED_LEN={feed_len}: CONFIG SET agentic.feed-len refused: {e}") from None
    log.info("FEED_LEN=%d: set the module's agentic.feed-len to %d", feed_len, feed_len)


def _document_key(fields: dict[str, str]) -> str:
    """The entry's `doc` field (module and enrich agent), else `doc:{<id>}` from the JSON (the
    reference's entries carry only `data`)."""
    if "doc" in fields:
        return fields["doc"]
    article_id = json.loads(fields["data"]).get("id")
    if article_id in (None, ""):
        raise ValueError("no doc field and no id in data")
    return doc_key(str(article_id))


def run(config: Config, stop: threading.Event, *, registry: CollectorRegistry = REGISTRY, max_items: int | None = None) -> int:
    """Fans out until stopped (or at least `max_items` entries are done); returns the entries handled."""
    metrics = FanoutMetrics(registry)
    client = connect(config.valkey_url, stop)
    refuse_on_cluster(client)
    apply_feed_len(client, config.feed_len)
    catalog = TopicCatalog(client)
    reader = GroupReader(client, GROUP, f"fanout-{socket.gethostname()}", [topic_stream(s) for s in catalog.slugs()])

    def fan_out(stream: str, entry_id: str, fields: dict[str, str] | None) -> None:
        topic = stream[len(TOPIC_PREFIX) :]
        if fields is None:
            metrics.errors.labels(reason="trimmed").inc()
            log.warning("%s %s was deleted before it was fanned out", stream, entry_id)
            return
        try:
            payload = fields["data"]
            document_key = _document_key(fields)
        except (KeyError, ValueError, AttributeError) as e:
            metrics.errors.labels(reason="malformed").inc()
            log.warning("%s %s skipped: malformed entry (%s)", stream, entry_id, e)
            return
        started = time.perf_counter()
        try:
            result = agentic(client).fanout(topic, document_key, payload)
        except redis.ResponseError as e:
            metrics.errors.labels(reason="refused").inc()
            log.warning("%s %s: AGENT.FANOUT refused it: %s", stream, entry_id, e)
            return
        metrics.latency.observe(time.perf_counter() - started)
        metrics.pushes.inc(result.delivered)
        metrics.duplicates.inc(result.duplicates)
        metrics.fanned_out.labels(topic=topic).inc()

    def step(_remaining: int | None) -> int:
        reader.set_streams([topic_stream(s) for s in catalog.slugs()])
        if not reader.streams:
            # An empty catalog (every topic deleted): nothing to read until topics come back.
            stop.wait(READ_BLOCK_MS / 1000)
            return 0
        entries = reader.read(READ_COUNT, READ_BLOCK_MS)
        by_stream: dict[str, list[str]] = {}
        try:
            for stream, entry_id, fields in entries:
                fan_out(stream, entry_id, fields)
                by_stream.setdefault(stream, []).append(entry_id)
            # Acknowledged after delivery: a crash in between redoes the fan-out, and the users'
            # seen-filters turn the redo into duplicates, never into a second feed entry.
            finish = client.pipeline(transaction=False)
            for stream, entry_ids in by_stream.items():
                reader.ack(stream, entry_ids, finish)
                finish.xlen(stream)
            replies = finish.execute()
        except TRANSIENT_ERRORS:
            reader.reread_pending()
            raise
        for stream, length in zip(by_stream, replies[1::2], strict=True):
            metrics.stream_len.labels(topic=stream[len(TOPIC_PREFIX) :]).set(length)
        metrics.consumed.inc(len(entries))
        return len(entries)

    log.info("fanning out topic:<slug> streams (group %s) with AGENT.FANOUT", GROUP)
    try:
        return run_loop(stop, step, max_items)
    finally:
        client.close()


def main() -> None:
    main_for("agentic-fanout", METRICS_PORT, run)


if __name__ == "__main__":
    main()
