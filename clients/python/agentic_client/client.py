"""The synchronous client: AGENT.* commands on a `redis.Redis` or a `redis.cluster.RedisCluster`.

On a cluster, commands that name a key (SUBSCRIBE, FEED, FANOUT ...) are routed by RedisCluster
from the module's key specs. The others go where the module needs them: AGENT.TOPIC.* and
AGENT.CLASSIFY to the node serving `agentic:topics` (not among their arguments, so no client can
route them: other nodes answer MOVED), AGENT.STATS to every primary (each counts its own)."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, MovedError, TryAgainError

from . import _protocol as p
from ._protocol import Classification, FanoutResult, FeedEntry, Topic, TopicInfo

log = logging.getLogger(__name__)

# Errors after which the same read can be sent again once the server answers: a dropped
# connection, a restart, a failover, a cluster still forming.
RECONNECT_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, ClusterDownError, TryAgainError)


def connect(url: str, **kwargs: Any) -> redis.Redis | RedisCluster:
    """A `redis.Redis` for `url`, or a `RedisCluster` when the server is a cluster node, so one URL
    naming any node serves both. `kwargs` go to the client (e.g. `decode_responses`)."""
    probe = redis.Redis.from_url(url, **kwargs)
    try:
        enabled = str(probe.info("cluster").get("cluster_enabled", 0)) == "1"
    finally:
        probe.close()
    return RedisCluster.from_url(url, **kwargs) if enabled else redis.Redis.from_url(url, **kwargs)


class AgenticClient:
    """AGENT.* commands with typed replies. Wraps a client you made (`AgenticClient(redis.Redis(...))`)
    or one made from a URL (`AgenticClient.from_url("redis://127.0.0.1:6379")`). Module errors raise
    AgenticCommandError (or a subclass); connection errors are redis-py's."""

    def __init__(self, client: redis.Redis | RedisCluster) -> None:
        self.redis = client
        self.is_cluster = isinstance(client, RedisCluster)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> AgenticClient:
        return cls(connect(url, **kwargs))

    def close(self) -> None:
        self.redis.close()

    def __enter__(self) -> AgenticClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- sending ------------------------------------------------------------------------------

    def execute(self, *args: Any) -> Any:
        """A command routed as RedisCluster / Redis route it, module errors as AgenticCommandError."""
        try:
            return self.redis.execute_command(*args)
        except redis.ResponseError as e:
            raise p.command_error(str(args[0]), e) from e

    def execute_on_catalog_node(self, *args: Any) -> Any:
        """An AGENT.TOPIC.* or AGENT.CLASSIFY command: as is on a standalone server; on a cluster, to
        the node of `agentic:topics`. After a MOVED (resharding, failover) the slot layout is read
        again and the command sent once more."""
        if not isinstance(self.redis, RedisCluster):
            return self.execute(*args)
        cluster = self.redis
        for attempt in range(2):
            node = cluster.get_redis_connection(cluster.get_node_from_key(p.CATALOG_KEY))
            try:
                return node.execute_command(*args)
            except MovedError:
                if attempt:
                    raise
                log.info("%s: the catalog moved; reading the cluster's slots again", args[0])
                cluster.nodes_manager.initialize()
            except redis.ResponseError as e:
                raise p.command_error(str(args[0]), e) from e
        raise AssertionError("unreachable")

    # -- subscriptions ------------------------------------------------------------------------

    def subscribe(self, user: str, *topics: str) -> int:
        """AGENT.SUBSCRIBE: adds interests; returns how many were new."""
        return int(self.execute("AGENT.SUBSCRIBE", user, *p.need_topics(topics, "AGENT.SUBSCRIBE")))

    def unsubscribe(self, user: str, *topics: str) -> int:
        """AGENT.UNSUBSCRIBE: removes interests; returns how many were removed."""
        return int(self.execute("AGENT.UNSUBSCRIBE", user, *p.need_topics(topics, "AGENT.UNSUBSCRIBE")))

    def interests(self, user: str) -> list[str]:
        """AGENT.INTERESTS: the user's topics, sorted."""
        return [p.text(t) for t in self.execute("AGENT.INTERESTS", user)]

    # -- fan-out and feeds --------------------------------------------------------------------

    def fanout(
        self, topic: str, doc_key: str, payload: str | bytes, *, stream: str | None = None, users: Iterable[str] | None = None
    ) -> FanoutResult:
        """AGENT.FANOUT: stores `payload` once at `doc_key`, appends it to `stream` if given, delivers
        it to the topic's subscribers (or only `users`). On a cluster it reaches the subscribers of
        the node serving `doc_key` (and `users` must share its slot); the pipeline (publish_article)
        reaches every node's."""
        return p.parse_fanout(self.execute(*p.fanout_args(topic, doc_key, payload, stream, users)))

    def feed(
        self, user: str, *, count: int | None = None, before: str | None = None, after: str | None = None, block_ms: int | None = None
    ) -> list[FeedEntry]:
        """AGENT.FEED: without `after`, newest first (`before` pages older); with `after` (an entry
        id, or "$" for from now on), newer entries oldest first. `block_ms` waits that long (0 =
        forever) for an entry when there is none, then returns []."""
        p.check_block(block_ms, p.socket_timeout_of(self.redis))
        return p.parse_feed(self.execute(*p.feed_args(user, count, before, after, block_ms)))

    def iter_feed(
        self,
        user: str,
        *,
        after: str = "$",
        block_ms: int = 5000,
        count: int = 100,
        until_idle: bool = False,
        reconnect_timeout_s: float = 30.0,
    ) -> FeedIterator:
        """The user's feed entries as they arrive, oldest first, resuming after a dropped connection
        or a server restart exactly after the last entry yielded (`FeedIterator.last_id`). `after`:
        "$" for entries from now on, FEED_START ("0-0") for every stored entry, or a `last_id`
        saved earlier, resolved when the iterator is made. `until_idle` stops when a wait passes with
        nothing new. Waits are cut to fit the connection's socket_timeout (the iterator waits again)."""
        return FeedIterator(self, user, after, block_ms, count, until_idle, reconnect_timeout_s)

    # -- classification and topics ------------------------------------------------------------

    def classify(self, text: str, *, timeout_ms: int | None = None, topics: Iterable[str] | None = None) -> Classification:
        """AGENT.CLASSIFY: the best topic for `text` among the catalog's (or `topics`)."""
        return p.parse_classification(self.execute_on_catalog_node(*p.classify_args(text, timeout_ms, topics)))

    def topic_set(self, slug: str, description: str, *, examples: Iterable[str] | None = None) -> None:
        """AGENT.TOPIC.SET: defines or redefines a topic; `examples` replace the topic's examples."""
        self.execute_on_catalog_node(*p.topic_set_args(slug, description, examples))

    def topic_add_examples(self, slug: str, *examples: str) -> int:
        """AGENT.TOPIC.ADDEXAMPLES: returns the topic's number of examples."""
        if not examples:
            raise ValueError("AGENT.TOPIC.ADDEXAMPLES needs at least one example")
        return int(self.execute_on_catalog_node("AGENT.TOPIC.ADDEXAMPLES", slug, *examples))

    def topic_del(self, *slugs: str) -> int:
        """AGENT.TOPIC.DEL: returns how many topics were removed."""
        return int(self.execute_on_catalog_node("AGENT.TOPIC.DEL", *p.need_topics(slugs, "AGENT.TOPIC.DEL")))

    def topic_get(self, slug: str) -> Topic:
        return p.parse_topic(self.execute_on_catalog_node("AGENT.TOPIC.GET", slug))

    def topic_list(self) -> list[TopicInfo]:
        return p.parse_topic_list(self.execute_on_catalog_node("AGENT.TOPIC.LIST"))

    def topic_reset(self) -> bool:
        """AGENT.TOPIC.RESET: back to the ten default topics; True if a catalog was deleted."""
        return int(self.execute_on_catalog_node("AGENT.TOPIC.RESET")) == 1

    # -- metrics ------------------------------------------------------------------------------

    def stats(self) -> dict[str, str]:
        """AGENT.STATS as name -> value; on a cluster, the primaries' figures merged (merge_stats)."""
        return p.one_stats(self.stats_per_node())

    def stats_per_node(self) -> dict[str, dict[str, str]]:
        """AGENT.STATS of each primary ("host:port" -> stats); one entry on a standalone server."""
        if not isinstance(self.redis, RedisCluster):
            return {p.standalone_node_name(self.redis): p.parse_stats(self.execute("AGENT.STATS"))}
        cluster = self.redis
        nodes = cluster.get_primaries()
        return {node.name: p.parse_stats(cluster.get_redis_connection(node).execute_command("AGENT.STATS")) for node in nodes}

    # -- the pipeline's input -----------------------------------------------------------------

    def publish_article(
        self,
        title: str,
        text: str,
        *,
        article_id: str | None = None,
        link: str | None = None,
        source: str = "agentic-client",
        published: str | None = None,
        stream: str = p.NEWS_RAW,
        dedup_ttl_s: int = p.DEFAULT_DEDUP_TTL_S,
    ) -> str | None:
        """Writes an article into the pipeline's raw stream as agentic-fetcher does (one atomic
        script: dedup key, then `XADD news_raw * id <id> data <json>`). The module's pipeline
        (`pipeline yes`) classifies it and fans it out. Returns the stream entry id, or None when
        the same article id was already published within `dedup_ttl_s`."""
        reply = self.redis.eval(*p.publish_eval_args(title, text, article_id, link, source, published, stream, dedup_ttl_s))
        return None if reply is None else p.text(reply)


class FeedIterator(Iterator[FeedEntry]):
    """See AgenticClient.iter_feed. `last_id` is the id of the last entry yielded (or the position
    the iterator starts after): a new iterator given `after=last_id` continues without duplicates
    or gaps, as long as the user's feed still holds the entries (it keeps the last `feed-len`)."""

    def __init__(
        self, client: AgenticClient, user: str, after: str, block_ms: int, count: int, until_idle: bool, reconnect_timeout_s: float
    ) -> None:
        self.client = client
        self.user = user
        if after == "$":
            # "$" becomes the newest id now, never sent as is: entries that arrive before the first
            # read, or while a connection is down, must not be skipped.
            newest = client.feed(user, count=1)
            after = newest[0].id if newest else p.FEED_START
        self.last_id: str = p.check_entry_id(after, "after")
        self.block_ms = block_ms
        self._block_ms = p.block_slice(block_ms, p.socket_timeout_of(client.redis))
        self.count = count
        self.until_idle = until_idle
        self.reconnect_timeout_s = reconnect_timeout_s
        self.reconnects = 0
        self._buffer: collections.deque[FeedEntry] = collections.deque()
        self._idle = False

    def __next__(self) -> FeedEntry:
        while not self._buffer:
            if self._idle:
                raise StopIteration
            self._fill()
        entry = self._buffer.popleft()
        self.last_id = entry.id
        return entry

    def _fill(self) -> None:
        backoff = p.ReconnectBackoff(self.reconnect_timeout_s)
        while True:
            try:
                entries = self.client.feed(self.user, count=self.count, after=self.last_id, block_ms=self._block_ms)
                break
            except RECONNECT_ERRORS as e:
                delay = backoff.next_delay()
                if delay is None:
                    raise
                log.info("AGENT.FEED %s after %s failed (%s); retrying", self.user, self.last_id, e)
                self.reconnects += 1
                time.sleep(delay)
        self._buffer.extend(entries)
        self._idle = self.until_idle and not entries
