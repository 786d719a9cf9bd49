"""Real valkey-server processes with libagentic.so and the tiny test model: one standalone server
per session (each test starts from an empty database), a 3-primary cluster per session, and
servers of their own for tests that restart one. Every server is stopped by its pid, also when a
test fails."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from agentic_client import testing
from agentic_client.testing import free_port, running, wait_until  # noqa: F401 - the tests import them from here

REPO_ROOT = Path(__file__).resolve().parents[3]
MODULE = REPO_ROOT / "target" / "release" / "libagentic.so"
TINY_MODEL = REPO_ROOT / "model" / "out" / "tiny"
START_TIMEOUT_S = 30.0


def module_args(*extra: str) -> list[str]:
    # The encoder alone (`classify-tier model`): the cascade's load-dependent escalations would let
    # two classifications of one text differ, and the tests compare them. Debug commands give
    # AGENT.DEBUG CLASSIFY-DELAY, to make a classification time out.
    return testing.module_args(MODULE, TINY_MODEL, "classify-tier", "model", "debug-commands", "yes", *extra)


def skip_without_server() -> None:
    """Skips the calling test when valkey-server, the module or the tiny model is missing (fails it under CI=true)."""
    testing.skip_without_server(MODULE, TINY_MODEL)


class ValkeyServer(testing.ValkeyServer):
    """A server with this suite's module options."""

    def __init__(self, workdir: Path, **options) -> None:
        options.setdefault("start_timeout", START_TIMEOUT_S)
        super().__init__(workdir, module_args(), **options)


class ValkeyCluster(testing.ValkeyCluster):
    """A cluster with this suite's module options and its pipeline (`pipeline yes` on every node)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, module_args("pipeline", "yes"), start_timeout=START_TIMEOUT_S)


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory) -> Iterator[ValkeyServer]:
    skip_without_server()
    with running(ValkeyServer(tmp_path_factory.mktemp("valkey"))) as server:
        yield server


@pytest.fixture
def valkey(valkey_server: ValkeyServer) -> Iterator[redis.Redis]:
    """The session's server emptied, with the module's defaults (pipeline off, no classify delay)."""
    client = valkey_server.client()
    client.flushall()
    client.config_set("agentic.pipeline", "no")
    client.config_set("agentic.feed-len", 100)
    client.execute_command("AGENT.DEBUG", "CLASSIFY-DELAY", 0)
    yield client
    client.close()


@pytest.fixture
def restartable_server(tmp_path) -> Iterator[ValkeyServer]:
    """A server of the test's own with an AOF, for tests that restart it."""
    skip_without_server()
    with running(ValkeyServer(tmp_path, appendonly=True)) as server:
        yield server


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory) -> Iterator[ValkeyCluster]:
    skip_without_server()
    with running(ValkeyCluster(tmp_path_factory.mktemp("cluster"))) as cluster:
        yield cluster


def in_thread(function: Callable[[], object]) -> tuple[threading.Thread, dict]:
    """Runs `function` in a thread; the dict gets its `result` or `error`."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = function()
        except BaseException as e:  # noqa: BLE001 - handed to the test, which asserts on it
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def blocked_clients(client: redis.Redis) -> int:
    return int(client.info("clients")["blocked_clients"])
