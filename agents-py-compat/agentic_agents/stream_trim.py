"""Trimming a stream of the entries every consumer group is done with, never of one a group still
needs (unread, or read and not acknowledged): the rule the module applies to the streams it trims."""

from __future__ import annotations

import redis


def _entry_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def oldest_needed_id(client: redis.Redis, stream: str) -> str | None:
    """The smallest id some consumer group of `stream` still needs: its oldest pending entry, or
    the entry after the last one delivered to it. None when the stream has no group (nobody to
    keep entries for, and no way to know what was processed)."""
    needed: list[tuple[int, int]] = []
    for group in client.xinfo_groups(stream):
        ms, seq = _entry_id(group["last-delivered-id"])
        needed.append((ms, seq + 1))
        if group["pending"]:
            needed.append(_entry_id(client.xpending(stream, group["name"])["min"]))
    if not needed:
        return None
    ms, seq = min(needed)
    return f"{ms}-{seq}"


def trim_processed(client: redis.Redis, stream: str) -> int:
    """Removes the entries before the oldest one any consumer group needs (MINID ~: whole stream
    nodes, so a few processed entries may stay); returns how many were removed."""
    minid = oldest_needed_id(client, stream)
    if minid is None:
        return 0
    return client.xtrim(stream, minid=minid, approximate=True)
