import json
import os
import signal
import subprocess
import sys
import urllib.request

import redis
from agent_thread import AgentThread, wait_until
from conftest import free_port
from prometheus_client.parser import text_string_to_metric_families

from agentic_agents import stats_exporter
from agentic_agents.module import stats, user_key


def fan_out_two_articles(client) -> None:
    client.execute_command("AGENT.SUBSCRIBE", user_key(1), "health")
    for n in range(2):
        client.execute_command("AGENT.FANOUT", "health", f"doc:{{h{n}}}", json.dumps({"id": f"h{n}"}), "STREAM", "topic:health")
    for n in range(3):
        client.xadd("news_raw", {"id": f"r{n}", "data": "{}"})


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, from the exporter's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_endpoint_serves_the_modules_numbers(valkey, valkey_server):
    fan_out_two_articles(valkey)
    port = free_port()
    env = {**os.environ, "VALKEY_URL": valkey_server.url, "METRICS_PORT": str(port)}
    exporter = subprocess.Popen([sys.executable, "-m", "agentic_agents.stats_exporter"], env=env, stderr=subprocess.PIPE, text=True)
    try:

        def scraped():
            """The metrics once the collector is registered (the endpoint is up before Valkey is)."""
            try:
                metrics = scrape(port)
            except OSError:
                return None
            return metrics if ("agentic_up", ()) in metrics else None

        metrics = wait_until(scraped, timeout=20, interval=0.1, message="the exporter's /metrics")
        # The module's counters live as long as the server (earlier tests count too).
        module_stats = stats(valkey)
        assert metrics[("agentic_up", ())] == 1
        assert metrics[("agentic_fanout_calls_total", ())] == float(module_stats["fanout_calls"]) >= 2
        assert metrics[("agentic_fanout_deliveries_total", ())] == float(module_stats["fanout_deliveries"]) >= 2
        assert metrics[("agentic_user_keys", ())] == 1
        assert metrics[("agentic_topic_subscribers", (("topic", "health"),))] == 1
        assert ("agentic_fanout_latency_us_p99", ()) in metrics
        assert metrics[("topic_stream_len", (("topic", "health"),))] == 2
        assert metrics[("topic_stream_len", (("topic", "sports"),))] == 0
        assert metrics[("news_raw_len", ())] == 3
        info = [labels for name, labels in metrics if name == "agentic_classify_info"]
        assert len(info) == 1
        assert ("model_status", "ready") in info[0]
        assert ("backend", "tract-onnx-cpu") in info[0]

        exporter.send_signal(signal.SIGTERM)
        assert exporter.wait(10) == 0
    finally:
        if exporter.poll() is None:
            exporter.kill()
            exporter.wait(10)
        exporter.stderr.close()


def test_counters_and_gauges_follow_the_module(valkey, make_config):
    fan_out_two_articles(valkey)
    exporter = AgentThread(stats_exporter.run, make_config()).start()
    try:
        wait_until(lambda: exporter.sample("agentic_up") == 1, message="the collector")
        calls = exporter.sample("agentic_fanout_calls_total")
        latencies = exporter.sample("agentic_fanout_latency_us_count_total")
        assert calls == float(stats(valkey)["fanout_calls"])
        valkey.execute_command("AGENT.FANOUT", "health", "doc:{h9}", "{}", "STREAM", "topic:health")
        assert exporter.sample("agentic_fanout_calls_total") == calls + 1
        assert exporter.sample("agentic_fanout_latency_us_count_total") == latencies + 1
        assert exporter.sample("topic_stream_len", topic="health") == 3
        assert exporter.sample("agentic_user_keys") == 1
        assert exporter.sample("agentic_model_ready") == 1
    finally:
        exporter.stop_and_join()


def test_an_unreachable_valkey_reads_as_down():
    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, decode_responses=True, protocol=2)
    families = list(stats_exporter.ModuleCollector(client).collect())
    assert [(f.name, [s.value for s in f.samples]) for f in families] == [("agentic_up", [0])]
