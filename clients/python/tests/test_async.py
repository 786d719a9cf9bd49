"""AsyncAgenticClient against a real server: the same flow as the sync client (subscribe, fan out,
read and block on feeds, classify, stats) and the async feed iterator's resume after a killed
connection. Each test runs its coroutine with asyncio.run (no pytest plugin needed)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aredis
from agentic_client import AgenticCommandError, AsyncAgenticClient, doc_key, topic_stream, user_key
from conftest import blocked_clients
from redis.backoff import NoBackoff
from redis.retry import Retry


async def wait_for(condition, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def test_core_flow(valkey, valkey_server):
    async def flow() -> None:
        async with await AsyncAgenticClient.from_url(valkey_server.url) as client:
            assert not client.is_cluster
            deliveries_before = int((await client.stats())["fanout_deliveries"])
            assert await client.subscribe(user_key(1), "technology", "science") == 2
            assert await client.subscribe(user_key(2), "technology") == 1
            assert await client.interests(user_key(1)) == ["science", "technology"]

            result = await client.fanout("technology", doc_key("a1"), '{"title": "GPUs"}', stream=topic_stream("technology"))
            assert (result.delivered, result.duplicates) == (2, 0)
            [entry] = await client.feed(user_key(2))
            assert (entry.topic, entry.doc_key, entry.json()) == ("technology", doc_key("a1"), {"title": "GPUs"})

            # A blocked reader is woken by the next fan-out.
            reader = asyncio.create_task(client.feed(user_key(1), after=entry.id, block_ms=4000))
            await wait_for(lambda: blocked_clients(valkey) == 1)
            await client.fanout("science", doc_key("s1"), "a comet")
            [woken] = await asyncio.wait_for(reader, 5)
            assert (woken.topic, woken.body) == ("science", "a comet")

            c = await client.classify("The central bank raised interest rates")
            assert c.score == max(c.scores.values()) and c.tier == "model"
            assert await client.classify("The central bank raised interest rates") == c
            await client.topic_set("cats", "Cats and kittens", examples=["a cat"])
            assert (await client.topic_get("cats")).examples == ["a cat"]
            assert "cats" in [t.slug for t in await client.topic_list()]
            assert await client.topic_reset() is True

            stats = await client.stats()
            assert int(stats["user_keys"]) == 2 and int(stats["fanout_deliveries"]) - deliveries_before == 3

            with pytest.raises(AgenticCommandError, match="invalid topic"):
                await client.subscribe(user_key(3), "NOT-A-SLUG")
            assert await client.publish_article("Title", "Body", article_id="x1") is not None
            assert await client.publish_article("Title", "Body", article_id="x1") is None

    asyncio.run(flow())


def test_async_iterator_resumes_after_a_killed_connection(valkey, valkey_server):
    async def flow() -> list[str]:
        reader = AsyncAgenticClient(
            aredis.Redis(host="127.0.0.1", port=valkey_server.port, client_name="async-reader", retry=Retry(NoBackoff(), 0))
        )
        writer = AsyncAgenticClient(aredis.Redis(host="127.0.0.1", port=valkey_server.port))
        await writer.subscribe(user_key("r"), "sports")
        await writer.fanout("sports", doc_key("old"), "before the iterator")
        feed = reader.aiter_feed(user_key("r"), after="$", block_ms=3000, count=1)
        seen: list[str] = []

        async def consume() -> None:
            async for entry in feed:
                seen.append(entry.body)
                if len(seen) == 3:
                    return

        task = asyncio.create_task(consume())
        # The iterator resolves "$" on its first step: wait until it has and blocks.
        await wait_for(lambda: blocked_clients(valkey) == 1)
        await writer.fanout("sports", doc_key("g1"), "goal 1")
        await wait_for(lambda: len(seen) == 1 and blocked_clients(valkey) == 1)
        [conn] = [c for c in valkey.client_list() if c["name"] == "async-reader"]
        valkey.client_kill_filter(_id=conn["id"])
        await writer.fanout("sports", doc_key("g2"), "goal 2")
        await writer.fanout("sports", doc_key("g3"), "goal 3")
        await asyncio.wait_for(task, 10)
        assert feed.reconnects >= 1
        await reader.aclose()
        await writer.aclose()
        return seen

    assert asyncio.run(flow()) == ["goal 1", "goal 2", "goal 3"]
