"""The LangChain tools with langchain-core alone (no LLM, no network): each tool invoked as an
agent would call it, and its effect checked in Valkey."""

from __future__ import annotations

import asyncio
import itertools
import json
import os

import pytest

try:
    import langchain_core  # noqa: F401
except ImportError:
    # CI runs make test-clients, which installs the extra: a skip there would hide a broken setup.
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise
    pytest.skip("langchain-core is not installed (pip install 'agentic-client[langchain]')", allow_module_level=True)

from agentic_client import AgenticClient, AsyncAgenticClient, doc_key, user_key  # noqa: E402
from agentic_client.langchain import make_tools  # noqa: E402
from langchain_core.tools import BaseTool  # noqa: E402


@pytest.fixture
def client(valkey, valkey_server):
    with AgenticClient.from_url(valkey_server.url, decode_responses=True) as c:
        yield c


@pytest.fixture
def tools(client) -> dict[str, BaseTool]:
    return {t.name: t for t in make_tools(client)}


def test_tools_describe_themselves(tools):
    assert set(tools) == {"publish_article", "read_feed", "classify_text"}
    schema = tools["publish_article"].tool_call_schema.model_json_schema()
    assert set(schema["required"]) == {"title", "text"}
    assert tools["read_feed"].args["count"]["maximum"] == 50


def test_publish_article_goes_through_the_pipeline(tools, client, valkey):
    everything = [t.slug for t in client.topic_list()]
    client.subscribe(user_key("7"), *everything)
    feed = client.iter_feed(user_key("7"), after="$", block_ms=3000)
    valkey.config_set("agentic.pipeline", "yes")

    answer = json.loads(tools["publish_article"].invoke({"title": "Rover lands", "text": "A rover landed on Mars.", "article_id": "lc-1"}))
    assert answer["published"] is True
    [(entry_id, fields)] = valkey.xrange("news_raw")
    assert entry_id == answer["stream_entry"] and fields["id"] == "lc-1"
    assert json.loads(fields["data"])["source"] == "langchain-agent"

    [delivered] = itertools.islice(feed, 1)  # classified and fanned out by the module
    assert delivered.doc_key == doc_key("lc-1") and delivered.json()["title"] == "Rover lands"

    again = json.loads(tools["publish_article"].invoke({"title": "Rover lands", "text": "A rover landed on Mars.", "article_id": "lc-1"}))
    assert again["published"] is False


def test_read_feed(tools, client):
    client.subscribe(user_key("8"), "sports")
    client.fanout("sports", doc_key("m1"), json.dumps({"title": "Match one"}))
    client.fanout("sports", doc_key("m2"), "plain text")
    entries = json.loads(tools["read_feed"].invoke({"user_id": "8", "count": 5}))
    assert [(e["doc_key"], e["topic"], e["document"]) for e in entries] == [
        (doc_key("m2"), "sports", "plain text"),
        (doc_key("m1"), "sports", {"title": "Match one"}),
    ]
    assert json.loads(tools["read_feed"].invoke({"user_id": "nobody"})) == []


def test_classify_text_and_its_errors(tools, client):
    text = "The election results were announced"
    answer = json.loads(tools["classify_text"].invoke({"text": text}))
    expected = client.classify(text)
    assert (answer["topic"], answer["scores"]) == (expected.topic, expected.scores)
    restricted = json.loads(tools["classify_text"].invoke({"text": text, "topics": ["politics", "sports"]}))
    assert set(restricted["scores"]) == {"politics", "sports"}
    # A module error is the tool's answer, for the model to read, not an exception.
    assert "no topic 'nope'" in tools["classify_text"].invoke({"text": text, "topics": ["nope"]})


def test_async_tools(valkey, valkey_server):
    async def flow() -> None:
        async with await AsyncAgenticClient.from_url(valkey_server.url) as client:
            tools = {t.name: t for t in make_tools(async_client=client)}
            await client.subscribe(user_key("9"), "health")
            await client.fanout("health", doc_key("h1"), "vitamins")
            entries = json.loads(await tools["read_feed"].ainvoke({"user_id": "9"}))
            assert [e["document"] for e in entries] == ["vitamins"]
            answer = json.loads(await tools["classify_text"].ainvoke({"text": "A new vaccine"}))
            assert answer["topic"] == (await client.classify("A new vaccine")).topic
            published = json.loads(await tools["publish_article"].ainvoke({"title": "T", "text": "B"}))
            assert published["published"] is True and valkey.xlen("news_raw") == 1

    asyncio.run(flow())
