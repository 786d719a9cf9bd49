"""The libagentic.so commands the agents send, and their replies parsed (docs/commands.md).

On a Valkey Cluster, commands that name a key (AGENT.SUBSCRIBE, AGENT.FEED, XADD ...) are routed
by RedisCluster. The others go where this module sends them: AGENT.TOPIC.* and AGENT.CLASSIFY to the
node serving the catalog key `agentic:topics` (which is not among their arguments, so no client can
route them), AGENT.STATS and INFO to every primary, whose numbers are each node's own."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from redis.cluster import ClusterNode
from redis.exceptions import MovedError

from .connection import Client, is_cluster

log = logging.getLogger(__name__)

# The raw-article stream: agentic-fetcher and the replay agent write it, the module's pipeline
# (consumer group `agentic`) and the enrich agent (`cg_enrich`) read it.
NEWS_RAW = "news_raw"
# The topic catalog's key (AGENT.TOPIC.*): on a cluster, one node serves it.
CATALOG_KEY = "agentic:topics"
# AGENT.STATS names of latency percentiles and maxima.
PERCENTILE_SUFFIXES = ("_p50", "_p90", "_p99", "_p999", "_max")


@dataclass(frozen=True)
class Classification:
    topic: str
    score: float
    # "static" or "model": which tier of the module answered (issue 12's cascade).
    tier: str = "model"


@dataclass(frozen=True)
class FanoutResult:
    delivered: int
    duplicates: int


def user_key(number: int) -> str:
    """`user:{42}`: the braces make `{42}` the hash tag, as the module's README recommends."""
    return f"user:{{{number}}}"


def doc_key(article_id: str) -> str:
    return f"doc:{{{article_id}}}"


def topic_stream(slug: str) -> str:
    return f"topic:{slug}"


def parse_classification(reply: list) -> Classification:
    """`[best-slug, [slug, score, ...], tier]`, best first (modules before the cascade sent no tier)."""
    best, scores, *rest = reply
    return Classification(topic=best, score=float(scores[1]), tier=rest[0] if rest else "model")


def parse_fanout(reply: list) -> FanoutResult:
    """`[delivered, N, duplicates, M]`."""
    fields = dict(zip(reply[::2], reply[1::2], strict=True))
    return FanoutResult(delivered=int(fields["delivered"]), duplicates=int(fields["duplicates"]))


def node_client(client: Client, node: ClusterNode) -> redis.Redis:
    """The plain client of one cluster node. Commands sent through it go to that node and nowhere
    else: redis-py's cluster router refuses module commands it has no routing policy for (a name
    with two dots such as AGENT.TOPIC.LIST, or AGENT.STATS with a node flag)."""
    return client.get_redis_connection(node)


def catalog_node(client: Client) -> ClusterNode:
    """The node serving the catalog key's slot, where AGENT.TOPIC.* and AGENT.CLASSIFY go."""
    return client.get_node_from_key(CATALOG_KEY)


def catalog_command(client: Client, *args):
    """An AGENT.TOPIC.* or AGENT.CLASSIFY command: as is on a standalone server; on a cluster, to
    the catalog node, any other node answering MOVED. After a MOVED (the slot moved: resharding,
    failover) the slot layout is read again and the command sent once more."""
    if not is_cluster(client):
        return client.execute_command(*args)
    try:
        return node_client(client, catalog_node(client)).execute_command(*args)
    except MovedError as e:
        log.info("%s: the catalog moved (%s); reading the cluster's slots again", args[0], e)
        client.nodes_manager.initialize()
        return node_client(client, catalog_node(client)).execute_command(*args)


def topic_slugs(client: Client) -> list[str]:
    """Slugs of the topic catalog (the ten defaults until someone changes it), in catalog order."""
    return [dict(zip(entry[::2], entry[1::2], strict=True))["slug"] for entry in catalog_command(client, "AGENT.TOPIC.LIST")]


def parse_stats(reply: list) -> dict[str, str]:
    """AGENT.STATS's flat `name, value, name, value ...` as name -> value."""
    return dict(zip(reply[::2], reply[1::2], strict=True))


def stats(client: Client) -> dict[str, str]:
    """AGENT.STATS: every module metric, name -> value as the module rendered it. On a cluster,
    the primaries' numbers summed (each counts its own users, deliveries ...), see merge_stats."""
    if not is_cluster(client):
        return parse_stats(client.execute_command("AGENT.STATS"))
    return merge_stats([parse_stats(node_client(client, node).execute_command("AGENT.STATS")) for node in client.get_primaries()])


def merge_stats(per_node: list[dict[str, str]]) -> dict[str, str]:
    """Several nodes' AGENT.STATS as one: numeric values summed, except latency percentiles and
    maxima (`_p50` ... `_max`), where the largest is the only cluster-wide figure a sum of
    percentiles cannot give; non-numeric values are the first node's."""
    merged: dict[str, str] = {}
    for name, value in per_node[0].items():
        values = [_number(node[name]) for node in per_node if name in node]
        if any(v is None for v in values):
            merged[name] = value
            continue
        total = max(values) if name.endswith(PERCENTILE_SUFFIXES) else sum(values)
        merged[name] = str(total) if isinstance(total, int) else repr(float(total))
    return merged


def _number(value: str) -> int | float | None:
    """An integer where the module rendered one (so sums stay integers), else a float, else None."""
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return None


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
