"""The module's topic catalog as the agents see it. Topics are data (AGENT.TOPIC.SET / DEL), not the
reference's hard-coded list of ten, so the slugs are read again every few seconds."""

from __future__ import annotations

import time

from .connection import Client
from .module import topic_slugs

REFRESH_INTERVAL_S = 5.0


class TopicCatalog:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._slugs: list[str] = []
        self._next_refresh = 0.0

    def slugs(self) -> list[str]:
        """The catalog's slugs, at most REFRESH_INTERVAL_S old."""
        now = time.monotonic()
        if now >= self._next_refresh:
            self._slugs = topic_slugs(self.client)
            self._next_refresh = now + REFRESH_INTERVAL_S
        return self._slugs
