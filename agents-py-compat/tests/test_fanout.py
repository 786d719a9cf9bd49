import json
import logging
import threading

import pytest
from agent_thread import run_agent

from agentic_agents import fanout
from agentic_agents.connection import connect
from agentic_agents.runtime import FatalError
from agentic_agents.module import topic_slugs, user_key

# user number -> interests
INTERESTS = {0: ["sports", "health"], 1: ["sports"], 2: ["politics"], 3: ["finance"]}
# topic -> article ids written to topic:<topic>
ARTICLES = {"sports": ["s1", "s2", "s3"], "health": ["h1"], "politics": ["p1"]}


def subscribe_users(client) -> None:
    for number, topics in INTERESTS.items():
        client.execute_command("AGENT.SUBSCRIBE", user_key(number), *topics)


def add_topic_entries(client) -> int:
    """Entries as the enrich agent and the module's pipeline write them (`doc`, `data`); the last
    sports article in the reference's form (only `data`)."""
    for topic, ids in ARTICLES.items():
        for article_id in ids:
            document = json.dumps({"id": article_id, "title": f"Article {article_id}", "topic": topic})
            if article_id == "s3":
                client.xadd(f"topic:{topic}", {"data": document})
            else:
                client.xadd(f"topic:{topic}", {"doc": f"doc:{{{article_id}}}", "data": document})
    return sum(len(ids) for ids in ARTICLES.values())


def feed_of(client, number: int) -> list[str]:
    """Document keys in the user's feed, oldest first."""
    return [entry[2] for entry in reversed(client.execute_command("AGENT.FEED", user_key(number), "COUNT", 1000))]


def expected_feed(number: int) -> list[str]:
    return sorted(f"doc:{{{a}}}" for topic in INTERESTS[number] for a in ARTICLES.get(topic, []))


def rewind_groups(client) -> None:
    """Makes cg_fanout read every topic stream from the start again."""
    for slug in topic_slugs(client):
        client.xgroup_setid(f"topic:{slug}", fanout.GROUP, id="0")


def test_every_subscriber_gets_each_article_of_their_topics_once(valkey, make_config):
    subscribe_users(valkey)
    entries = add_topic_entries(valkey)
    agent = run_agent(fanout.run, make_config(), max_items=entries)

    for number in INTERESTS:
        assert sorted(feed_of(valkey, number)) == expected_feed(number)
    deliveries = sum(len(expected_feed(n)) for n in INTERESTS)
    assert agent.sample("feed_push_total") == deliveries == 8
    assert agent.sample("fanout_duplicates_skipped_total") == 0
    assert agent.sample("fan_in_total") == entries
    assert agent.sample("fan_out_total", topic="sports") == 3
    assert agent.sample("fan_out_total", topic="health") == 1
    assert agent.sample("fanout_latency_seconds_count") == entries
    assert agent.sample("topic_stream_len", topic="sports") == 3
    # The documents are stored once, by AGENT.FANOUT.
    assert json.loads(valkey.get("doc:{s3}"))["title"] == "Article s3"
    for slug in ARTICLES:
        assert valkey.xpending(f"topic:{slug}", fanout.GROUP)["pending"] == 0


def test_fanning_out_again_delivers_nothing_twice(valkey, make_config):
    subscribe_users(valkey)
    entries = add_topic_entries(valkey)
    run_agent(fanout.run, make_config(), max_items=entries)
    feeds = {number: feed_of(valkey, number) for number in INTERESTS}

    rewind_groups(valkey)
    again = run_agent(fanout.run, make_config(), max_items=entries)

    assert again.sample("feed_push_total") == 0
    assert again.sample("fanout_duplicates_skipped_total") == 8
    assert {number: feed_of(valkey, number) for number in INTERESTS} == feeds


def test_feed_len_becomes_the_modules_feed_len(valkey, valkey_server, make_config, caplog):
    subscribe_users(valkey)
    entries = add_topic_entries(valkey)
    with caplog.at_level(logging.INFO, logger="agentic_agents.fanout"):
        # Changing a server setting takes an operator's user, not the agents' one.
        run_agent(fanout.run, make_config(feed_len=2, valkey_url=valkey_server.admin_url), max_items=entries)
    assert valkey.config_get("agentic.feed-len") == {"agentic.feed-len": "2"}
    assert any("FEED_LEN=2" in r.getMessage() for r in caplog.records)
    # user 0 got four articles; the feed keeps the newest two
    assert len(feed_of(valkey, 0)) == 2


def test_the_agents_user_may_not_change_feed_len_and_says_so(valkey, make_config):
    # ops/acl/users.acl: the agents user reads settings but does not change them.
    fanout.apply_feed_len(connect(make_config().valkey_url, threading.Event()), 100)  # already 100
    with pytest.raises(FatalError, match="CONFIG SET agentic.feed-len 7"):
        fanout.apply_feed_len(connect(make_config().valkey_url, threading.Event()), 7)
    assert valkey.config_get("agentic.feed-len") == {"agentic.feed-len": "100"}


def test_unusable_entries_are_acknowledged_and_counted(valkey, make_config):
    subscribe_users(valkey)
    valkey.xadd("topic:sports", {"doc": "doc:{x}"})
    valkey.xadd("topic:sports", {"data": "not json and no doc"})
    valkey.xadd("topic:sports", {"doc": "doc:{big}", "data": "x" * 64})
    valkey.config_set("agentic.max-doc-bytes", 16)
    try:
        agent = run_agent(fanout.run, make_config(), max_items=3)
    finally:
        valkey.config_set("agentic.max-doc-bytes", 1048576)
    assert agent.sample("fanout_errors_total", reason="malformed") == 2
    assert agent.sample("fanout_errors_total", reason="refused") == 1
    assert agent.sample("fan_in_total") == 3
    assert valkey.xpending("topic:sports", fanout.GROUP)["pending"] == 0
    assert feed_of(valkey, 1) == []


def test_new_topics_of_the_catalog_are_read(valkey, make_config):
    valkey.execute_command("AGENT.TOPIC.SET", "space", "Space flight, rockets, astronauts and satellites.")
    valkey.execute_command("AGENT.SUBSCRIBE", user_key(9), "space")
    valkey.xadd("topic:space", {"doc": "doc:{r1}", "data": json.dumps({"id": "r1"})})
    run_agent(fanout.run, make_config(), max_items=1)
    assert feed_of(valkey, 9) == ["doc:{r1}"]
