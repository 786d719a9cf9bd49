import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from agent_thread import wait_until
from conftest import free_port

AGENTS = ["replay", "enrich", "fanout", "user_seeder", "user_reader", "stats_exporter"]


def metrics_served(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("agent", AGENTS)
def test_agents_stop_cleanly_on_a_signal(valkey, valkey_server, tmp_path, agent, signum):
    replay_file = tmp_path / "news.jsonl"
    replay_file.write_text("".join(json.dumps({"id": f"a{n}", "title": f"T{n}"}) + "\n" for n in range(1000)))
    port = free_port()
    env = {
        **os.environ,
        "VALKEY_URL": valkey_server.url,
        "METRICS_PORT": str(port),
        "REPLAY_FILE": str(replay_file),
        "REPLAY_RATE": "20",
        "SEED_RATE": "20",
    }
    process = subprocess.Popen([sys.executable, "-m", f"agentic_agents.{agent}"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: metrics_served(port), timeout=20, interval=0.05, message="the agent's /metrics")
        time.sleep(0.3)  # into its main loop
        process.send_signal(signum)
        assert process.wait(10) == 0
        assert f"{signum.name}: stopping" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        process.stderr.close()
