"""The agents against a real 3-primary Valkey Cluster with the module's own pipeline (`pipeline yes`
on every node): users spread over the shards, articles written to news_raw reach them, the exporter
reports every node, and enrich and fanout refuse to run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from agent_thread import run_agent, wait_until
from agentic_client import testing
from conftest import MODULE, TINY_MODEL, free_port, skip_without_server
from redis.exceptions import MovedError
from test_stats_exporter import scrape

from agentic_agents import replay, user_reader, user_seeder
from agentic_agents.config import Config
from agentic_agents.connection import connect, is_cluster
from agentic_agents.module import CATALOG_KEY, catalog_command, stats, topic_slugs, topic_stream, user_key
from agentic_agents.runtime import PIPELINE_ON_CLUSTER

START_TIMEOUT_S = 30.0
USERS = 30
ARTICLES = 12


class ValkeyCluster(testing.ValkeyCluster):
    """With the module's own pipeline (`pipeline yes`) on every node."""

    client_options = {"decode_responses": True, "protocol": 2}

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, testing.module_args(MODULE, TINY_MODEL, "pipeline", "yes"), start_timeout=START_TIMEOUT_S)


def started_cluster(workdir: Path):
    """A started cluster for a fixture, stopped whatever happens to the tests."""
    skip_without_server()
    with testing.running(ValkeyCluster(workdir)) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def valkey_cluster(tmp_path_factory):
    yield from started_cluster(tmp_path_factory.mktemp("cluster"))


@pytest.fixture(scope="module")
def seeded(valkey_cluster):
    """The cluster with USERS users created by the seeder: (cluster client, seeder agent)."""
    agent = run_agent(user_seeder.run, Config(valkey_url=valkey_cluster.url, seed_users=USERS, seed_rate=0))
    client = valkey_cluster.client()
    yield client, agent
    client.close()


def exporter_process(url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "VALKEY_URL": url, "METRICS_PORT": str(port)}
    return subprocess.Popen([sys.executable, "-m", "agentic_agents.stats_exporter"], env=env, stderr=subprocess.PIPE, text=True)


def stop_process(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stderr:
            process.stderr.close()


def per_node(metrics: dict, name: str) -> dict[str, float]:
    """node label -> value of the samples of `name` (all of them labelled with a node and a role)."""
    samples = {dict(labels)["node"]: value for (sample, labels), value in metrics.items() if sample == name}
    roles = {dict(labels)["role"] for (sample, labels), _ in metrics.items() if sample == name}
    assert roles <= {"primary"}, roles
    return samples


def test_connect_detects_the_cluster(valkey_cluster):
    """One VALKEY_URL naming any node: the agents get a cluster client, and the catalog commands,
    which name no key, reach the node that serves agentic:topics."""
    client = connect(valkey_cluster.url, threading.Event())
    try:
        assert is_cluster(client)
        assert {node.port for node in client.get_primaries()} == set(valkey_cluster.ports)
        assert client.info("cluster") == {"cluster_enabled": "1"}, "INFO keeps the agents' parser on a cluster"
        catalog_port = client.get_node_from_key(CATALOG_KEY).port
        other = next(port for port in valkey_cluster.ports if port != catalog_port)
        with pytest.raises(MovedError):
            valkey_cluster.node(other).execute_command("AGENT.TOPIC.LIST")
        assert len(topic_slugs(client)) == 10
        best, _scores, tier = catalog_command(client, "AGENT.CLASSIFY", "The team won the final")
        assert best in topic_slugs(client)
        assert tier in ("static", "model")
    finally:
        client.close()


def test_the_seeder_spreads_users_over_every_primary(valkey_cluster, seeded):
    client, agent = seeded
    assert agent.handled == USERS
    assert agent.sample("seed_users_total") == USERS
    catalog = set(topic_slugs(client))
    ports = set()
    for number in range(USERS):
        interests = client.execute_command("AGENT.INTERESTS", user_key(number))
        assert 2 <= len(interests) <= 4
        assert set(interests) <= catalog
        ports.add(client.get_node_from_key(user_key(number)).port)
    assert ports == set(valkey_cluster.ports), "the users' keys land on all three primaries"
    assert client.get("latest_uid") == str(USERS - 1)
    # Each primary counts its own users; stats() sums them.
    per_primary = user_keys_per_node(valkey_cluster)
    assert all(0 < count < USERS for count in per_primary)
    assert sum(per_primary) == USERS
    assert stats(client)["user_keys"] == str(USERS)


def user_keys_per_node(cluster: ValkeyCluster) -> list[int]:
    counts = []
    for port in cluster.ports:
        node = cluster.node(port)
        reply = node.execute_command("AGENT.STATS")
        counts.append(int(dict(zip(reply[::2], reply[1::2], strict=True))["user_keys"]))
        node.close()
    return counts


def test_replayed_articles_reach_the_users_through_the_module_pipeline(valkey_cluster, seeded, tmp_path):
    client, _seeder = seeded
    replay_file = tmp_path / "news.jsonl"
    titles = [f"Story number {n} of the day" for n in range(ARTICLES)]
    replay_file.write_text(
        "".join(json.dumps({"id": f"c{n}", "title": t, "text": f"Reported at {n}."}) + "\n" for n, t in enumerate(titles))
    )
    written = run_agent(replay.run, Config(valkey_url=valkey_cluster.url, replay_file=replay_file, replay_rate=0))
    assert written.handled == ARTICLES

    def topic_of() -> dict[str, str]:
        """doc key -> topic, from the topic streams the module's pipeline writes (on their own nodes)."""
        return {fields["doc"]: slug for slug in topic_slugs(client) for _entry_id, fields in client.xrange(topic_stream(slug))}

    def classified() -> dict[str, str] | None:
        topics = topic_of()
        return topics if len(topics) == ARTICLES else None

    topics = wait_until(classified, timeout=20, interval=0.2, message="every article classified")
    interests = {number: set(client.execute_command("AGENT.INTERESTS", user_key(number))) for number in range(USERS)}
    expected = {number: {doc for doc, topic in topics.items() if topic in wanted} for number, wanted in interests.items()}

    def feeds() -> dict[int, set[str]]:
        return {
            number: {entry[2] for entry in client.execute_command("AGENT.FEED", user_key(number), "COUNT", 1000)} for number in range(USERS)
        }

    wait_until(lambda: feeds() == expected, timeout=20, interval=0.2, message="every article in exactly its subscribers' feeds")
    receivers = {client.get_node_from_key(user_key(number)).port for number, docs in expected.items() if docs}
    assert len(receivers) > 1, "deliveries reach users on more than one shard"

    reader = run_agent(user_reader.run, Config(valkey_url=valkey_cluster.url, pop_rate=100, max_reader_rps=2000), max_items=400)
    assert reader.sample("reader_users") == USERS
    assert reader.sample("reader_pops_total") > 0
    assert reader.sample("reader_pops_total") <= sum(map(len, expected.values()))


def scraped(port: int) -> dict | None:
    """The exporter's metrics once it serves the module's (its endpoint is up before Valkey is)."""
    try:
        metrics = scrape(port)
    except OSError:
        return None
    return metrics if any(name == "agentic_up" for name, _labels in metrics) else None


def test_the_exporter_reports_every_node(valkey_cluster, seeded):
    client, _seeder = seeded
    port = free_port()
    exporter = exporter_process(valkey_cluster.url, port)
    try:
        metrics = wait_until(lambda: scraped(port), timeout=20, interval=0.1, message="the exporter's /metrics")
        nodes = {f"127.0.0.1:{p}" for p in valkey_cluster.ports}
        assert per_node(metrics, "agentic_up") == dict.fromkeys(nodes, 1)
        user_keys = per_node(metrics, "agentic_user_keys")
        assert set(user_keys) == nodes
        assert user_keys == {
            f"127.0.0.1:{p}": count for p, count in zip(valkey_cluster.ports, user_keys_per_node(valkey_cluster), strict=True)
        }
        assert sum(user_keys.values()) == USERS
        assert set(per_node(metrics, "agentic_fanout_calls_total")) == nodes
        assert set(per_node(metrics, "agentic_model_ready")) == nodes
        info = [dict(labels) for name, labels in metrics if name == "agentic_classify_info"]
        assert sorted(labels["node"] for labels in info) == sorted(nodes)
        assert all(labels["model_status"] == "ready" for labels in info)
        # Per topic and per node: the subscribers each primary holds add up to the users' interests.
        subscriptions = sum(value for (name, _labels), value in metrics.items() if name == "agentic_topic_subscribers")
        assert subscriptions == sum(len(client.execute_command("AGENT.INTERESTS", user_key(n))) for n in range(USERS))
        # Cluster-wide, unlabelled, read once.
        assert metrics[("news_raw_len", ())] == client.xlen("news_raw")
        assert sum(value for (name, _labels), value in metrics.items() if name == "topic_stream_len") == ARTICLES
        assert stop_process(exporter) == 0
    finally:
        if exporter.poll() is None:
            stop_process(exporter)


@pytest.mark.parametrize("agent", ["enrich", "fanout"])
def test_enrich_and_fanout_refuse_a_cluster(valkey_cluster, agent):
    env = {**os.environ, "VALKEY_URL": valkey_cluster.url, "METRICS_PORT": str(free_port())}
    finished = subprocess.run([sys.executable, "-m", f"agentic_agents.{agent}"], env=env, capture_output=True, text=True, timeout=30)
    assert finished.returncode == 2, finished.stderr
    assert f"agentic-{agent}: {PIPELINE_ON_CLUSTER}" in finished.stderr


@pytest.fixture
def doomed_cluster(tmp_path):
    """A cluster of its own for the test that kills one of its nodes."""
    yield from started_cluster(tmp_path)


def test_a_dead_node_reads_as_down_and_the_others_still_export(doomed_cluster):
    run_agent(user_seeder.run, Config(valkey_url=doomed_cluster.url, seed_users=9, seed_rate=0))
    port = free_port()
    exporter = exporter_process(doomed_cluster.url, port)
    try:
        wait_until(lambda: scraped(port), timeout=20, interval=0.1, message="the exporter's /metrics")
        # Not the node the exporter's VALKEY_URL names, nor the catalog's: the rest must still work.
        client = doomed_cluster.client()
        catalog_port = client.get_node_from_key(CATALOG_KEY).port
        client.close()
        victim = next(i for i, p in enumerate(doomed_cluster.ports) if i > 0 and p != catalog_port)
        victims_users = user_keys_per_node(doomed_cluster)[victim]
        assert victims_users > 0
        doomed_cluster.kill(victim)
        dead = f"127.0.0.1:{doomed_cluster.ports[victim]}"
        alive = {f"127.0.0.1:{p}" for i, p in enumerate(doomed_cluster.ports) if i != victim}

        def down() -> dict | None:
            metrics = scraped(port)
            return metrics if metrics and per_node(metrics, "agentic_up").get(dead) == 0 else None

        metrics = wait_until(down, timeout=20, interval=0.2, message=f"agentic_up 0 for {dead}")
        assert per_node(metrics, "agentic_up") == {**dict.fromkeys(alive, 1), dead: 0}
        assert set(per_node(metrics, "agentic_user_keys")) == alive
        dead_samples = [name for (name, labels), _value in metrics.items() if dict(labels).get("node") == dead]
        assert dead_samples == ["agentic_up"], "nothing else of a node that did not answer"
        assert sum(per_node(metrics, "agentic_user_keys").values()) == 9 - victims_users
        assert stop_process(exporter) == 0
    finally:
        if exporter.poll() is None:
            stop_process(exporter)
