import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agent_thread import run_agent, wait_until
from conftest import REPO_ROOT, free_port, missing

from agentic_agents import replay
from agentic_agents.module import stats, topic_slugs, user_key

FETCHER = REPO_ROOT / "target" / "release" / "agentic-fetcher"
FETCHER_FIXTURES = REPO_ROOT / "fetcher" / "tests" / "fixtures"
DATA = Path(__file__).parent / "data"


def write_articles(path: Path, count: int) -> Path:
    with path.open("w") as f:
        for n in range(count):
            f.write(json.dumps({"id": f"a-{n}", "title": f"Headline {n}", "text": f"Body of article {n}."}) + "\n")
    return path


def stream_documents(client, stream: str) -> list[tuple[str, str]]:
    return [(fields["id"], fields["data"]) for _entry_id, fields in client.xrange(stream)]


@pytest.mark.parametrize(
    "replayed",
    [FETCHER_FIXTURES / "articles.csv", FETCHER_FIXTURES / "articles.jsonl", DATA / "tricky.jsonl", DATA / "tricky.csv"],
    ids=lambda p: p.name,
)
def test_replay_writes_what_the_fetcher_writes(valkey, valkey_server, make_config, replayed):
    """Same file, same entries: ids (hashes of id-less articles included), cleaned text, dates, key order."""
    if not FETCHER.is_file():
        missing(f"{FETCHER} is missing: build it with `make build`")
    subprocess.run(
        [
            str(FETCHER),
            "--valkey", valkey_server.admin_url,  # the reference writer, not an agent
            "--stream", "fetcher_out",
            "--max-backlog", "0",
            "--metrics-addr", "",
            "replay", "--file", str(replayed), "--rate", "0",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    agent = run_agent(replay.run, make_config(replay_file=replayed, replay_rate=0))
    expected = stream_documents(valkey, "fetcher_out")
    assert len(expected) >= 3
    assert stream_documents(valkey, "news_raw") == expected
    assert agent.handled == len(expected)
    assert agent.sample("producer_msgs_total") == len(expected)


def test_malformed_records_are_counted_by_reason(valkey, make_config):
    agent = run_agent(replay.run, make_config(replay_file=DATA / "tricky.jsonl", replay_rate=0))
    assert agent.sample("replay_malformed_total", reason="empty") == 1
    assert agent.sample("replay_malformed_total", reason="invalid_utf8") == 1
    assert agent.sample("producer_msgs_total") == valkey.xlen("news_raw") == 10
    assert agent.sample("replay_write_latency_seconds_count") == 10


def test_replay_rate_spaces_the_writes(valkey, make_config, tmp_path):
    started = time.monotonic()
    run_agent(replay.run, make_config(replay_file=write_articles(tmp_path / "a.jsonl", 21), replay_rate=100))
    elapsed = time.monotonic() - started
    # 20 intervals of 10 ms between 21 writes
    assert elapsed >= 0.19
    assert elapsed < 5
    entry_ms = [int(entry_id.split("-")[0]) for entry_id, _ in valkey.xrange("news_raw")]
    assert entry_ms[-1] - entry_ms[0] >= 190


def test_news_raw_maxlen_caps_the_stream(valkey, make_config, tmp_path):
    run_agent(replay.run, make_config(replay_file=write_articles(tmp_path / "a.jsonl", 1000), replay_rate=0, news_raw_maxlen=100))
    # MAXLEN ~ trims whole stream nodes (100 entries each): at least 100 stay, far fewer than 1000.
    assert 100 <= valkey.xlen("news_raw") <= 200
    assert valkey.xrevrange("news_raw", count=1)[0][1]["id"] == "a-999"


def test_max_items_bounds_the_replay(valkey, make_config, tmp_path):
    agent = run_agent(replay.run, make_config(replay_file=write_articles(tmp_path / "a.jsonl", 50), replay_rate=0), max_items=7)
    assert agent.handled == 7
    assert [fields["id"] for _, fields in valkey.xrange("news_raw")] == [f"a-{n}" for n in range(7)]


def test_the_module_pipeline_consumes_replayed_articles(valkey, make_config):
    """The in-server pipeline (pipeline yes) takes replay's entries: classified, stored, delivered."""
    valkey.execute_command("AGENT.SUBSCRIBE", user_key(1), *topic_slugs(valkey))
    valkey.config_set("agentic.pipeline", "yes")
    run_agent(replay.run, make_config(replay_file=FETCHER_FIXTURES / "articles.jsonl", replay_rate=0))
    wait_until(lambda: stats(valkey)["pipeline_acked"] == "4", message="the pipeline to acknowledge 4 articles")
    assert stats(valkey)["pipeline_malformed"] == "0"
    feed = valkey.execute_command("AGENT.FEED", user_key(1))
    assert sorted(entry[2] for entry in feed) == ["doc:{0}", "doc:{1}", "doc:{6f96cca45ce722f60188e9c585d5bd43}", "doc:{ag-2}"]


def test_the_console_script_replays_and_exits_0(valkey, valkey_server, tmp_path):
    script = Path(sys.executable).with_name("agentic-replay")
    env = {
        **os.environ,
        "VALKEY_URL": valkey_server.url,
        "REPLAY_FILE": str(write_articles(tmp_path / "a.jsonl", 5)),
        "REPLAY_RATE": "0",
        "METRICS_PORT": str(free_port()),
    }
    result = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert valkey.xlen("news_raw") == 5


def test_a_missing_replay_file_is_a_clear_fatal_error(valkey_server):
    env = {**os.environ, "VALKEY_URL": valkey_server.url, "REPLAY_FILE": "/nonexistent/news.csv", "METRICS_PORT": str(free_port())}
    result = subprocess.run([sys.executable, "-m", "agentic_agents.replay"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "REPLAY_FILE=/nonexistent/news.csv: no such file" in result.stderr
