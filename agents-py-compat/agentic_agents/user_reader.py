"""user_reader: the load generator. Reads users' feeds at POP_RATE pops per second per user, the
total target being min(users x POP_RATE, MAX_READER_RPS), recomputed every second from the module's
`user_keys` (AGENT.STATS) as users are added, as the reference's auto-ramping reader did.

A pop reads a random user's oldest unread feed entry: `AGENT.FEED user:{<n>} COUNT 1 AFTER <cursor>`,
the cursor (the last entry read from that user) kept in memory. Module feeds are not consumed by
reading, so this stands in for the reference's BRPOP on `feed:<uid>`. Users are `user:{0}` ..
`user:{users-1}`, the seeder's names."""

from __future__ import annotations

import logging
import random
import threading
import time

from agentic_client import FEED_START
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from .config import Config
from .connection import connect
from .module import agentic, stats, user_key
from .pacing import Pacer
from .runtime import LATENCY_BUCKETS, main_for, run_loop

log = logging.getLogger(__name__)

METRICS_PORT = 9112
RECOMPUTE_INTERVAL_S = 1.0


def target_rps(users: int, pop_rate: float, max_reader_rps: float) -> float:
    """Pops per second for `users` users: linear in the users, capped."""
    return min(users * pop_rate, max_reader_rps)


class ReaderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.target_rps = Gauge("reader_target_rps", "Current target pops per second", registry=registry)
        self.users = Gauge("reader_users", "Users counted (user_keys of AGENT.STATS)", registry=registry)
        self.pops = Counter("reader_pops_total", "Pops that returned a feed entry", registry=registry)
        self.empty = Counter("reader_empty_total", "Pops that found nothing unread", registry=registry)
        self.latency = Histogram(
            "reader_pop_latency_seconds", "AGENT.FEED round trip of one pop", buckets=LATENCY_BUCKETS, registry=registry
        )


def run(config: Config, stop: threading.Event, *, registry: CollectorRegistry = REGISTRY, max_items: int | None = None) -> int:
    """Reads until stopped (or `max_items` pops, empty or not); returns the pops made."""
    metrics = ReaderMetrics(registry)
    client = connect(config.valkey_url, stop)
    module = agentic(client)
    pacer = Pacer(0, stop)
    rng = random.Random()
    cursors: dict[int, str] = {}
    users = 0
    target = 0.0
    next_recompute = 0.0

    def recompute() -> None:
        nonlocal users, target, next_recompute
        users = int(stats(client).get("user_keys", "0"))
        new_target = target_rps(users, config.pop_rate, config.max_reader_rps)
        if new_target != target:
            log.info("%d users: target %.4g pops/s", users, new_target)
        target = new_target
        pacer.set_rate(target)
        metrics.users.set(users)
        metrics.target_rps.set(target)
        next_recompute = time.monotonic() + RECOMPUTE_INTERVAL_S

    def step(_remaining: int | None) -> int:
        if time.monotonic() >= next_recompute:
            recompute()
        until_recompute = next_recompute - time.monotonic()
        if target <= 0 or pacer.seconds_until_due() > until_recompute:
            # Nothing due before the user count is read again (which may raise the rate).
            stop.wait(max(0.0, until_recompute))
            return 0
        pacer.wait()
        if stop.is_set():
            return 0
        number = rng.randrange(users)
        with metrics.latency.time():
            entries = module.feed(user_key(number), count=1, after=cursors.get(number, FEED_START))
        if entries:
            cursors[number] = entries[0].id
            metrics.pops.inc()
        else:
            metrics.empty.inc()
        return 1

    log.info("reading feeds at %g pops/s per user, at most %g pops/s", config.pop_rate, config.max_reader_rps)
    try:
        return run_loop(stop, step, max_items)
    finally:
        client.close()


def main() -> None:
    main_for("agentic-user-reader", METRICS_PORT, run)


if __name__ == "__main__":
    main()
