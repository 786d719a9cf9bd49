"""LangChain tools for an LLM agent: publish an article into the pipeline, read a user's feed,
classify a text, all through the module. Needs the `[langchain]` extra (langchain-core).

    from agentic_client import AgenticClient
    from agentic_client.langchain import make_tools

    tools = make_tools(AgenticClient.from_url("redis://127.0.0.1:6379"))
    llm_with_tools = chat_model.bind_tools(tools)

Tools return text (JSON) for the model to read; module errors become the tool's answer
(`handle_tool_error`), so the agent sees why a call failed instead of the run stopping."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

try:
    from langchain_core.tools import BaseTool, StructuredTool, ToolException
    from pydantic import BaseModel, Field
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ImportError("agentic_client.langchain needs langchain-core: pip install 'agentic-client[langchain]'") from e

from ._protocol import AgenticError, Classification, FeedEntry, user_key
from .aio import AsyncAgenticClient
from .client import AgenticClient

MAX_FEED_COUNT = 50


class PublishArticleInput(BaseModel):
    title: str = Field(description="The article's headline")
    text: str = Field(description="The article's body, plain text")
    link: str | None = Field(default=None, description="URL of the original article, if any")
    article_id: str | None = Field(
        default=None, description="A stable id (printable ASCII, no spaces or braces); by default a hash of title and text"
    )


class ReadFeedInput(BaseModel):
    user_id: str = Field(description="The user's id, e.g. '42'")
    count: int = Field(default=10, ge=1, le=MAX_FEED_COUNT, description="How many of the newest entries to return")


class ClassifyTextInput(BaseModel):
    text: str = Field(description="The text to classify")
    topics: list[str] | None = Field(default=None, description="Only these topic slugs; by default every topic of the catalog")


def _published(entry_id: str | None, article_id: str | None) -> str:
    if entry_id is None:
        return json.dumps({"published": False, "reason": "this article id was already published recently"})
    return json.dumps({"published": True, "stream_entry": entry_id, "article_id": article_id})


def _feed(entries: list[FeedEntry]) -> str:
    def render(e: FeedEntry) -> dict[str, Any]:
        try:
            document = e.json()
        except ValueError:
            document = e.body  # not JSON: the raw text
        return {"entry_id": e.id, "topic": e.topic, "doc_key": e.doc_key, "document": document}

    return json.dumps([render(e) for e in entries], ensure_ascii=False)


def _classification(c: Classification) -> str:
    return json.dumps({"topic": c.topic, "score": c.score, "tier": c.tier, "scores": c.scores})


def _tool_errors(function: Callable[..., Any]) -> Callable[..., Any]:
    """Module and input errors as ToolException, which LangChain turns into the tool's answer."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (AgenticError, ValueError) as e:
            raise ToolException(str(e)) from e

    return call


def _async_tool_errors(function: Callable[..., Any]) -> Callable[..., Any]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await function(*args, **kwargs)
        except (AgenticError, ValueError) as e:
            raise ToolException(str(e)) from e

    return call


def make_tools(
    client: AgenticClient | None = None,
    *,
    async_client: AsyncAgenticClient | None = None,
    user_key_of: Callable[[str], str] = user_key,
    source: str = "langchain-agent",
) -> list[BaseTool]:
    """The three tools, `publish_article`, `read_feed` and `classify_text`, bound to `client` (for
    `invoke`) and/or `async_client` (for `ainvoke`). `user_key_of` maps the user id the model gives
    to the user key (default `user:{<id>}`); `source` is the articles' `source` field."""
    if client is None and async_client is None:
        raise ValueError("make_tools needs a client, an async_client, or both")

    def publish(title: str, text: str, link: str | None = None, article_id: str | None = None) -> str:
        assert client is not None
        entry = client.publish_article(title, text, article_id=article_id, link=link, source=source)
        return _published(entry, article_id)

    async def apublish(title: str, text: str, link: str | None = None, article_id: str | None = None) -> str:
        assert async_client is not None
        entry = await async_client.publish_article(title, text, article_id=article_id, link=link, source=source)
        return _published(entry, article_id)

    def read_feed(user_id: str, count: int = 10) -> str:
        assert client is not None
        return _feed(client.feed(user_key_of(user_id), count=count))

    async def aread_feed(user_id: str, count: int = 10) -> str:
        assert async_client is not None
        return _feed(await async_client.feed(user_key_of(user_id), count=count))

    def classify(text: str, topics: list[str] | None = None) -> str:
        assert client is not None
        return _classification(client.classify(text, topics=topics))

    async def aclassify(text: str, topics: list[str] | None = None) -> str:
        assert async_client is not None
        return _classification(await async_client.classify(text, topics=topics))

    def tool(name: str, description: str, schema: type[BaseModel], sync: Callable[..., str], coro: Callable[..., Any]) -> BaseTool:
        return StructuredTool.from_function(
            func=_tool_errors(sync) if client is not None else None,
            coroutine=_async_tool_errors(coro) if async_client is not None else None,
            name=name,
            description=description,
            args_schema=schema,
            handle_tool_error=True,
        )

    return [
        tool(
            "publish_article",
            "Publish a news article into the feed pipeline: it is classified into a topic and delivered to the feeds of "
            "every user interested in that topic. Returns the stream entry id.",
            PublishArticleInput,
            publish,
            apublish,
        ),
        tool(
            "read_feed",
            "Read a user's personal news feed, newest first: each entry's topic and article document.",
            ReadFeedInput,
            read_feed,
            aread_feed,
        ),
        tool(
            "classify_text",
            "Classify a text into one of the news topics (politics, business, technology, sports, ...). Returns the best "
            "topic and every topic's score.",
            ClassifyTextInput,
            classify,
            aclassify,
        ),
    ]
