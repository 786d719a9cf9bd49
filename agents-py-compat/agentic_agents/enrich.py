"""enrich: the reference's enricher on the module. Reads `news_raw` with the consumer group
`cg_enrich` (ENRICH_BATCH entries per read), classifies each article with AGENT.CLASSIFY (one
pipelined round trip per batch), appends it to `topic:<slug>` (MAXLEN ~ TOPIC_MAXLEN) with the topic
and score added, and acknowledges it in the same MULTI, so an article reaches its topic stream once. Past
NEWS_RAW_MAXLEN entries, news_raw is trimmed of the entries every consumer group has processed.

The documents and topic-stream entries have the shape the module's in-server pipeline writes
(`doc <doc-key> data <json>`, the JSON enriched with `topic`, `score` and `ingest_ms`), so the fanout
agent and other readers cannot tell the two apart.

Where inference runs is the module's business (GPU sidecars register with it); enrich_gpu reports
what `INFO agentic_classify` says, and ENRICH_USE_CUDA=1 only warns when no GPU is there."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import dataclass

import redis
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from .article import to_json
from .config import Config
from .connection import TRANSIENT_ERRORS, connect
from .group_reader import GroupReader
from .module import NEWS_RAW, classify_info, doc_key, gpu_sidecar_live, parse_classification, topic_stream
from .runtime import LATENCY_BUCKETS, main_for, refuse_on_cluster, run_loop
from .stream_trim import trim_processed

log = logging.getLogger(__name__)

GROUP = "cg_enrich"
METRICS_PORT = 9110
READ_BLOCK_MS = 500
GPU_CHECK_INTERVAL_S = 5.0
CLASSIFY_RETRY_DELAY_S = 1.0


class EnrichMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter("enrich_in_total", "Raw messages consumed from news_raw (acknowledged)", registry=registry)
        self.routed = Counter("enrich_out_total", "Messages routed to topic streams", ["topic"], registry=registry)
        self.errors = Counter(
            "enrich_errors_total",
            "Entries not routed: malformed (acknowledged and dropped), trimmed (deleted while pending), "
            "classify (AGENT.CLASSIFY failed; retried)",
            ["reason"],
            registry=registry,
        )
        self.classifier_latency = Histogram(
            "enrich_classifier_latency_seconds",
            "Classification latency of one batch (its pipelined AGENT.CLASSIFY calls)",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.news_raw_len = Gauge("news_raw_len", "Length of the news_raw stream", registry=registry)
        self.trim_ops = Counter("news_raw_trim_ops_total", "Trimmings of processed entries from news_raw", registry=registry)
        self.gpu = Gauge("enrich_gpu", "1 when the module classifies on a live CUDA sidecar, else 0", registry=registry)


@dataclass(frozen=True)
class RawArticle:
    entry_id: str
    article_id: str
    document: dict
    text: str


def _valid_article_id(article_id: str) -> bool:
    """The module pipeline's rule: 1-200 printable ASCII characters, no space, no brace (the id goes
    inside the `{...}` hash tag of `doc:{<id>}`)."""
    return 0 < len(article_id) <= 200 and all(0x21 <= ord(c) <= 0x7E and c not in "{}" for c in article_id)


def parse_entry(entry_id: str, fields: dict[str, str]) -> RawArticle:
    """An entry `id <article-id> data <json>` read as the module's pipeline reads it; ValueError
    with the reason when it is unusable. The classified text is `title. body`."""
    if "data" not in fields:
        raise ValueError("no data field")
    try:
        document = json.loads(fields["data"])
    except json.JSONDecodeError as e:
        raise ValueError(f"data is not JSON: {e}") from None
    if not isinstance(document, dict):
        raise ValueError("data is not a JSON object")

    def text_of(key: str) -> str:
        value = document.get(key)
        return value.strip() if isinstance(value, str) else ""

    title = text_of("title")
    body = next((t for t in (text_of("text"), text_of("summary"), text_of("description")) if t), "")
    if not title and not body:
        raise ValueError("no title and no text")
    article_id = fields.get("id")
    if article_id is None and isinstance(document.get("id"), str):
        article_id = document["id"]
    if article_id is None or not _valid_article_id(article_id):
        raise ValueError("no usable id (1-200 printable ASCII characters without spaces or braces)")
    text = f"{title}. {body}" if title and body else title or body
    return RawArticle(entry_id, article_id, document, text)


class _GpuWatch:
    """Keeps enrich_gpu in line with the module's sidecars; warns once if a GPU was asked for and is missing."""

    def __init__(self, client: redis.Redis, use_cuda: str, gauge: Gauge) -> None:
        self.client = client
        self.use_cuda = use_cuda
        self.gauge = gauge
        self.next_check = 0.0
        self.warned = False

    def check(self) -> None:
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + GPU_CHECK_INTERVAL_S
        on_gpu = gpu_sidecar_live(classify_info(self.client))
        self.gauge.set(1 if on_gpu else 0)
        if self.use_cuda == "1" and not on_gpu and not self.warned:
            log.warning(
                "ENRICH_USE_CUDA=1 but the module reports no live GPU sidecar (INFO agentic_classify): classifying on the module's CPU pool"
            )
            self.warned = True


def run(config: Config, stop: threading.Event, *, registry: CollectorRegistry = REGISTRY, max_items: int | None = None) -> int:
    """Enriches until stopped (or `max_items` entries are done); returns the entries handled."""
    metrics = EnrichMetrics(registry)
    client = connect(config.valkey_url, stop)
    refuse_on_cluster(client)
    reader = GroupReader(client, GROUP, f"enrich-{socket.gethostname()}", [NEWS_RAW])
    gpu = _GpuWatch(client, config.enrich_use_cuda, metrics.gpu)
    last_classify_error = None

    def step(remaining: int | None) -> int:
        gpu.check()
        count = config.enrich_batch if remaining is None else min(config.enrich_batch, remaining)
        entries = reader.read(count, READ_BLOCK_MS)
        if not entries:
            return 0
        try:
            return enrich(entries)
        except TRANSIENT_ERRORS:
            # What was read stays pending: read it again once Valkey is back.
            reader.reread_pending()
            raise

    def enrich(entries: list[tuple[str, str, dict[str, str] | None]]) -> int:
        nonlocal last_classify_error
        articles: list[RawArticle] = []
        dropped: list[str] = []
        for _stream, entry_id, fields in entries:
            if fields is None:
                metrics.errors.labels(reason="trimmed").inc()
                log.warning("news_raw %s was deleted before it was enriched", entry_id)
                dropped.append(entry_id)
                continue
            try:
                articles.append(parse_entry(entry_id, fields))
            except ValueError as e:
                metrics.errors.labels(reason="malformed").inc()
                log.warning("news_raw %s skipped: %s", entry_id, e)
                dropped.append(entry_id)

        replies = []
        if articles:
            classify = client.pipeline(transaction=False)
            for article in articles:
                classify.execute_command("AGENT.CLASSIFY", article.text)
            with metrics.classifier_latency.time():
                replies = classify.execute(raise_on_error=False)

        # Topic-stream entries and acknowledgements in one MULTI: an article is routed exactly once.
        write = client.pipeline(transaction=True)
        routed: list[str] = []
        done = dropped
        failed = 0
        for article, reply in zip(articles, replies, strict=True):
            if isinstance(reply, Exception):
                failed += 1
                if str(reply) != last_classify_error:
                    log.warning("AGENT.CLASSIFY failed, articles stay pending and are retried: %s", reply)
                    last_classify_error = str(reply)
                continue
            classification = parse_classification(reply)
            ingest_ms = int(article.entry_id.split("-", 1)[0])
            document = {**article.document, "topic": classification.topic, "score": round(classification.score, 4), "ingest_ms": ingest_ms}
            write.xadd(
                topic_stream(classification.topic),
                {"doc": doc_key(article.article_id), "data": to_json(document)},
                maxlen=config.topic_maxlen,
                approximate=True,
            )
            routed.append(classification.topic)
            done.append(article.entry_id)
        reader.ack(NEWS_RAW, done, write)
        write.xlen(NEWS_RAW)
        *_, news_raw_len = write.execute()
        if news_raw_len > config.news_raw_maxlen:
            # As the reference's enricher, news_raw is kept near NEWS_RAW_MAXLEN whoever writes it
            # (agentic-fetcher leaves trimming to the consumer), but only of processed entries.
            news_raw_len -= trim_processed(client, NEWS_RAW)
            metrics.trim_ops.inc()
        metrics.news_raw_len.set(news_raw_len)
        metrics.consumed.inc(len(done))
        for topic in routed:
            metrics.routed.labels(topic=topic).inc()
        if failed:
            metrics.errors.labels(reason="classify").inc(failed)
            reader.reread_pending()
            stop.wait(CLASSIFY_RETRY_DELAY_S)
        elif last_classify_error is not None:
            log.info("AGENT.CLASSIFY works again")
            last_classify_error = None
        return len(done)

    log.info("enriching %s (group %s, batch %d) into topic:<slug> (MAXLEN ~ %d)", NEWS_RAW, GROUP, config.enrich_batch, config.topic_maxlen)
    try:
        return run_loop(stop, step, max_items)
    finally:
        client.close()


def main() -> None:
    main_for("agentic-enrich", METRICS_PORT, run)


if __name__ == "__main__":
    main()
