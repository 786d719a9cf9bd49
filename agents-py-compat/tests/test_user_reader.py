import json
import time

import pytest
from agent_thread import AgentThread, run_agent, wait_until

from agentic_agents import user_reader
from agentic_agents.module import user_key
from agentic_agents.user_reader import target_rps


def add_users(client, first: int, count: int) -> None:
    for number in range(first, first + count):
        client.execute_command("AGENT.SUBSCRIBE", user_key(number), "sports")


@pytest.mark.parametrize(
    ("users", "expected"),
    [(0, 0.0), (1, 0.5), (10, 5.0), (100, 50.0), (199, 99.5), (200, 100.0), (10_000, 100.0)],
)
def test_target_rps_is_linear_in_users_then_capped(users, expected):
    assert target_rps(users, pop_rate=0.5, max_reader_rps=100.0) == expected


def test_the_target_follows_the_users_and_stops_at_max_reader_rps(valkey, make_config):
    reader = AgentThread(user_reader.run, make_config(pop_rate=2, max_reader_rps=50)).start()
    try:
        wait_until(lambda: reader.sample("reader_users") == 0, message="the first user count")
        assert reader.sample("reader_target_rps") == 0
        existing = 0
        for users, target in [(10, 20), (20, 40), (50, 50), (100, 50)]:
            add_users(valkey, existing, users - existing)
            existing = users
            wait_until(lambda users=users: reader.sample("reader_users") == users, timeout=5, message=f"{users} users counted")
            assert reader.sample("reader_target_rps") == target
    finally:
        reader.stop_and_join()
    assert reader.sample("reader_empty_total") > 0


def test_reads_keep_to_the_target_rate(valkey, make_config):
    add_users(valkey, 0, 2)
    reader = AgentThread(user_reader.run, make_config(pop_rate=15, max_reader_rps=1000)).start()
    wait_until(lambda: reader.sample("reader_target_rps") == 30, message="the target")
    started = time.monotonic()
    first = reader.sample("reader_empty_total")
    time.sleep(1.5)
    reads = reader.sample("reader_empty_total") - first
    elapsed = time.monotonic() - started
    reader.stop_and_join()
    # 30 pops/s: never faster (allowing one read of timer slack), and not far slower
    assert 0.6 * 30 * elapsed <= reads <= 30 * elapsed + 2


def test_each_feed_entry_is_popped_once(valkey, make_config):
    add_users(valkey, 0, 3)
    for n in range(4):
        valkey.execute_command("AGENT.FANOUT", "sports", f"doc:{{s{n}}}", json.dumps({"id": f"s{n}"}))
    reader = run_agent(user_reader.run, make_config(pop_rate=100, max_reader_rps=1000), max_items=90)
    assert reader.handled == 90
    # 3 users x 4 entries, each read once; every other pop found nothing new
    assert reader.sample("reader_pops_total") == 12
    assert reader.sample("reader_empty_total") == 78
    assert reader.sample("reader_pop_latency_seconds_count") == 90
