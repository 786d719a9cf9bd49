"""The Valkey client every agent uses: created from VALKEY_URL, waited for until it answers. A
standalone server gets a `redis.Redis`; a node of a Valkey Cluster (`cluster_enabled:1` in
`INFO cluster`) gets a `redis.cluster.RedisCluster` built from the same URL, so one VALKEY_URL naming
any node serves both."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException, TryAgainError

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_DELAY_S = 1.0
# Errors after which the same command can simply be sent again: redis-py reconnects by itself, and
# a cluster client also re-reads the slot layout (a failover, a cluster still forming).
TRANSIENT_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, ClusterDownError, TryAgainError)

# Either client: the agents' commands are the same, what differs is where some of them must go.
Client = redis.Redis | RedisCluster


class Stopped(Exception):
    """The agent was asked to stop before Valkey answered."""


def info_fields(reply: str, **_options) -> dict[str, str]:
    """`INFO <section>` as plain strings. redis-py's own parser guesses types and would turn a
    value such as `cuda:0,cpu` into a list."""
    fields = {}
    for line in reply.splitlines():
        if line and not line.startswith("#") and ":" in line:
            name, value = line.split(":", 1)
            fields[name] = value
    return fields


def is_cluster(client: Client) -> bool:
    """Whether `client` talks to a Valkey Cluster (connect() returned a RedisCluster)."""
    return isinstance(client, RedisCluster)


def shown(url: str) -> str:
    """`url` without credentials (user and password), for logs."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}" if sep else url


def connect(url: str, stop: threading.Event, *, socket_timeout: float | None = None) -> Client:
    """A client for `url`, returned once the server answers PING (retried every second, as the
    reference's agents did): a `redis.Redis`, or a `RedisCluster` when the server is a cluster node.
    Raises Stopped if `stop` is set first."""
    client = _standalone_client(url, socket_timeout)

    def cluster_enabled() -> bool:
        client.ping()
        try:
            return client.info("cluster").get("cluster_enabled") == "1"
        except redis.ResponseError as e:
            # A user whose ACL denies INFO cannot tell; a cluster needs it (to find the nodes) anyway.
            log.info("INFO cluster refused (%s): treating %s as a standalone server", e, shown(url))
            return False

    if not _wait(url, stop, cluster_enabled, on_stop=client.close):
        log.info("connected to %s", shown(url))
        return client
    client.close()
    cluster: RedisCluster | None = None

    def connect_cluster() -> None:
        # RedisCluster reads the slot layout when created: it fails while the cluster is forming.
        nonlocal cluster
        cluster = _cluster_client(url, socket_timeout)
        cluster.ping(target_nodes=cluster.get_random_node())

    _wait(url, stop, connect_cluster, on_stop=lambda: cluster is not None and cluster.close())
    log.info("connected to the Valkey Cluster of %s (%d primaries)", shown(url), len(cluster.get_primaries()))
    return cluster


def _standalone_client(url: str, socket_timeout: float | None) -> redis.Redis:
    # RESP2: the reply shapes the agents parse (redis-py 8 would speak RESP3 by default).
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=socket_timeout, protocol=2)
    client.set_response_callback("INFO", info_fields)
    return client


def _cluster_client(url: str, socket_timeout: float | None) -> RedisCluster:
    cluster = RedisCluster.from_url(url, decode_responses=True, socket_timeout=socket_timeout, protocol=2)
    _parse_info_as_text(cluster)
    return cluster


def _parse_info_as_text(cluster: RedisCluster) -> None:
    """Makes INFO replies info_fields() on a cluster too. RedisCluster parses every reply with the
    callbacks of the per-node `redis.Redis` it routed the command to (its own set_response_callback
    would run after redis-py's INFO parser, on a dict), and creates those clients as it discovers
    nodes (a failover, a new primary): the callback goes on the existing ones and on every later one."""
    manager = cluster.nodes_manager
    create_redis_node = manager.create_redis_node

    def create_with_info_fields(*args, **kwargs) -> redis.Redis:
        node = create_redis_node(*args, **kwargs)
        node.set_response_callback("INFO", info_fields)
        return node

    manager.create_redis_node = create_with_info_fields
    for node in [*cluster.get_nodes(), *manager.startup_nodes.values()]:
        if node.redis_connection is not None:
            node.redis_connection.set_response_callback("INFO", info_fields)


def _wait(url: str, stop: threading.Event, attempt: Callable[[], T], *, on_stop: Callable[[], object]) -> T:
    """Calls `attempt()` every second until it does not raise a transient error; returns its result."""
    logged = False
    while True:
        try:
            return attempt()
        except (*TRANSIENT_ERRORS, RedisClusterException) as e:
            if not logged:
                log.warning("waiting for Valkey at %s: %s", shown(url), e)
                logged = True
        if stop.wait(RETRY_DELAY_S):
            on_stop()
            raise Stopped()
