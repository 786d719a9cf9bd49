"""The Valkey client every agent uses: created from VALKEY_URL, waited for until it answers."""

from __future__ import annotations

import logging
import threading

import redis

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0
# Errors after which the same command can simply be sent again: redis-py reconnects by itself.
TRANSIENT_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


class Stopped(Exception):
    """The agent was asked to stop before Valkey answered."""


def info_fields(reply: str, **_options) -> dict[str, str]:
    """`INFO <section>` as plain strings. redis-py's own parser guesses types and would turn a
    value such as `cuda:0,cpu` into a list."""
    fields = {}
    for line in reply.splitlines():
        if line and not line.startswith("#") and ":" in line:
            name, value = line.split(":", 1)
            fields[name] = value
    return fields


def connect(url: str, stop: threading.Event, *, socket_timeout: float | None = None) -> redis.Redis:
    """A client for `url`, returned once the server answers PING (retried every second, as the
    reference's agents did). Raises Stopped if `stop` is set first."""
    # RESP2: the reply shapes the agents parse (redis-py 8 would speak RESP3 by default).
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=socket_timeout, protocol=2)
    client.set_response_callback("INFO", info_fields)
    logged = False
    while True:
        try:
            client.ping()
            log.info("connected to %s", url)
            return client
        except TRANSIENT_ERRORS as e:
            if not logged:
                log.warning("waiting for Valkey at %s: %s", url, e)
                logged = True
        if stop.wait(RETRY_DELAY_S):
            client.close()
            raise Stopped()
