"""The feed iterator resumes after the last entry it yielded: across killed connections (with
redis-py's own retries off, so the iterator's resume is what is tested), a server restart while it
is blocked, and a new iterator started from a saved last_id. No duplicates, no gaps."""

from __future__ import annotations

import itertools

import redis
from agentic_client import AgenticClient, doc_key, user_key
from conftest import blocked_clients, in_thread, wait_until
from redis.backoff import NoBackoff
from redis.retry import Retry

USER = user_key("resume")


def reader_client(port: int) -> AgenticClient:
    return AgenticClient(
        redis.Redis(host="127.0.0.1", port=port, decode_responses=True, client_name="feed-reader", retry=Retry(NoBackoff(), 0))
    )


def kill_reader(admin: redis.Redis) -> None:
    [reader] = [c for c in admin.client_list() if c["name"] == "feed-reader"]
    admin.client_kill_filter(_id=reader["id"])


def test_resumes_after_killed_connections(valkey, valkey_server):
    writer = AgenticClient(valkey)
    writer.subscribe(USER, "technology")
    writer.fanout("technology", doc_key("d0"), "before the iterator")  # "$": not yielded
    reader = reader_client(valkey_server.port)
    feed = reader.iter_feed(USER, after="$", block_ms=5000, count=1)
    for i in (1, 2, 3):
        writer.fanout("technology", doc_key(f"d{i}"), f"body {i}")

    got = [next(feed)]
    kill_reader(valkey)  # between two reads: the next read finds the connection dead
    writer.fanout("technology", doc_key("d4"), "body 4")
    got += [next(feed), next(feed), next(feed)]

    # Killed while blocked in AGENT.FEED ... BLOCK, with an article arriving meanwhile.
    thread, outcome = in_thread(lambda: next(feed))
    wait_until(lambda: blocked_clients(valkey) == 1, message="the reader to block")
    kill_reader(valkey)
    writer.fanout("technology", doc_key("d5"), "body 5")
    thread.join(10)
    assert "error" not in outcome, outcome
    got.append(outcome["result"])

    assert [e.doc_key for e in got] == [doc_key(f"d{i}") for i in range(1, 6)]
    assert feed.reconnects >= 1  # the kill while blocked; after the first, redis-py may reconnect on its own
    assert feed.last_id == got[-1].id
    reader.close()


def test_resumes_across_a_server_restart(restartable_server):
    admin = restartable_server.client()
    writer = AgenticClient(admin)
    writer.subscribe(USER, "sports")
    reader = AgenticClient.from_url(restartable_server.url, decode_responses=True)
    feed = reader.iter_feed(USER, after="0-0", block_ms=2000, count=10, reconnect_timeout_s=30)
    writer.fanout("sports", doc_key("g1"), "goal 1")
    writer.fanout("sports", doc_key("g2"), "goal 2")

    thread, outcome = in_thread(lambda: list(itertools.islice(feed, 4)))
    wait_until(lambda: feed.last_id is not None and blocked_clients(admin) == 1, message="the reader to read two and block")
    restartable_server.restart()  # the AOF keeps the user's feed and the documents
    writer.fanout("sports", doc_key("g3"), "goal 3")
    writer.fanout("sports", doc_key("g4"), "goal 4")
    thread.join(30)
    assert "error" not in outcome, outcome
    assert [e.body for e in outcome["result"]] == ["goal 1", "goal 2", "goal 3", "goal 4"]
    assert feed.reconnects >= 1
    reader.close()
    admin.close()


def test_a_new_iterator_continues_from_last_id(valkey):
    client = AgenticClient(valkey)
    client.subscribe(USER, "climate")
    for i in range(4):
        client.fanout("climate", doc_key(f"c{i}"), f"c{i}")
    first = client.iter_feed(USER, after="0-0", count=3)
    assert [e.body for e in itertools.islice(first, 2)] == ["c0", "c1"]
    # The first iterator read three entries but yielded two: its successor starts after those two.
    rest = list(client.iter_feed(USER, after=first.last_id, block_ms=100, until_idle=True))
    assert [e.body for e in rest] == ["c2", "c3"]
