"""What every agent's process shares: configuration errors, signals, the /metrics endpoint, and a
main loop that survives Valkey restarts."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import NoReturn

from prometheus_client import REGISTRY, start_http_server

from .config import Config, ConfigError
from .connection import RETRY_DELAY_S, TRANSIENT_ERRORS, Client, Stopped, is_cluster

log = logging.getLogger(__name__)

# Valkey round trips take tens of microseconds to seconds; prometheus_client's default buckets
# start at 5 ms.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# An agent: runs until `stop` is set (or `max_items` items are done, or its source ends), returns
# how many items it handled.
Agent = Callable[..., int]


class FatalError(Exception):
    """A condition retrying cannot fix (a missing file, a refused configuration): the process exits 1."""


# Why enrich and fanout do not run on a cluster.
PIPELINE_ON_CLUSTER = (
    "VALKEY_URL names a node of a Valkey Cluster: on a cluster the module's own pipeline (`pipeline yes` "
    "on every node) classifies news_raw and delivers each article to its subscribers on all shards; "
    "the enrich and fanout agents do not apply there (AGENT.FANOUT reaches only the subscribers of the "
    "primary it is sent to). Start the nodes with `pipeline yes` and run replay, user_seeder, user_reader "
    "and stats_exporter without enrich and fanout"
)


def refuse_on_cluster(client: Client) -> None:
    """For enrich and fanout, whose work the module's pipeline does across shards on a cluster: a
    ConfigError (exit 2) rather than an agent that would deliver to one shard's users only."""
    if is_cluster(client):
        client.close()
        raise ConfigError(PIPELINE_ON_CLUSTER)


def run_loop(stop: threading.Event, step: Callable[[int | None], int | None], max_items: int | None = None) -> int:
    """Calls `step(remaining)` until `stop` is set, `max_items` items are done or `step` returns None
    (its source is exhausted). `step` returns how many items it handled. A lost connection is logged
    and the step retried a second later; redis-py reconnects on the next command."""
    done = 0
    while not stop.is_set() and (max_items is None or done < max_items):
        try:
            handled = step(None if max_items is None else max_items - done)
        except TRANSIENT_ERRORS as e:
            log.warning("Valkey unavailable (%s); retrying in %.0f s", e, RETRY_DELAY_S)
            stop.wait(RETRY_DELAY_S)
            continue
        if handled is None:
            break
        done += handled
    return done


def _stop_on_signals(stop: threading.Event) -> None:
    def handle(signum, _frame):
        log.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def main_for(name: str, default_metrics_port: int, agent: Agent) -> NoReturn:
    """The console script of an agent: reads the environment, serves /metrics on METRICS_PORT (or
    the agent's reference port), runs the agent until SIGTERM/SIGINT. Exit status 0 when stopped or
    done, 1 on a fatal error, 2 on a configuration error (in the environment, or found by the agent
    once connected)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        config = Config.from_env()
    except ConfigError as e:
        print(f"{name}: invalid configuration:\n{e}", file=sys.stderr)
        sys.exit(2)
    stop = threading.Event()
    _stop_on_signals(stop)
    port = config.metrics_port or default_metrics_port
    try:
        server, _thread = start_http_server(port)
    except OSError as e:
        print(f"{name}: cannot serve metrics on port {port}: {e}", file=sys.stderr)
        sys.exit(1)
    log.info("%s: metrics on http://0.0.0.0:%d/metrics", name, port)
    status = 0
    try:
        handled = agent(config, stop, registry=REGISTRY)
        log.info("%s: stopped after %d item(s)", name, handled)
    except Stopped:
        log.info("%s: stopped before Valkey answered", name)
    except FatalError as e:
        log.error("%s: %s", name, e)
        status = 1
    except ConfigError as e:
        # Found once connected (e.g. enrich on a cluster): a configuration error all the same.
        print(f"{name}: {e}", file=sys.stderr)
        status = 2
    finally:
        server.shutdown()
    sys.exit(status)
