"""All agents together, as deployed: seeder, then replay -> enrich -> fanout -> user feeds, with the
reader reading them meanwhile."""

import json

from agent_thread import AgentThread, run_agent, wait_until

from agentic_agents import enrich, fanout, replay, user_reader, user_seeder
from agentic_agents.module import user_key

USERS = 30
ARTICLES = 40


def test_articles_reach_exactly_the_users_interested_in_their_topic(valkey, make_config, tmp_path):
    replay_file = tmp_path / "news.jsonl"
    with replay_file.open("w") as f:
        for n in range(ARTICLES):
            f.write(json.dumps({"id": f"n-{n}", "title": f"Story number {n} of the day", "text": f"Reported at {n} o'clock."}) + "\n")
    run_agent(user_seeder.run, make_config(seed_users=USERS, seed_rate=0))
    # The operator sets the feed length; the agents (least-privilege user) find it already set.
    valkey.config_set("agentic.feed-len", 1000)
    config = make_config(replay_file=replay_file, replay_rate=200, enrich_batch=8, pop_rate=1, feed_len=1000)

    consumers = [AgentThread(agent, config).start() for agent in (enrich.run, fanout.run, user_reader.run)]
    enricher, fanner, reader = consumers
    try:
        run_agent(replay.run, config)
        wait_until(lambda: fanner.sample("fan_in_total") == ARTICLES, timeout=20, message="every article fanned out")
        wait_until(lambda: reader.sample("reader_pops_total"), timeout=10, message="a pop")
    finally:
        for agent in consumers:
            agent.stop_and_join()

    assert enricher.sample("enrich_in_total") == ARTICLES
    topic_of = {}
    for stream in valkey.scan_iter(match="topic:*", _type="stream"):
        for _entry_id, fields in valkey.xrange(stream):
            topic_of[f"doc:{{{json.loads(fields['data'])['id']}}}"] = stream.removeprefix("topic:")
    assert len(topic_of) == ARTICLES
    deliveries = 0
    for number in range(USERS):
        interests = set(valkey.execute_command("AGENT.INTERESTS", user_key(number)))
        feed = [entry[2] for entry in valkey.execute_command("AGENT.FEED", user_key(number), "COUNT", 1000)]
        assert sorted(feed) == sorted(doc for doc, topic in topic_of.items() if topic in interests)
        deliveries += len(feed)
    assert fanner.sample("feed_push_total") == deliveries
    assert fanner.sample("fanout_duplicates_skipped_total") == 0
    assert reader.sample("reader_target_rps") == USERS * 1
