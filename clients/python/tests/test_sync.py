"""AgenticClient against a real server: subscriptions, fan-out, feeds (paged and blocking),
classification, topics, stats, errors, and publishing into the module's pipeline."""

from __future__ import annotations

import itertools
import json
import subprocess
import time

import pytest
import redis
from agentic_client import (
    AgenticClient,
    AgenticCommandError,
    ClassifyTimeoutError,
    FeedEntry,
    ModelUnavailableError,
    doc_key,
    topic_stream,
    user_key,
)
from conftest import MODULE, blocked_clients, free_port, in_thread, skip_without_server, wait_until


@pytest.fixture
def client(valkey, valkey_server):
    with AgenticClient.from_url(valkey_server.url, decode_responses=True) as c:
        assert not c.is_cluster
        yield c


def test_subscriptions(client):
    alice = user_key("alice")
    assert client.subscribe(alice, "technology", "sports") == 2
    assert client.subscribe(alice, "sports", "health") == 1  # sports was there already
    assert client.interests(alice) == ["health", "sports", "technology"]
    assert client.unsubscribe(alice, "sports", "politics") == 1
    assert client.interests(alice) == ["health", "technology"]
    assert client.interests(user_key("nobody")) == []


def test_fanout_reaches_subscribers_once(client, valkey):
    for name in ("a", "b"):
        client.subscribe(user_key(name), "technology")
    client.subscribe(user_key("c"), "sports")
    body = json.dumps({"title": "Chips", "text": "A new chip"})

    result = client.fanout("technology", doc_key("t1"), body, stream=topic_stream("technology"))
    assert (result.delivered, result.duplicates) == (2, 0)
    again = client.fanout("technology", doc_key("t1"), body)
    assert (again.delivered, again.duplicates) == (0, 2)  # the seen-filter

    [entry] = client.feed(user_key("a"))
    assert (entry.topic, entry.doc_key, entry.json()) == ("technology", doc_key("t1"), {"title": "Chips", "text": "A new chip"})
    assert client.feed(user_key("c")) == []
    [(_, fields)] = valkey.xrange(topic_stream("technology"))
    assert fields == {"doc": doc_key("t1"), "data": body}


def test_fanout_to_listed_users(client):
    client.subscribe(user_key("a"), "sports")
    result = client.fanout("business", doc_key("b1"), "payload", users=[user_key("a"), user_key("b")])
    assert result.delivered == 2
    assert [e.doc_key for e in client.feed(user_key("b"))] == [doc_key("b1")]


def test_feed_pages_and_tails(client):
    user = user_key("reader")
    client.subscribe(user, "science")
    for i in range(5):
        client.fanout("science", doc_key(f"s{i}"), f"body {i}")
    newest = client.feed(user, count=2)
    assert [e.body for e in newest] == ["body 4", "body 3"]
    older = client.feed(user, count=2, before=newest[-1].id)
    assert [e.body for e in older] == ["body 2", "body 1"]
    tail = client.feed(user, after=older[0].id)
    assert [e.body for e in tail] == ["body 3", "body 4"]  # oldest first
    assert client.feed(user, after="$") == []


def test_blocking_feed_read_is_woken_by_a_fanout(client, valkey):
    user = user_key("waiter")
    client.subscribe(user, "health")
    started = time.monotonic()
    thread, outcome = in_thread(lambda: client.feed(user, after="$", block_ms=4000))
    wait_until(lambda: blocked_clients(valkey) == 1, message="the reader to block")
    client.fanout("health", doc_key("h1"), "news")
    thread.join(10)
    assert "error" not in outcome, outcome
    assert [(e.topic, e.doc_key, e.body) for e in outcome["result"]] == [("health", doc_key("h1"), "news")]
    assert time.monotonic() - started < 3  # woken, not timed out


def test_blocking_feed_read_times_out_empty(client):
    started = time.monotonic()
    assert client.feed(user_key("quiet"), after="$", block_ms=200) == []
    assert time.monotonic() - started >= 0.19


def test_classify_and_topics(client):
    text = "Oil prices fell after OPEC agreed to raise output"
    c = client.classify(text)
    assert c.topic in c.scores and len(c.scores) == 10  # the ten default topics
    assert c.score == max(c.scores.values())
    assert c.tier == "model"
    assert client.classify(text) == c  # the encoder alone is deterministic

    defaults = client.topic_list()
    assert len(defaults) == 10 and all(t.default for t in defaults)
    client.topic_set("cats", "Cats and kittens", examples=["my cat purrs on the sofa"])
    assert client.topic_add_examples("cats", "the kitten chased a mouse") == 2
    topic = client.topic_get("cats")
    assert (topic.description, topic.examples) == ("Cats and kittens", ["my cat purrs on the sofa", "the kitten chased a mouse"])
    catalog = client.topic_list()
    assert len(catalog) == 11 and not any(t.default for t in catalog)
    assert client.classify("a kitten", topics=["cats", "sports"]).scores.keys() == {"cats", "sports"}
    assert client.topic_del("cats", "nope") == 1
    assert client.topic_reset() is True
    assert len(client.topic_list()) == 10


def test_stats(client):
    before = client.stats()
    client.subscribe(user_key("s1"), "sports")
    client.subscribe(user_key("s2"), "sports")
    client.fanout("sports", doc_key("g1"), "goal")
    after = client.stats()
    assert int(after["user_keys"]) == 2
    assert int(after["fanout_deliveries"]) - int(before["fanout_deliveries"]) == 2
    assert int(after["subscribe_calls"]) - int(before["subscribe_calls"]) == 2


def test_module_errors_are_clear(client, valkey):
    valkey.set(user_key("str"), "not a user")
    with pytest.raises(AgenticCommandError, match="WRONGTYPE") as raised:
        client.subscribe(user_key("str"), "sports")
    assert raised.value.command == "AGENT.SUBSCRIBE"
    with pytest.raises(AgenticCommandError, match="invalid topic 'Bad Topic'"):
        client.subscribe(user_key("x"), "Bad Topic")
    with pytest.raises(AgenticCommandError, match="no topic 'nope'"):
        client.classify("hello", topics=["nope"])
    valkey.execute_command("AGENT.DEBUG", "CLASSIFY-DELAY", 500)
    with pytest.raises(ClassifyTimeoutError, match="timed out"):
        client.classify("slow", timeout_ms=50)
    with pytest.raises(ValueError, match="at least one topic"):
        client.subscribe(user_key("x"))
    with pytest.raises(ValueError, match="socket_timeout"):
        client.feed(user_key("x"), after="$", block_ms=0)  # redis-py's 5 s read timeout would cut it
    with pytest.raises(ValueError, match="entry id"):
        client.feed(user_key("x"), after="yesterday")


def test_publish_article_feeds_the_pipeline(client, valkey):
    everything = [t.slug for t in client.topic_list()]
    client.subscribe(user_key("all"), *everything)
    entry_id = client.publish_article("Markets rally", "Stocks rose  on\nstrong earnings.", article_id="art-1", link="https://x.test/1")
    assert entry_id is not None
    [(stream_id, fields)] = valkey.xrange("news_raw")
    assert stream_id == entry_id and fields["id"] == "art-1"
    document = json.loads(fields["data"])
    assert list(document) == ["id", "title", "text", "link", "source"]  # the fetcher's order
    assert document["text"] == "Stocks rose on strong earnings."
    assert client.publish_article("Markets rally", "again", article_id="art-1") is None  # deduplicated

    valkey.config_set("agentic.pipeline", "yes")
    [delivered] = itertools.islice(client.iter_feed(user_key("all"), after="0-0", block_ms=10_000), 1)
    assert isinstance(delivered, FeedEntry)
    assert delivered.doc_key == doc_key("art-1")
    assert delivered.json()["title"] == "Markets rally" and delivered.topic in everything


def test_a_server_without_a_model_says_so(tmp_path):
    skip_without_server()
    port = free_port()
    command = ["valkey-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
               "--loadmodule", str(MODULE)]  # fmt: skip
    with (tmp_path / "valkey.log").open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = AgenticClient(redis.Redis(host="127.0.0.1", port=port, decode_responses=True))

        def answers() -> bool:
            try:
                return bool(client.redis.ping())
            except redis.ConnectionError:
                return False

        wait_until(answers, message="the server")
        with pytest.raises(ModelUnavailableError, match="no model configured"):
            client.classify("anything")
        client.close()
    finally:
        process.terminate()
        process.wait(10)
