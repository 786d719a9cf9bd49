"""replay: writes the articles of REPLAY_FILE into `news_raw` at REPLAY_RATE per second, as the
reference's replay agent did, in the stream contract of agentic-fetcher (`id <id> data <json>`),
so the enrich agent or the module's in-server pipeline (`pipeline yes`) can consume them. The stream
is capped with `MAXLEN ~ NEWS_RAW_MAXLEN`. Exits when the file is done."""

from __future__ import annotations

import logging
import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from .article import to_json
from .config import Config
from .connection import connect
from .module import NEWS_RAW
from .pacing import Pacer
from .runtime import LATENCY_BUCKETS, FatalError, main_for, run_loop
from .sources import Malformed, ReplayFileError, read_articles

log = logging.getLogger(__name__)

METRICS_PORT = 9114


class ReplayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.written = Counter("producer_msgs_total", "Articles written to news_raw", registry=registry)
        self.malformed = Counter("replay_malformed_total", "Records of REPLAY_FILE skipped, by reason", ["reason"], registry=registry)
        self.write_latency = Histogram("replay_write_latency_seconds", "XADD round trip", buckets=LATENCY_BUCKETS, registry=registry)


def run(config: Config, stop: threading.Event, *, registry: CollectorRegistry = REGISTRY, max_items: int | None = None) -> int:
    """Replays the file once; returns how many articles were written."""
    if not config.replay_file.is_file():
        raise FatalError(f"REPLAY_FILE={config.replay_file}: no such file")
    metrics = ReplayMetrics(registry)
    client = connect(config.valkey_url, stop)
    records = read_articles(config.replay_file)
    pacer = Pacer(config.replay_rate, stop)
    rate = f"{config.replay_rate:g}/s" if config.replay_rate else "full speed"
    log.info("replaying %s into %s at %s (MAXLEN ~ %d)", config.replay_file, NEWS_RAW, rate, config.news_raw_maxlen)
    # The article being written: kept across a lost connection so it is retried, not skipped.
    unwritten: dict[str, str] | None = None

    def step(_remaining: int | None) -> int | None:
        nonlocal unwritten
        while unwritten is None:
            try:
                record = next(records)
            except StopIteration:
                return None
            except ReplayFileError as e:
                raise FatalError(str(e)) from None
            if isinstance(record, Malformed):
                metrics.malformed.labels(reason=record.reason).inc()
                log.warning("%s: line %d: skipped (%s): %s", config.replay_file.name, record.line, record.reason, record.detail)
            else:
                unwritten = record
                pacer.wait()
                if stop.is_set():
                    return 0
        with metrics.write_latency.time():
            client.xadd(
                NEWS_RAW,
                {"id": unwritten["id"], "data": to_json(unwritten)},
                maxlen=config.news_raw_maxlen,
                approximate=True,
            )
        metrics.written.inc()
        unwritten = None
        return 1

    try:
        written = run_loop(stop, step, max_items)
    finally:
        client.close()
    log.info("replay: %d article(s) written", written)
    return written


def main() -> None:
    main_for("agentic-replay", METRICS_PORT, run)


if __name__ == "__main__":
    main()
