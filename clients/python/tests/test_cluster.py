"""The clients on a real 3-primary Valkey Cluster (redis-py's RedisCluster, sync and async) with
the module's pipeline on every node: users on every shard, an article published into news_raw
reaching all of them, fan-out of one slot's keys, a blocked reader woken, classification and the
catalog on the node serving it, stats summed over the primaries."""

from __future__ import annotations

import asyncio
import json

import pytest
from agentic_client import AgenticClient, AsyncAgenticClient, doc_key, user_key
from conftest import in_thread, wait_until


@pytest.fixture
def client(valkey_cluster):
    with AgenticClient.from_url(valkey_cluster.url, decode_responses=True) as c:
        assert c.is_cluster
        yield c


def node_of(client: AgenticClient, key: str) -> str:
    return client.redis.get_node_from_key(key).name


def test_published_article_reaches_users_on_every_shard(client):
    topics = [t.slug for t in client.topic_list()]
    users = [user_key(f"shard-{i}") for i in range(12)]
    assert len({node_of(client, u) for u in users}) == 3  # the users live on all three primaries
    subscribes_before = int(client.stats()["subscribe_calls"])
    for user in users:
        assert client.subscribe(user, *topics) == len(topics)
    feeds = {user: client.iter_feed(user, after="$", block_ms=3000, reconnect_timeout_s=10) for user in users}

    entry_id = client.publish_article("Cluster news", "One article for every shard.", article_id="cluster-a1")
    assert entry_id is not None
    for user, feed in feeds.items():
        entry = next(feed)
        assert entry.doc_key == doc_key("cluster-a1"), user
        # The body comes with the entry only when the document shares the user's slot; otherwise
        # it is read from the node that serves it (which may store it a moment after another
        # node's users got their entries: each primary applies the article on its own).
        if entry.body is None:
            wait_until(lambda e=entry: client.redis.get(e.doc_key) is not None, message=f"{entry.doc_key} on its node")
        body = entry.body if entry.body is not None else client.redis.get(entry.doc_key)
        assert json.loads(body)["title"] == "Cluster news"

    per_node = client.stats_per_node()
    assert len(per_node) == 3
    merged = client.stats()
    # Each primary counts the calls it served: the merged figure is their sum.
    assert int(merged["subscribe_calls"]) - subscribes_before == len(users)
    assert int(merged["subscribe_calls"]) == sum(int(s["subscribe_calls"]) for s in per_node.values())
    assert all(int(s["subscribe_calls"]) > 0 for s in per_node.values())


def test_fanout_in_one_slot_and_a_woken_reader(client):
    team = [f"user:{{team}}:{name}" for name in ("a", "b")]
    for user in team:
        client.subscribe(user, "team-news")
    # The subscriber form reaches the subscribers of the node serving the document's slot.
    result = client.fanout("team-news", "doc:{team}:1", "kick-off", stream="topic:{team}:news")
    assert (result.delivered, result.duplicates) == (2, 0)
    [entry] = client.feed(team[0])
    assert (entry.doc_key, entry.body) == ("doc:{team}:1", "kick-off")

    thread, outcome = in_thread(lambda: client.feed(team[1], after=entry.id, block_ms=4000))
    node = client.redis.get_redis_connection(client.redis.get_node_from_key(team[1]))
    wait_until(lambda: int(node.info("clients")["blocked_clients"]) >= 1, message="the reader to block")
    listed = client.fanout("sports", "doc:{team}:2", "half-time", users=team)
    with pytest.raises(ValueError, match="socket_timeout"):  # redis-py 8's 5 s read timeout
        client.feed(team[1], block_ms=0)
    assert listed.delivered == 2
    thread.join(10)
    assert "error" not in outcome, outcome
    assert [(e.topic, e.body) for e in outcome["result"]] == [("sports", "half-time")]


def test_classify_and_catalog_on_a_cluster(client):
    c = client.classify("The striker scored twice in the final")
    assert c.score == max(c.scores.values()) and len(c.scores) >= 10
    client.topic_set("cluster-cats", "Cats", examples=["a cat on a mat"])
    try:
        assert client.topic_get("cluster-cats").examples == ["a cat on a mat"]
        only = client.classify("a kitten", topics=["cluster-cats", "sports"])
        assert only.scores.keys() == {"cluster-cats", "sports"}
    finally:
        client.topic_reset()
    assert "cluster-cats" not in [t.slug for t in client.topic_list()]


def test_async_cluster_client(valkey_cluster):
    async def flow() -> None:
        async with await AsyncAgenticClient.from_url(valkey_cluster.url) as client:
            assert client.is_cluster
            users = [f"user:{{async}}:{n}" for n in range(3)]
            for user in users:
                assert await client.subscribe(user, "async-topic") == 1
            assert await client.interests(users[0]) == ["async-topic"]
            reader = asyncio.create_task(client.feed(users[2], after="0-0", block_ms=4000))
            await asyncio.sleep(0.2)
            result = await client.fanout("async-topic", "doc:{async}:1", "hello")
            assert result.delivered == 3
            [woken] = await asyncio.wait_for(reader, 5)
            assert (woken.doc_key, woken.body) == ("doc:{async}:1", "hello")

            c = await client.classify("Parliament passed the budget")
            assert c.topic in c.scores
            assert len(await client.topic_list()) >= 10
            per_node = await client.stats_per_node()
            assert len(per_node) == 3
            assert int((await client.stats())["user_keys"]) == sum(int(s["user_keys"]) for s in per_node.values())

    asyncio.run(flow())
