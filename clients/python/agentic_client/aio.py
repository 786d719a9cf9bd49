"""The asyncio client: AgenticClient's methods as coroutines, on `redis.asyncio.Redis` or
`redis.asyncio.RedisCluster` (routing as in client.py)."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

import redis
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import MovedError

from . import _protocol as p
from ._protocol import Classification, FanoutResult, FeedEntry, Topic, TopicInfo
from .client import RECONNECT_ERRORS

log = logging.getLogger(__name__)


async def connect(url: str, **kwargs: Any) -> aredis.Redis | RedisCluster:
    """A `redis.asyncio.Redis` for `url`, or a `RedisCluster` when the server is a cluster node."""
    probe = aredis.Redis.from_url(url, **kwargs)
    try:
        enabled = str((await probe.info("cluster")).get("cluster_enabled", 0)) == "1"
    finally:
        await probe.aclose()
    if enabled:
        cluster = RedisCluster.from_url(url, **kwargs)
        await cluster.initialize()
        return cluster
    return aredis.Redis.from_url(url, **kwargs)


class AsyncAgenticClient:
    """AgenticClient for asyncio: the same methods, awaited; `aiter_feed` is the feed iterator."""

    def __init__(self, client: aredis.Redis | RedisCluster) -> None:
        self.redis = client
        self.is_cluster = isinstance(client, RedisCluster)

    @classmethod
    async def from_url(cls, url: str, **kwargs: Any) -> AsyncAgenticClient:
        return cls(await connect(url, **kwargs))

    async def aclose(self) -> None:
        await self.redis.aclose()

    async def __aenter__(self) -> AsyncAgenticClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def execute(self, *args: Any) -> Any:
        try:
            return await self.redis.execute_command(*args)
        except redis.ResponseError as e:
            raise p.command_error(str(args[0]), e) from e

    async def execute_on_catalog_node(self, *args: Any) -> Any:
        """See AgenticClient.execute_on_catalog_node."""
        if not isinstance(self.redis, RedisCluster):
            return await self.execute(*args)
        cluster = self.redis
        for attempt in range(2):
            node = cluster.get_node_from_key(p.CATALOG_KEY)
            if node is None:
                raise redis.ConnectionError(f"no node serves {p.CATALOG_KEY}'s slot yet (the cluster is forming?)")
            try:
                return await node.execute_command(*args)
            except MovedError:
                if attempt:
                    raise
                log.info("%s: the catalog moved; reading the cluster's slots again", args[0])
                await cluster.nodes_manager.initialize()
            except redis.ResponseError as e:
                raise p.command_error(str(args[0]), e) from e
        raise AssertionError("unreachable")

    async def subscribe(self, user: str, *topics: str) -> int:
        return int(await self.execute("AGENT.SUBSCRIBE", user, *p.need_topics(topics, "AGENT.SUBSCRIBE")))

    async def unsubscribe(self, user: str, *topics: str) -> int:
        return int(await self.execute("AGENT.UNSUBSCRIBE", user, *p.need_topics(topics, "AGENT.UNSUBSCRIBE")))

    async def interests(self, user: str) -> list[str]:
        return [p.text(t) for t in await self.execute("AGENT.INTERESTS", user)]

    async def fanout(
        self, topic: str, doc_key: str, payload: str | bytes, *, stream: str | None = None, users: Iterable[str] | None = None
    ) -> FanoutResult:
        return p.parse_fanout(await self.execute(*p.fanout_args(topic, doc_key, payload, stream, users)))

    async def feed(
        self, user: str, *, count: int | None = None, before: str | None = None, after: str | None = None, block_ms: int | None = None
    ) -> list[FeedEntry]:
        p.check_block(block_ms, p.socket_timeout_of(self.redis))
        return p.parse_feed(await self.execute(*p.feed_args(user, count, before, after, block_ms)))

    def aiter_feed(
        self,
        user: str,
        *,
        after: str = "$",
        block_ms: int = 5000,
        count: int = 100,
        until_idle: bool = False,
        reconnect_timeout_s: float = 30.0,
    ) -> AsyncFeedIterator:
        """See AgenticClient.iter_feed: `async for entry in client.aiter_feed(user): ...`. Here "$"
        is resolved on the first step (a constructor cannot await)."""
        return AsyncFeedIterator(self, user, after, block_ms, count, until_idle, reconnect_timeout_s)

    async def classify(self, text: str, *, timeout_ms: int | None = None, topics: Iterable[str] | None = None) -> Classification:
        return p.parse_classification(await self.execute_on_catalog_node(*p.classify_args(text, timeout_ms, topics)))

    async def topic_set(self, slug: str, description: str, *, examples: Iterable[str] | None = None) -> None:
        await self.execute_on_catalog_node(*p.topic_set_args(slug, description, examples))

    async def topic_add_examples(self, slug: str, *examples: str) -> int:
        if not examples:
            raise ValueError("AGENT.TOPIC.ADDEXAMPLES needs at least one example")
        return int(await self.execute_on_catalog_node("AGENT.TOPIC.ADDEXAMPLES", slug, *examples))

    async def topic_del(self, *slugs: str) -> int:
        return int(await self.execute_on_catalog_node("AGENT.TOPIC.DEL", *p.need_topics(slugs, "AGENT.TOPIC.DEL")))

    async def topic_get(self, slug: str) -> Topic:
        return p.parse_topic(await self.execute_on_catalog_node("AGENT.TOPIC.GET", slug))

    async def topic_list(self) -> list[TopicInfo]:
        return p.parse_topic_list(await self.execute_on_catalog_node("AGENT.TOPIC.LIST"))

    async def topic_reset(self) -> bool:
        return int(await self.execute_on_catalog_node("AGENT.TOPIC.RESET")) == 1

    async def stats(self) -> dict[str, str]:
        return p.one_stats(await self.stats_per_node())

    async def stats_per_node(self) -> dict[str, dict[str, str]]:
        if not isinstance(self.redis, RedisCluster):
            return {p.standalone_node_name(self.redis): p.parse_stats(await self.execute("AGENT.STATS"))}
        nodes = self.redis.get_primaries()
        replies = await asyncio.gather(*(node.execute_command("AGENT.STATS") for node in nodes))
        return {node.name: p.parse_stats(reply) for node, reply in zip(nodes, replies, strict=True)}

    async def publish_article(
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
        """See AgenticClient.publish_article."""
        reply = await self.redis.eval(*p.publish_eval_args(title, text, article_id, link, source, published, stream, dedup_ttl_s))
        return None if reply is None else p.text(reply)


class AsyncFeedIterator(AsyncIterator[FeedEntry]):
    """See FeedIterator (client.py): the same resume rules, for `async for`."""

    def __init__(
        self, client: AsyncAgenticClient, user: str, after: str, block_ms: int, count: int, until_idle: bool, reconnect_timeout_s: float
    ) -> None:
        self.client = client
        self.user = user
        self.last_id: str | None = None if after == "$" else p.check_entry_id(after, "after")
        self.block_ms = block_ms
        self._block_ms = p.block_slice(block_ms, p.socket_timeout_of(client.redis))
        self.count = count
        self.until_idle = until_idle
        self.reconnect_timeout_s = reconnect_timeout_s
        self.reconnects = 0
        self._buffer: collections.deque[FeedEntry] = collections.deque()
        self._idle = False

    async def __anext__(self) -> FeedEntry:
        while not self._buffer:
            if self._idle:
                raise StopAsyncIteration
            await self._fill()
        entry = self._buffer.popleft()
        self.last_id = entry.id
        return entry

    async def _fill(self) -> None:
        backoff = p.ReconnectBackoff(self.reconnect_timeout_s)
        while True:
            try:
                if self.last_id is None:
                    # "$" becomes the newest id, never sent as is (see FeedIterator).
                    newest = await self.client.feed(self.user, count=1)
                    self.last_id = newest[0].id if newest else p.FEED_START
                entries = await self.client.feed(self.user, count=self.count, after=self.last_id, block_ms=self._block_ms)
                break
            except RECONNECT_ERRORS as e:
                delay = backoff.next_delay()
                if delay is None:
                    raise
                log.info("AGENT.FEED %s after %s failed (%s); retrying", self.user, self.last_id, e)
                self.reconnects += 1
                await asyncio.sleep(delay)
        self._buffer.extend(entries)
        self._idle = self.until_idle and not entries
