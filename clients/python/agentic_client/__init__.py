"""Typed Python client for the libagentic.so Valkey module (AGENT.* commands): `AgenticClient`
(sync) and `AsyncAgenticClient` (asyncio) on redis-py, a feed iterator that resumes after
reconnects, and LangChain tools in `agentic_client.langchain` (extra `[langchain]`)."""

from ._protocol import (
    CATALOG_KEY,
    FEED_START,
    NEWS_RAW,
    AgenticCommandError,
    AgenticError,
    Classification,
    ClassifyTimeoutError,
    FanoutResult,
    FeedEntry,
    ModelUnavailableError,
    Topic,
    TopicInfo,
    doc_key,
    merge_stats,
    parse_classification,
    parse_fanout,
    parse_feed,
    parse_stats,
    topic_stream,
    user_key,
)
from .aio import AsyncAgenticClient, AsyncFeedIterator
from .client import AgenticClient, FeedIterator, connect

__all__ = [
    "CATALOG_KEY",
    "FEED_START",
    "NEWS_RAW",
    "AgenticClient",
    "AgenticCommandError",
    "AgenticError",
    "AsyncAgenticClient",
    "AsyncFeedIterator",
    "Classification",
    "ClassifyTimeoutError",
    "FanoutResult",
    "FeedEntry",
    "FeedIterator",
    "ModelUnavailableError",
    "Topic",
    "TopicInfo",
    "connect",
    "doc_key",
    "merge_stats",
    "parse_classification",
    "parse_fanout",
    "parse_feed",
    "parse_stats",
    "topic_stream",
    "user_key",
]
