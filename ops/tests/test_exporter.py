"""Debian's redis_exporter 1.45 with ops/prometheus/agentic.lua against a real server with the
module, logged in as the stack's least-privilege exporter user."""

from __future__ import annotations

import pytest
import redis
from conftest import WORKLOAD_ARTICLES, WORKLOAD_USERS, scrape, start_exporter, start_valkey


def test_scrape_succeeds_as_the_exporter_user(exporter_metrics):
    assert exporter_metrics.values("redis_up") == [({}, 1.0)]
    errors = exporter_metrics.values("redis_exporter_last_scrape_error")
    assert errors == [({"err": ""}, 0.0)], errors
    assert exporter_metrics.script_values()["agent_stats_up"] == 1.0


def test_every_agent_stats_name_is_a_script_value(valkey, exporter_metrics):
    exported = set(exporter_metrics.script_values()) - {"agent_stats_up"}
    assert exported == set(valkey.stats())


def test_script_values_are_the_module_numbers(valkey, exporter_metrics):
    exported = exporter_metrics.script_values()
    stats = valkey.stats()
    # Numbers the finished workload fixed; the rest may move between the two reads.
    settled = ["model_ready", "pipeline_acked", "pipeline_delivered", "fanout_deliveries", "classify_texts", "user_keys"]
    settled += [f"topic_subscribers:{topic}" for topics in WORKLOAD_USERS.values() for topic in topics]
    assert {name: exported[name] for name in settled} == {name: float(stats[name]) for name in settled}
    assert exported["pipeline_acked"] >= WORKLOAD_ARTICLES
    assert exported["pipeline_lag_ms_count"] >= WORKLOAD_ARTICLES


def test_module_command_stats_are_exported(exporter_metrics):
    commands = {labels["cmd"] for labels, _ in exporter_metrics.values("redis_commands_total")}
    assert {"agent.subscribe", "agent.stats"} <= commands


def test_the_exporter_user_needs_no_other_permission(valkey, exporter_url):
    scrape(exporter_url)
    refused = [entry for entry in valkey.client.acl_log() if entry.get("username") == "exporter"]
    assert refused == []


def test_the_exporter_user_cannot_write_or_read_keys(valkey):
    exporter = redis.Redis(port=valkey.port, username="exporter", password=valkey.exporter_password)
    for command in [("SET", "k", "v"), ("GET", "agentic:topics"), ("AGENT.SUBSCRIBE", "user:{x}", "sports")]:
        with pytest.raises(redis.exceptions.NoPermissionError):
            exporter.execute_command(*command)
    with pytest.raises(redis.exceptions.ResponseError, match="permission"):
        exporter.eval("return redis.call('SET', 'k', 'v')", 0)


def test_without_the_module_the_script_says_so_and_valkey_stays_up(plain_valkey, processes):
    metrics = scrape(start_exporter(processes, "redis-exporter-plain", plain_valkey, None, None))
    assert metrics.values("redis_up") == [({}, 1.0)]
    assert metrics.script_values() == {"agent_stats_up": 0.0}


def test_without_a_password_there_is_no_exporter_user(processes, tmp_path):
    server = start_valkey(processes, "valkey-no-exporter", tmp_path, module=True)
    try:
        assert server.client.acl_users() == ["default"]
        assert "agentic" in str(server.client.execute_command("MODULE", "LIST"))
    finally:
        server.process.stop()
