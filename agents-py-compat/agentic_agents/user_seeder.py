"""user_seeder: creates users `user:{<n>}` at SEED_RATE per second, each subscribed with
AGENT.SUBSCRIBE to 2-4 random topics of the module's catalog; SEED_USERS of them, or without end
(0, the reference's behaviour). The numbers continue after `latest_uid`, which the seeder keeps up to
date as the reference's seeder did (its UI reads it), so a restarted seeder adds new users instead
of re-subscribing old ones."""

from __future__ import annotations

import logging
import random
import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from .config import Config
from .connection import Client, connect, is_cluster
from .module import agentic, user_key
from .pacing import Pacer
from .runtime import main_for, run_loop
from .topic_catalog import TopicCatalog

log = logging.getLogger(__name__)

LATEST_UID = "latest_uid"
METRICS_PORT = 9113
MIN_INTERESTS = 2
MAX_INTERESTS = 4
EMPTY_CATALOG_RETRY_S = 1.0


def create_user(client: Client, number: int, interests: list[str]) -> None:
    """Subscribes `user:{<number>}` and records it in latest_uid, which never names a user that
    does not exist: one MULTI on a standalone server; on a cluster, where the two keys live in
    different slots (a MULTI cannot span them), the user first, then latest_uid."""
    if is_cluster(client):
        agentic(client).subscribe(user_key(number), *interests)
        client.set(LATEST_UID, number)
        return
    create = client.pipeline(transaction=True)
    create.execute_command("AGENT.SUBSCRIBE", user_key(number), *interests)
    create.set(LATEST_UID, number)
    create.execute()


def run(config: Config, stop: threading.Event, *, registry: CollectorRegistry = REGISTRY, max_items: int | None = None) -> int:
    """Seeds until stopped, SEED_USERS users are created or `max_items`; returns the users created."""
    seeded_total = Counter("seed_users_total", "Users created", registry=registry)
    client = connect(config.valkey_url, stop)
    catalog = TopicCatalog(client)
    pacer = Pacer(config.seed_rate, stop)
    rng = random.Random()
    latest = client.get(LATEST_UID)
    next_number = int(latest) + 1 if latest is not None else 0
    seeded = 0
    waiting_for_topics = False

    def step(_remaining: int | None) -> int | None:
        nonlocal next_number, seeded, waiting_for_topics
        if config.seed_users and seeded >= config.seed_users:
            return None
        slugs = catalog.slugs()
        if not slugs:
            if not waiting_for_topics:
                log.warning("the topic catalog is empty (AGENT.TOPIC.LIST): no interests to give; waiting")
                waiting_for_topics = True
            stop.wait(EMPTY_CATALOG_RETRY_S)
            return 0
        waiting_for_topics = False
        pacer.wait()
        if stop.is_set():
            return 0
        interests = rng.sample(slugs, min(len(slugs), rng.randint(MIN_INTERESTS, MAX_INTERESTS)))
        create_user(client, next_number, interests)
        seeded_total.inc()
        seeded += 1
        next_number += 1
        if seeded % 100 == 0:
            log.info("%d users seeded (latest %s)", seeded, user_key(next_number - 1))
        return 1

    rate = f"{config.seed_rate:g}/s" if config.seed_rate else "full speed"
    log.info("seeding %s users from %s at %s", config.seed_users or "unlimited", user_key(next_number), rate)
    try:
        return run_loop(stop, step, max_items)
    finally:
        client.close()


def main() -> None:
    main_for("agentic-user-seeder", METRICS_PORT, run)


if __name__ == "__main__":
    main()
