"""Reading streams through a consumer group so that nothing read is lost when an agent dies: the
consumer's own pending entries (read, never acknowledged) come first, then new ones."""

from __future__ import annotations

import logging

import redis

log = logging.getLogger(__name__)


class GroupReader:
    def __init__(self, client: redis.Redis, group: str, consumer: str, streams: list[str]) -> None:
        self.client = client
        self.group = group
        # A stable name (not the pid): a restarted agent finds its own pending entries again.
        self.consumer = consumer
        self.streams: list[str] = []
        self.pending_first = True
        self.set_streams(streams)

    def set_streams(self, streams: list[str]) -> None:
        """Reads `streams` from now on, creating the group (from the first entry) where it is missing."""
        added = [s for s in streams if s not in self.streams]
        self.streams = list(streams)
        self._create_groups(added)
        if added:
            self.pending_first = True

    def _create_groups(self, streams: list[str]) -> None:
        for stream in streams:
            try:
                # From id 0, as the reference: entries written before the agent first ran count too.
                self.client.xgroup_create(stream, self.group, id="0", mkstream=True)
                log.info("created consumer group %s on %s", self.group, stream)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    def reread_pending(self) -> None:
        """The next read returns the pending entries again (after a failure left some unacknowledged)."""
        self.pending_first = True

    def read(self, count: int, block_ms: int) -> list[tuple[str, str, dict[str, str] | None]]:
        """Up to `count` entries per stream as (stream, entry id, fields); fields are None for a pending
        entry that was deleted (trimmed) meanwhile."""
        start = "0" if self.pending_first else ">"
        try:
            reply = self.client.xreadgroup(
                self.group,
                self.consumer,
                {stream: start for stream in self.streams},
                count=count,
                block=None if self.pending_first else block_ms,
            )
        except redis.ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            # The stream or the group vanished (FLUSHALL, a restart without persistence): start over.
            log.warning("consumer group %s is gone (%s); recreating it", self.group, e)
            self._create_groups(self.streams)
            return []
        entries = [(stream, entry_id, fields) for stream, items in reply or [] for entry_id, fields in items]
        if self.pending_first and not entries:
            self.pending_first = False
        return entries

    def ack(self, stream: str, entry_ids: list[str], pipe=None) -> None:
        if entry_ids:
            (pipe or self.client).xack(stream, self.group, *entry_ids)
