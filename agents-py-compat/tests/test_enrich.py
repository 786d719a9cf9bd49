import json
import logging
import socket

import pytest
from agent_thread import AgentThread, run_agent, wait_until
from conftest import TINY_MODEL

from agentic_agents import enrich
from agentic_agents.group_reader import GroupReader
from agentic_agents.module import classify_info, gpu_sidecar_live, parse_classification, topic_slugs

HEADLINES = [
    ("Parliament passes the budget after a long night", "The vote was 310 to 290."),
    ("Striker scores twice as the home side wins the cup", "Fans celebrated in the streets."),
    ("Chipmaker lifts its forecast on data-centre demand", "Orders for accelerators doubled."),
    ("Heatwave breaks records across the south", "Temperatures reached 44 degrees."),
    ("New vaccine halves hospital admissions", "The trial followed 20,000 patients."),
    ("Central bank holds rates and signals cuts", "Markets rallied on the news."),
    ("Telescope finds water on a distant planet", "Astronomers call it a first."),
    ("Teachers strike over pay and class sizes", "Schools closed for two days."),
    ("Film festival opens with a silent comedy", "Critics praised the score."),
    ("Carmaker cuts 3,000 jobs as sales fall", "Unions called the move reckless."),
    ("Oil prices fell 3% after OPEC agreed to raise output", ""),
    ("", "Only a body: the museum reopened after two years of repairs."),
]


def add_raw_articles(client) -> list[str]:
    """Writes HEADLINES into news_raw as the replay agent and the fetcher do; returns the entry ids."""
    entry_ids = []
    for n, (title, text) in enumerate(HEADLINES):
        document = {"id": f"e-{n}", "title": title, "text": text, "source": "test"}
        entry_ids.append(client.xadd("news_raw", {"id": f"e-{n}", "data": json.dumps(document)}))
    return entry_ids


def classified_text(title: str, text: str) -> str:
    return f"{title}. {text}" if title and text else title or text


def topic_entries(client) -> dict[str, list[tuple[str, dict]]]:
    return {slug: client.xrange(f"topic:{slug}") for slug in topic_slugs(client)}


def test_enrich_routes_each_article_to_the_topic_agent_classify_picks(valkey, make_config):
    entry_ids = add_raw_articles(valkey)
    agent = run_agent(enrich.run, make_config(enrich_batch=5), max_items=len(HEADLINES))

    routed = {}
    for slug, entries in topic_entries(valkey).items():
        for _entry_id, fields in entries:
            document = json.loads(fields["data"])
            assert document["topic"] == slug
            assert fields["doc"] == f"doc:{{{document['id']}}}"
            routed[document["id"]] = document
    assert sorted(routed) == sorted(f"e-{n}" for n in range(len(HEADLINES)))
    for n, (title, text) in enumerate(HEADLINES):
        document = routed[f"e-{n}"]
        expected = parse_classification(valkey.execute_command("AGENT.CLASSIFY", classified_text(title, text)))
        assert (document["topic"], document["score"]) == (expected.topic, round(expected.score, 4))
        assert document["ingest_ms"] == int(entry_ids[n].split("-")[0])
        assert (document["title"], document["text"], document["source"]) == (title, text, "test")

    assert valkey.xpending("news_raw", "cg_enrich")["pending"] == 0
    assert agent.sample("enrich_in_total") == len(HEADLINES)
    by_topic = {}
    for document in routed.values():
        by_topic[document["topic"]] = by_topic.get(document["topic"], 0) + 1
    for topic, count in by_topic.items():
        assert agent.sample("enrich_out_total", topic=topic) == count
    # 12 articles in batches of 5: three pipelined rounds of AGENT.CLASSIFY
    assert agent.sample("enrich_classifier_latency_seconds_count") == 3
    assert agent.sample("news_raw_len") == len(HEADLINES)
    assert agent.sample("enrich_gpu") == 0


def test_unusable_entries_are_acknowledged_and_counted(valkey, make_config):
    valkey.xadd("news_raw", {"id": "bad-json", "data": "{not json"})
    valkey.xadd("news_raw", {"id": "no-text", "data": json.dumps({"title": " ", "text": ""})})
    valkey.xadd("news_raw", {"id": "brace{s}", "data": json.dumps({"title": "Braces are not an id"})})
    valkey.xadd("news_raw", {"id": "good", "data": json.dumps({"title": "Cup final tonight"})})
    agent = run_agent(enrich.run, make_config(), max_items=4)
    assert agent.sample("enrich_errors_total", reason="malformed") == 3
    assert agent.sample("enrich_in_total") == 4
    assert sum(len(entries) for entries in topic_entries(valkey).values()) == 1
    assert valkey.xpending("news_raw", "cg_enrich")["pending"] == 0


def test_articles_wait_while_the_module_cannot_classify(valkey, make_config):
    """Without a model AGENT.CLASSIFY fails: the articles stay pending, and are routed once it is back."""
    valkey.config_set("agentic.model-dir", "")
    try:
        add_raw_articles(valkey)
        agent = AgentThread(enrich.run, make_config(enrich_batch=4), max_items=len(HEADLINES)).start()
        wait_until(lambda: agent.sample("enrich_errors_total", reason="classify"), message="a failed classification")
        assert valkey.xpending("news_raw", "cg_enrich")["pending"] > 0
        assert sum(len(entries) for entries in topic_entries(valkey).values()) == 0
    finally:
        valkey.config_set("agentic.model-dir", str(TINY_MODEL))
    assert agent.join() == len(HEADLINES)
    assert sum(len(entries) for entries in topic_entries(valkey).values()) == len(HEADLINES)
    assert valkey.xpending("news_raw", "cg_enrich")["pending"] == 0


def test_a_restarted_enrich_finishes_what_it_left_pending(valkey, make_config):
    add_raw_articles(valkey)
    # A previous run read 5 articles and died before acknowledging them.
    consumer = GroupReader(valkey, enrich.GROUP, f"enrich-{socket.gethostname()}", ["news_raw"])
    assert len(consumer.read(5, 100)) == 0  # its own pending list was empty
    assert len(consumer.read(5, 100)) == 5
    run_agent(enrich.run, make_config(), max_items=len(HEADLINES))
    routed = [json.loads(f["data"])["id"] for entries in topic_entries(valkey).values() for _, f in entries]
    assert sorted(routed) == sorted(f"e-{n}" for n in range(len(HEADLINES)))


def test_enrich_use_cuda_1_without_a_gpu_sidecar_warns_once(valkey, make_config, caplog, monkeypatch):
    monkeypatch.setattr(enrich, "GPU_CHECK_INTERVAL_S", 0.0)  # check at every batch
    add_raw_articles(valkey)
    with caplog.at_level(logging.WARNING, logger="agentic_agents.enrich"):
        agent = run_agent(enrich.run, make_config(enrich_use_cuda="1", enrich_batch=2), max_items=len(HEADLINES))
    warnings = [r for r in caplog.records if "ENRICH_USE_CUDA=1" in r.getMessage()]
    assert len(warnings) == 1
    assert agent.sample("enrich_gpu") == 0
    assert agent.sample("enrich_in_total") == len(HEADLINES)


@pytest.mark.parametrize(
    ("info", "on_gpu"),
    [
        ({}, False),
        ({"agentic_sidecars_live": "0", "agentic_sidecar_devices": "cuda:0"}, False),
        ({"agentic_sidecars_live": "1", "agentic_sidecar_devices": "cpu"}, False),
        ({"agentic_sidecars_live": "2", "agentic_sidecar_devices": "cpu,CUDA:1"}, True),
        ({"agentic_sidecars_live": "", "agentic_sidecar_devices": "cuda:0"}, False),
    ],
)
def test_enrich_gpu_means_a_live_cuda_sidecar(info, on_gpu):
    assert gpu_sidecar_live(info) is on_gpu


def test_this_module_reports_no_gpu_sidecar(valkey):
    info = classify_info(valkey)
    assert info["agentic_model_status"] == "ready"
    assert gpu_sidecar_live(info) is False


def test_enrich_trims_news_raw_of_processed_entries_only(valkey, make_config):
    for n in range(300):
        valkey.xadd("news_raw", {"id": f"r-{n}", "data": json.dumps({"title": f"Story {n}"})})
    # Another consumer group that has read only the first 120 entries: the rest must stay.
    valkey.xgroup_create("news_raw", "slow", id=valkey.xrange("news_raw", count=120)[-1][0])
    agent = run_agent(enrich.run, make_config(news_raw_maxlen=100, enrich_batch=50), max_items=300)
    assert sum(len(entries) for entries in topic_entries(valkey).values()) == 300, "nothing unread was trimmed"
    remaining = [fields["id"] for _, fields in valkey.xrange("news_raw")]
    assert remaining[-180:] == [f"r-{n}" for n in range(120, 300)]
    assert len(remaining) < 300, "what both groups processed was trimmed"
    assert agent.sample("news_raw_trim_ops_total") >= 1
    assert agent.sample("news_raw_len") == valkey.xlen("news_raw")
