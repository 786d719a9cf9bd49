"""The module's commands from valkey-glide (Python, asyncio) through `custom_command`, on the
session's server and on the 3-primary cluster: subscribe, fan out, read and block on feeds,
classify, stats. Replies are parsed with agentic_client's parsers, which take glide's bytes.

Glide needs two settings for this: a request timeout longer than the BLOCK (its default of
250 ms applies to custom commands, it only knows the built-in blocking ones), and on a cluster
explicit routes (SlotKeyRoute by the user or document key; the catalog's key for AGENT.CLASSIFY
and AGENT.TOPIC.*; AllPrimaries for AGENT.STATS)."""

from __future__ import annotations

import asyncio
import os

import pytest

try:
    import glide
except ImportError:
    # CI runs make test-clients, which installs it: a skip there would hide a broken setup.
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise
    pytest.skip("valkey-glide is not installed (make test-clients installs it)", allow_module_level=True)

from agentic_client import CATALOG_KEY, merge_stats, parse_classification, parse_fanout, parse_feed, parse_stats  # noqa: E402

REQUEST_TIMEOUT_MS = 10_000


def config(port: int, *, cluster: bool):
    addresses = [glide.NodeAddress("127.0.0.1", port)]
    if cluster:
        return glide.GlideClusterClientConfiguration(addresses, request_timeout=REQUEST_TIMEOUT_MS)
    return glide.GlideClientConfiguration(addresses, request_timeout=REQUEST_TIMEOUT_MS)


def test_glide_standalone(valkey, valkey_server):
    async def flow() -> None:
        client = await glide.GlideClient.create(config(valkey_server.port, cluster=False))
        reader = await glide.GlideClient.create(config(valkey_server.port, cluster=False))
        try:
            deliveries_before = int(parse_stats(await client.custom_command(["AGENT.STATS"]))["fanout_deliveries"])
            assert await client.custom_command(["AGENT.SUBSCRIBE", "user:{g1}", "technology", "sports"]) == 2
            assert await client.custom_command(["AGENT.SUBSCRIBE", "user:{g2}", "technology"]) == 1
            assert await client.custom_command(["AGENT.INTERESTS", "user:{g1}"]) == [b"sports", b"technology"]

            fanout_args = ["AGENT.FANOUT", "technology", "doc:{t1}", "chips", "STREAM", "topic:technology"]
            fanout = parse_fanout(await client.custom_command(fanout_args))
            assert (fanout.delivered, fanout.duplicates) == (2, 0)
            [entry] = parse_feed(await client.custom_command(["AGENT.FEED", "user:{g2}", "COUNT", "10"]))
            assert (entry.topic, entry.doc_key, entry.body) == ("technology", "doc:{t1}", "chips")

            blocked = asyncio.create_task(reader.custom_command(["AGENT.FEED", "user:{g1}", "AFTER", "$", "BLOCK", "5000"]))
            async with asyncio.timeout(10):
                while int(valkey.info("clients")["blocked_clients"]) < 1:
                    await asyncio.sleep(0.02)
            await client.custom_command(["AGENT.FANOUT", "sports", "doc:{s1}", "goal"])
            [woken] = parse_feed(await asyncio.wait_for(blocked, 5))
            assert (woken.topic, woken.body) == ("sports", "goal")

            c = parse_classification(await client.custom_command(["AGENT.CLASSIFY", "Rates rose again", "TOPICS", "business", "sports"]))
            assert c.scores.keys() == {"business", "sports"} and c.score == max(c.scores.values())

            stats = parse_stats(await client.custom_command(["AGENT.STATS"]))
            assert int(stats["user_keys"]) == 2 and int(stats["fanout_deliveries"]) - deliveries_before == 3
        finally:
            await client.close()
            await reader.close()

    asyncio.run(flow())


def test_glide_cluster(valkey_cluster):
    def by_key(key: str):
        return glide.SlotKeyRoute(glide.SlotType.PRIMARY, key)

    with valkey_cluster.client() as routing:
        user_node = valkey_cluster.node(routing.get_node_from_key("user:{glide}:2").port)

    async def flow() -> None:
        client = await glide.GlideClusterClient.create(config(valkey_cluster.ports[0], cluster=True))
        reader = await glide.GlideClusterClient.create(config(valkey_cluster.ports[0], cluster=True))
        try:
            users = ["user:{glide}:1", "user:{glide}:2"]
            for user in users:
                assert await client.custom_command(["AGENT.SUBSCRIBE", user, "glide-news"], by_key(user)) == 1

            feed = ["AGENT.FEED", users[1], "AFTER", "0-0", "BLOCK", "5000"]
            blocked = asyncio.create_task(reader.custom_command(feed, by_key(users[1])))
            async with asyncio.timeout(10):
                while int(user_node.info("clients")["blocked_clients"]) < 1:
                    await asyncio.sleep(0.02)
            fanout_args = ["AGENT.FANOUT", "glide-news", "doc:{glide}:1", "hi"]
            fanout = parse_fanout(await client.custom_command(fanout_args, by_key("doc:{glide}:1")))
            assert fanout.delivered == 2
            [woken] = parse_feed(await asyncio.wait_for(blocked, 5))
            assert (woken.doc_key, woken.body) == ("doc:{glide}:1", "hi")
            [entry] = parse_feed(await client.custom_command(["AGENT.FEED", users[0]], by_key(users[0])))
            assert entry.doc_key == "doc:{glide}:1"

            c = parse_classification(await client.custom_command(["AGENT.CLASSIFY", "A storm hit the coast"], by_key(CATALOG_KEY)))
            assert c.topic in c.scores
            topics = await client.custom_command(["AGENT.TOPIC.LIST"], by_key(CATALOG_KEY))
            assert len(topics) >= 10

            per_node = await client.custom_command(["AGENT.STATS"], glide.AllPrimaries())
            assert len(per_node) == 3  # one reply per primary, by address
            merged = merge_stats([parse_stats(reply) for reply in per_node.values()])
            assert int(merged["fanout_deliveries"]) >= 2 and int(merged["subscribe_calls"]) >= len(users)
        finally:
            await client.close()
            await reader.close()

    try:
        asyncio.run(flow())
    finally:
        user_node.close()
