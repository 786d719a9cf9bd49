import subprocess
import sys
from pathlib import Path

import pytest

from agentic_agents.config import Config, ConfigError


def test_defaults_are_the_references():
    config = Config.from_env({})
    assert config.valkey_url == "redis://localhost:6379"
    assert config.feed_len is None  # the module's agentic.feed-len stays as it is
    assert config.topic_maxlen == 10_000
    assert config.news_raw_maxlen == 5_000
    assert config.enrich_use_cuda == "auto"
    assert config.enrich_batch == 32
    assert config.replay_file == Path("data/news_sample.csv")
    assert config.replay_rate == 250.0
    assert config.pop_rate == 0.05
    assert config.max_reader_rps == 200.0
    assert config.seed_rate == 0.5
    assert config.seed_users == 0
    assert config.metrics_port is None


def test_every_variable_is_read():
    config = Config.from_env(
        {
            "VALKEY_URL": "redis://valkey:6380/0",
            "FEED_LEN": "50",
            "TOPIC_MAXLEN": "2000",
            "NEWS_RAW_MAXLEN": "300",
            "ENRICH_USE_CUDA": "1",
            "ENRICH_BATCH": "8",
            "REPLAY_FILE": "/data/articles.jsonl",
            "REPLAY_RATE": "12.5",
            "POP_RATE": "0.5",
            "MAX_READER_RPS": "1000",
            "SEED_RATE": "3",
            "SEED_USERS": "10000",
            "METRICS_PORT": "9200",
        }
    )
    assert config == Config(
        valkey_url="redis://valkey:6380/0",
        feed_len=50,
        topic_maxlen=2000,
        news_raw_maxlen=300,
        enrich_use_cuda="1",
        enrich_batch=8,
        replay_file=Path("/data/articles.jsonl"),
        replay_rate=12.5,
        pop_rate=0.5,
        max_reader_rps=1000.0,
        seed_rate=3.0,
        seed_users=10000,
        metrics_port=9200,
    )


def test_blank_values_mean_the_default():
    assert Config.from_env({"FEED_LEN": "", "ENRICH_BATCH": "  ", "VALKEY_URL": ""}) == Config()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("VALKEY_URL", "http://valkey:6379", "VALKEY_URL='http://valkey:6379': expected a URL starting with one of redis://"),
        ("VALKEY_URL", "redis://valkey:port", "VALKEY_URL='redis://valkey:port'"),
        ("FEED_LEN", "0", "FEED_LEN='0': expected an integer from 1 to 100000"),
        ("FEED_LEN", "100001", "FEED_LEN='100001': expected an integer from 1 to 100000"),
        ("TOPIC_MAXLEN", "ten", "TOPIC_MAXLEN='ten': expected an integer >= 1"),
        ("NEWS_RAW_MAXLEN", "-5", "NEWS_RAW_MAXLEN='-5': expected an integer >= 1"),
        ("ENRICH_USE_CUDA", "yes", "ENRICH_USE_CUDA='yes': expected one of auto, 1, 0"),
        ("ENRICH_BATCH", "1.5", "ENRICH_BATCH='1.5': expected an integer from 1 to 10000"),
        ("REPLAY_RATE", "-1", "REPLAY_RATE='-1': expected a number >= 0"),
        ("POP_RATE", "nan", "POP_RATE='nan': expected a number >= 0"),
        ("MAX_READER_RPS", "0", "MAX_READER_RPS='0': expected a number > 0"),
        ("SEED_RATE", "fast", "SEED_RATE='fast': expected a number >= 0"),
        ("SEED_USERS", "-1", "SEED_USERS='-1': expected an integer >= 0"),
        ("METRICS_PORT", "70000", "METRICS_PORT='70000': expected an integer from 1 to 65535"),
    ],
)
def test_invalid_values_are_named_in_the_error(name, value, message):
    with pytest.raises(ConfigError) as error:
        Config.from_env({name: value})
    assert message in str(error.value)


def test_every_invalid_variable_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        Config.from_env({"ENRICH_BATCH": "0", "POP_RATE": "x", "FEED_LEN": "0"})
    lines = str(error.value).splitlines()
    assert len(lines) == 3
    assert {line.split("=")[0] for line in lines} == {"ENRICH_BATCH", "POP_RATE", "FEED_LEN"}


def test_an_agent_exits_2_with_the_reason_on_a_bad_environment():
    result = subprocess.run(
        [sys.executable, "-m", "agentic_agents.fanout"],
        env={"ENRICH_BATCH": "zero", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "agentic-fanout: invalid configuration" in result.stderr
    assert "ENRICH_BATCH='zero': expected an integer from 1 to 10000" in result.stderr
