"""The libagentic.so commands the agents send, and their replies parsed (docs/commands.md)."""

from __future__ import annotations

from dataclasses import dataclass

import redis

# The raw-article stream: agentic-fetcher and the replay agent write it, the module's pipeline
# (consumer group `agentic`) and the enrich agent (`cg_enrich`) read it.
NEWS_RAW = "news_raw"


@dataclass(frozen=True)
class Classification:
    topic: str
    score: float


@dataclass(frozen=True)
class FanoutResult:
    delivered: int
    duplicates: int


def user_key(number: int) -> str:
    """`user:{42}`: the braces make `{42}` the hash tag, as the module's README recommends."""
    return f"user:{{{number}}}"


def doc_key(article_id: str) -> str:
    return f"doc:{{{article_id}}}"


def topic_stream(slug: str) -> str:
    return f"topic:{slug}"


def parse_classification(reply: list) -> Classification:
    """`[best-slug, [slug, score, ...]]`, best first."""
    best, scores = reply
    return Classification(topic=best, score=float(scores[1]))


def parse_fanout(reply: list) -> FanoutResult:
    """`[delivered, N, duplicates, M]`."""
    fields = dict(zip(reply[::2], reply[1::2], strict=True))
    return FanoutResult(delivered=int(fields["delivered"]), duplicates=int(fields["duplicates"]))


def topic_slugs(client: redis.Redis) -> list[str]:
    """Slugs of the topic catalog (the ten defaults until someone changes it), in catalog order."""
    return [dict(zip(entry[::2], entry[1::2], strict=True))["slug"] for entry in client.execute_command("AGENT.TOPIC.LIST")]


def stats(client: redis.Redis) -> dict[str, str]:
    """AGENT.STATS: every module metric, name -> value as the module rendered it."""
    reply = client.execute_command("AGENT.STATS")
    return dict(zip(reply[::2], reply[1::2], strict=True))


def classify_info(client: redis.Redis) -> dict[str, str]:
    """The fields of `INFO agentic_classify` (names keep their `agentic_` prefix)."""
    return client.info("agentic_classify")


def gpu_sidecar_live(info: dict[str, str]) -> bool:
    """Whether the module reports a live inference sidecar on a CUDA device. The fields come with
    GPU sidecars; a module without them has no sidecar."""
    try:
        live = int(info.get("agentic_sidecars_live", "0") or 0)
    except ValueError:
        return False
    return live > 0 and "cuda" in info.get("agentic_sidecar_devices", "").lower()
