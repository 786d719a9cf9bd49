import time

from agent_thread import run_agent

from agentic_agents import user_seeder
from agentic_agents.module import stats, topic_slugs, user_key


def interests_of(client, number: int) -> list[str]:
    return client.execute_command("AGENT.INTERESTS", user_key(number))


def test_seeder_creates_users_with_two_to_four_interests(valkey, make_config):
    agent = run_agent(user_seeder.run, make_config(seed_users=40, seed_rate=0))
    assert agent.handled == 40
    assert agent.sample("seed_users_total") == 40
    catalog = set(topic_slugs(valkey))
    seen_interests = set()
    for number in range(40):
        interests = interests_of(valkey, number)
        assert 2 <= len(interests) <= 4
        assert set(interests) <= catalog
        seen_interests.add(tuple(interests))
    assert len(seen_interests) > 1, "interests are drawn at random"
    assert stats(valkey)["user_keys"] == "40"
    assert valkey.get("latest_uid") == "39"


def test_a_restarted_seeder_adds_new_users(valkey, make_config):
    run_agent(user_seeder.run, make_config(seed_users=5, seed_rate=0))
    before = [interests_of(valkey, n) for n in range(5)]
    run_agent(user_seeder.run, make_config(seed_users=3, seed_rate=0))
    assert [interests_of(valkey, n) for n in range(5)] == before
    assert all(interests_of(valkey, n) for n in range(5, 8))
    assert stats(valkey)["user_keys"] == "8"
    assert valkey.get("latest_uid") == "7"


def test_interests_come_from_the_catalog(valkey, make_config):
    """Topics are data: a catalog of three topics gives interests among those three."""
    valkey.execute_command("AGENT.TOPIC.DEL", *[s for s in topic_slugs(valkey) if s not in ("sports", "health", "science")])
    run_agent(user_seeder.run, make_config(seed_users=20, seed_rate=0))
    for number in range(20):
        assert set(interests_of(valkey, number)) <= {"sports", "health", "science"}
        assert len(interests_of(valkey, number)) >= 2


def test_seed_rate_paces_the_users(valkey, make_config):
    started = time.monotonic()
    run_agent(user_seeder.run, make_config(seed_users=11, seed_rate=50))
    elapsed = time.monotonic() - started
    # 10 intervals of 20 ms between 11 users
    assert 0.19 <= elapsed < 5
    assert stats(valkey)["user_keys"] == "11"
