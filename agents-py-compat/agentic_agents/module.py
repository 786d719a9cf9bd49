"""The libagentic.so commands the agents send, and their replies parsed (docs/commands.md).

On a Valkey Cluster, commands that name a key (AGENT.SUBSCRIBE, AGENT.FEED, XADD ...) are routed
by RedisCluster. The others go where this module sends them: AGENT.TOPIC.* and AGENT.CLASSIFY to the
node serving the catalog key `agentic:topics` (which is not among their arguments, so no client can
route them), AGENT.STATS and INFO to every primary, whose numbers are each node's own."""

from __future__ import annotations

import redis
from agentic_client import (
    CATALOG_KEY,
    NEWS_RAW,
    AgenticClient,
    Classification,
    FanoutResult,
    doc_key,
    merge_stats,
    parse_classification,
    parse_fanout,
    parse_stats,
    topic_stream,
    user_key,
)
from redis.cluster import ClusterNode

from .connection import Client, is_cluster

# The commands, their replies and their cluster routing are agentic-client's (clients/python); the
# names below are what the agents and their tests import from here.
__all__ = [
    "CATALOG_KEY", "NEWS_RAW", "Classification", "FanoutResult", "agentic", "catalog_command", "catalog_node", "classify_info",
    "doc_key", "gpu_sidecar_live", "merge_stats", "node_client", "parse_classification", "parse_fanout", "parse_stats", "stats",
    "topic_slugs", "topic_stream", "user_key",
]  # fmt: skip


def agentic(client: Client) -> AgenticClient:
    """The typed AGENT.* client over the agent's connection (a cheap wrapper: no connection of its own)."""
    return AgenticClient(client)


def node_client(client: Client, node: ClusterNode) -> redis.Redis:
    """The plain client of one cluster node. Commands sent through it go to that node and nowhere
    else: redis-py's cluster router refuses module commands it has no routing policy for (a name
    with two dots such as AGENT.TOPIC.LIST, or AGENT.STATS with a node flag)."""
    return client.get_redis_connection(node)


def catalog_node(client: Client) -> ClusterNode:
    """The node serving the catalog key's slot, where AGENT.TOPIC.* and AGENT.CLASSIFY go."""
    return client.get_node_from_key(CATALOG_KEY)


def catalog_command(client: Client, *args):
    """An AGENT.TOPIC.* or AGENT.CLASSIFY command, raw reply: as is on a standalone server; on a
    cluster, to the catalog node (after a MOVED, once more with the slot layout read again)."""
    return agentic(client).execute_on_catalog_node(*args)


def topic_slugs(client: Client) -> list[str]:
    """Slugs of the topic catalog (the ten defaults until someone changes it), in catalog order."""
    return [topic.slug for topic in agentic(client).topic_list()]


def stats(client: Client) -> dict[str, str]:
    """AGENT.STATS: every module metric, name -> value as the module rendered it. On a cluster,
    the primaries' numbers summed (each counts its own users, deliveries ...), see merge_stats."""
    return agentic(client).stats()


def classify_info(client: Client, node: ClusterNode | None = None) -> dict[str, str]:
    """The fields of `INFO agentic_classify` (names keep their `agentic_` prefix). On a cluster,
    those of `node`, by default the catalog node's: the node AGENT.CLASSIFY is sent to."""
    if not is_cluster(client):
        return client.info("agentic_classify")
    return node_client(client, node or catalog_node(client)).info("agentic_classify")


def gpu_sidecar_live(info: dict[str, str]) -> bool:
    """Whether the module reports a live inference sidecar on a CUDA device. The fields come with
    GPU sidecars; a module without them has no sidecar."""
    try:
        live = int(info.get("agentic_sidecars_live", "0") or 0)
    except ValueError:
        return False
    return live > 0 and "cuda" in info.get("agentic_sidecar_devices", "").lower()
