"""What the sync and async clients share: the AGENT.* argument lists, the replies parsed into
typed values, the module's errors as exceptions (docs/commands.md is the reference), and the feed
iterators' retry timing.

Parsers accept both `bytes` and `str`, so a client built with or without `decode_responses`
gives the same typed values."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

# The raw-article stream that agentic-fetcher writes and the module's pipeline reads.
NEWS_RAW = "news_raw"
# The topic catalog's key: on a cluster, AGENT.TOPIC.* must go to the node serving it.
CATALOG_KEY = "agentic:topics"
# AGENT.FEED ... AFTER 0-0 returns every stored entry, oldest first.
FEED_START = "0-0"
# The fetcher's write script (fetcher/src/writer.rs, WRITE_SCRIPT), byte for byte: the dedup key
# and the XADD in one atomic step, so a retried publish never writes an article twice.
WRITE_SCRIPT = (
    "if redis.call('SET', KEYS[2], 1, 'NX', 'EX', ARGV[3]) then "
    "return redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'data', ARGV[2]) else return false end"
)
DEFAULT_DEDUP_TTL_S = 86_400
MAX_ARTICLE_ID_LEN = 200
# AGENT.STATS names of latency percentiles and maxima: summing them over nodes means nothing.
PERCENTILE_SUFFIXES = ("_p50", "_p90", "_p99", "_p999", "_max")
_ENTRY_ID = re.compile(r"\d+(-\d+)?")
_WHITESPACE = re.compile(r"\s+")


class AgenticError(Exception):
    """Base of this package's errors."""


class AgenticCommandError(AgenticError, redis.ResponseError):
    """The module refused an AGENT.* command (bad arguments, wrong type, unknown topic ...).
    `command` is the command's name, `message` the server's error text. Also a redis-py
    ResponseError, so code that caught those around raw commands keeps working."""

    def __init__(self, command: str, message: str) -> None:
        super().__init__(f"{command}: {message}")
        self.command = command
        self.message = message


class ClassifyTimeoutError(AgenticCommandError):
    """AGENT.CLASSIFY's TIMEOUT passed before the classify pool answered."""


class ModelUnavailableError(AgenticCommandError):
    """The server has no model configured, or it is still loading (retry shortly), or it failed."""


def command_error(command: str, error: redis.ResponseError) -> AgenticCommandError:
    message = str(error)
    if command == "AGENT.CLASSIFY" and "timed out" in message:
        return ClassifyTimeoutError(command, message)
    if command == "AGENT.CLASSIFY" and ("model" in message and ("loading" in message or "no model" in message or "failed" in message)):
        return ModelUnavailableError(command, message)
    return AgenticCommandError(command, message)


@dataclass(frozen=True)
class FeedEntry:
    """One entry of a user's feed. `body` is the document, or None when it expired (`doc-ttl`) or,
    on a cluster, lives in another slot than the user (read it with GET doc_key from its node)."""

    id: str
    topic: str
    doc_key: str
    body: str | None

    def json(self) -> Any:
        """The body parsed as JSON (the pipeline's documents are JSON); None without a body."""
        return None if self.body is None else json.loads(self.body)


@dataclass(frozen=True)
class FanoutResult:
    delivered: int
    duplicates: int


@dataclass(frozen=True)
class Classification:
    """AGENT.CLASSIFY's answer: the best topic, every candidate's score (best first) and the tier
    that answered (`static` or `model`)."""

    topic: str
    score: float
    scores: dict[str, float]
    tier: str


@dataclass(frozen=True)
class Topic:
    """AGENT.TOPIC.GET: a topic's definition."""

    slug: str
    description: str
    examples: list[str]


@dataclass(frozen=True)
class TopicInfo:
    """One entry of AGENT.TOPIC.LIST. `default`: the catalog is still the ten defaults; `ready`:
    the topic vectors are prepared for classification."""

    slug: str
    description: str
    examples: int
    default: bool
    ready: bool


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def _pairs(reply: Sequence[Any]) -> dict[str, Any]:
    return {text(k): v for k, v in zip(reply[::2], reply[1::2], strict=True)}


def user_key(user_id: str | int) -> str:
    """`user:{42}`: the braces make the id the hash tag, so a cluster client routes by it."""
    return f"user:{{{user_id}}}"


def doc_key(article_id: str) -> str:
    """`doc:{<id>}`, the pipeline's name for an article's document."""
    return f"doc:{{{article_id}}}"


def topic_stream(slug: str) -> str:
    return f"topic:{slug}"


def check_entry_id(value: str, what: str) -> str:
    if not _ENTRY_ID.fullmatch(value):
        raise ValueError(f"{what} must be a feed entry id <ms>-<seq>, got {value!r}")
    return value


def need_topics(topics: Iterable[str], command: str) -> list[str]:
    topics = list(topics)
    if not topics:
        raise ValueError(f"{command} needs at least one topic")
    return topics


def feed_args(user: str, count: int | None, before: str | None, after: str | None, block_ms: int | None) -> list[Any]:
    if before is not None and after is not None:
        raise ValueError("AGENT.FEED takes BEFORE or AFTER, not both")
    args: list[Any] = ["AGENT.FEED", user]
    if count is not None:
        args += ["COUNT", count]
    if before is not None:
        args += ["BEFORE", check_entry_id(before, "before")]
    if after is not None:
        args += ["AFTER", after if after == "$" else check_entry_id(after, "after")]
    if block_ms is not None:
        if block_ms < 0:
            raise ValueError("block_ms must be >= 0 (0 waits forever)")
        args += ["BLOCK", block_ms]
    return args


def fanout_args(topic: str, doc: str, payload: str | bytes, stream: str | None, users: Iterable[str] | None) -> list[Any]:
    args: list[Any] = ["AGENT.FANOUT", topic, doc, payload]
    if stream is not None:
        args += ["STREAM", stream]
    if users is not None:
        users = list(users)
        if not users:
            raise ValueError("users, when given, must name at least one user key")
        args += ["USERS", *users]
    return args


def classify_args(text_: str, timeout_ms: int | None, topics: Iterable[str] | None) -> list[Any]:
    args: list[Any] = ["AGENT.CLASSIFY", text_]
    if timeout_ms is not None:
        args += ["TIMEOUT", timeout_ms]
    if topics is not None:
        args += ["TOPICS", *need_topics(topics, "AGENT.CLASSIFY TOPICS")]  # TOPICS must come last
    return args


def topic_set_args(slug: str, description: str, examples: Iterable[str] | None) -> list[Any]:
    args: list[Any] = ["AGENT.TOPIC.SET", slug, description]
    if examples is not None:
        args += ["EXAMPLES", *examples]
    return args


def parse_feed(reply: Sequence[Any]) -> list[FeedEntry]:
    """`[[entry-id, topic, doc-key, payload-or-nil], ...]`."""
    return [FeedEntry(text(i), text(t), text(d), None if b is None else text(b)) for i, t, d, b in reply]


def parse_fanout(reply: Sequence[Any]) -> FanoutResult:
    """`[delivered, N, duplicates, M]`."""
    fields = _pairs(reply)
    return FanoutResult(delivered=int(fields["delivered"]), duplicates=int(fields["duplicates"]))


def parse_classification(reply: Sequence[Any]) -> Classification:
    """`[best-slug, [slug, score, ...], tier]` (modules before the two tiers sent no tier)."""
    best, raw_scores, *rest = reply
    scores = {text(s): float(text(v)) for s, v in zip(raw_scores[::2], raw_scores[1::2], strict=True)}
    best = text(best)
    return Classification(topic=best, score=scores[best], scores=scores, tier=text(rest[0]) if rest else "model")


def parse_topic(reply: Sequence[Any]) -> Topic:
    fields = _pairs(reply)
    return Topic(slug=text(fields["slug"]), description=text(fields["description"]), examples=[text(e) for e in fields["examples"]])


def parse_topic_list(reply: Sequence[Any]) -> list[TopicInfo]:
    topics = []
    for entry in reply:
        f = _pairs(entry)
        topics.append(
            TopicInfo(
                slug=text(f["slug"]),
                description=text(f["description"]),
                examples=int(f["examples"]),
                default=int(f["default"]) == 1,
                ready=int(f["ready"]) == 1,
            )
        )
    return topics


def parse_stats(reply: Sequence[Any]) -> dict[str, str]:
    """AGENT.STATS's flat `name, value, ...` as name -> value, values as the module rendered them."""
    return {k: text(v) for k, v in _pairs(reply).items()}


def merge_stats(per_node: Sequence[dict[str, str]]) -> dict[str, str]:
    """Several nodes' AGENT.STATS as one: numbers summed (each node counts its own users and
    deliveries), except percentiles and maxima, where the largest is the only cluster-wide figure
    a sum cannot give; non-numeric values are the first node's."""
    merged: dict[str, str] = {}
    for name, value in per_node[0].items():
        parsed = [_number(node[name]) for node in per_node if name in node]
        values = [v for v in parsed if v is not None]
        if len(values) < len(parsed):
            merged[name] = value
            continue
        total = max(values) if name.endswith(PERCENTILE_SUFFIXES) else sum(values)
        merged[name] = str(total) if isinstance(total, int) else repr(float(total))
    return merged


def one_stats(per_node: dict[str, dict[str, str]]) -> dict[str, str]:
    """stats(): a standalone server's as is, a cluster's primaries merged."""
    return next(iter(per_node.values())) if len(per_node) == 1 else merge_stats(list(per_node.values()))


def standalone_node_name(client: Any) -> str:
    """`host:port` of a non-cluster client, as a cluster client names its nodes."""
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def _number(value: str) -> int | float | None:
    """An integer where the module rendered one (so sums stay integers), else a float, else None."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return None


def seen_key(stream: str, article_id: str) -> str:
    """The fetcher's dedup key (fetcher/src/writer.rs, seen_key): it carries the stream's hash tag,
    so on a cluster both keys of the write script are in the stream's slot."""
    open_ = stream.find("{")
    tag = stream
    if open_ >= 0:
        close = stream.find("}", open_ + 1)
        if close > open_ + 1:
            tag = stream[open_ + 1 : close]
    return f"fetcher:seen:{{{tag}}}:{article_id}"


def article_document(title: str, body: str, article_id: str | None, link: str | None, source: str, published: str | None) -> dict[str, str]:
    """The raw article JSON in the fetcher's key order (fetcher/src/article.rs): id, title, text,
    link?, source, published?. Whitespace is collapsed as the fetcher does; HTML is not stripped
    (callers pass plain text). Without an id, a hash of title and text, so the same article
    published twice is deduplicated."""
    title = _WHITESPACE.sub(" ", title).strip()
    body = _WHITESPACE.sub(" ", body).strip()
    if not title and not body:
        raise ValueError("an article needs a title or a text: the pipeline has nothing to classify otherwise")
    if article_id is None or not article_id.strip():
        article_id = hashlib.blake2b(f"{title}\n{body}".encode(), digest_size=16).hexdigest()
    article_id = article_id.strip()
    # The pipeline stores the article as doc:{<id>}, a hash tag: braces or spaces would break it.
    if len(article_id) > MAX_ARTICLE_ID_LEN or not all(0x21 <= ord(c) <= 0x7E and c not in "{}" for c in article_id):
        raise ValueError(f"article id must be 1-{MAX_ARTICLE_ID_LEN} printable ASCII characters, no spaces or braces: {article_id!r}")
    document = {"id": article_id, "title": title, "text": body}
    if link:
        document["link"] = link.strip()
    document["source"] = source
    if published:
        document["published"] = published
    return document


def article_json(document: dict[str, str]) -> str:
    """Compact and not ASCII-escaped, as serde_json writes it in the fetcher."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def publish_eval_args(
    title: str, text: str, article_id: str | None, link: str | None, source: str, published: str | None, stream: str, dedup_ttl_s: int
) -> list[Any]:
    """EVAL's arguments for publish_article: the write script, its two keys and its arguments."""
    document = article_document(title, text, article_id, link, source, published)
    return [WRITE_SCRIPT, 2, stream, seen_key(stream, document["id"]), document["id"], article_json(document), dedup_ttl_s]


class ReconnectBackoff:
    """The feed iterators' retries: 50 ms doubling up to 1 s, given up once failures have lasted
    `timeout_s` since the first one."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.failing_since: float | None = None
        self.delay = 0.05

    def next_delay(self) -> float | None:
        """The wait before the next attempt, or None to give up (the caller re-raises)."""
        now = time.monotonic()
        self.failing_since = self.failing_since or now
        if now - self.failing_since > self.timeout_s:
            return None
        delay, self.delay = self.delay, min(self.delay * 2, 1.0)
        return delay


def socket_timeout_of(client: Any) -> float | None:
    """The read timeout of `client`'s connections, in seconds, or None when they have none. A
    blocking AGENT.FEED that waits longer fails with a TimeoutError. Unless the client was given
    one, it is the connection class's default: None up to redis-py 7, 5 s from redis-py 8."""
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        kwargs, connection_class = pool.connection_kwargs, pool.connection_class
    else:  # a cluster client: sync keeps the nodes' settings in its nodes_manager, async in itself
        holder = getattr(client, "nodes_manager", client)
        kwargs = getattr(holder, "connection_kwargs", {})
        connection_class = kwargs.get("connection_class") or getattr(holder, "connection_class", None)
    if "socket_timeout" in kwargs:
        return kwargs["socket_timeout"]
    # The sync cluster client makes each node's redis.Redis from its kwargs: Redis's default then.
    for klass in (*getattr(connection_class, "__mro__", ()), redis.Redis):
        parameter = inspect.signature(klass.__init__).parameters.get("socket_timeout")
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            return parameter.default
    return None


def check_block(block_ms: int | None, socket_timeout: float | None) -> None:
    if block_ms is None or socket_timeout is None:
        return
    if block_ms == 0 or block_ms >= socket_timeout * 1000:
        raise ValueError(
            f"block_ms={block_ms} does not end before the connection's socket_timeout ({socket_timeout} s): the read would time "
            "out. Make the client with socket_timeout=None (or longer), or use iter_feed, which waits in shorter slices"
        )


def block_slice(block_ms: int, socket_timeout: float | None) -> int:
    """The longest single wait under `socket_timeout`, with a margin for the round trip; the
    iterator repeats it, which loses nothing since each read names the last id seen."""
    if socket_timeout is None:
        return block_ms
    limit = int(max(socket_timeout * 1000 - 1000, socket_timeout * 500))
    return limit if block_ms == 0 else min(block_ms, limit)
