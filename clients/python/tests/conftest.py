"""Real valkey-server processes with libagentic.so and the tiny test model: one standalone server
per session (each test starts from an empty database), a 3-primary cluster per session, and
servers of their own for tests that restart one. Every server is stopped by its pid, also when a
test fails."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

REPO_ROOT = Path(__file__).resolve().parents[3]
MODULE = REPO_ROOT / "target" / "release" / "libagentic.so"
TINY_MODEL = REPO_ROOT / "model" / "out" / "tiny"
START_TIMEOUT_S = 30.0
SLOT_RANGES = [(0, 5460), (5461, 10922), (10923, 16383)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float = 10.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def module_args(*extra: str) -> list[str]:
    # The encoder alone (`classify-tier model`): the cascade's load-dependent escalations would let
    # two classifications of one text differ, and the tests compare them. Debug commands give
    # AGENT.DEBUG CLASSIFY-DELAY, to make a classification time out.
    return ["--loadmodule", str(MODULE), "model-dir", str(TINY_MODEL), "classify-tier", "model", "debug-commands", "yes", *extra]


def missing(reason: str) -> None:
    """Skip locally, fail under CI (CI=true), where `make test` builds everything."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: make test should have provided it)")
    pytest.skip(reason)


def skip_without_server() -> None:
    if shutil.which("valkey-server") is None:
        missing("valkey-server is not on PATH (make deps installs Valkey 8.0.1)")
    if not MODULE.is_file():
        missing(f"{MODULE} is missing: build it with `make build`")
    if not (TINY_MODEL / "model.onnx").is_file():
        missing(f"{TINY_MODEL} is missing: build it with `make tiny-model`")


def model_ready(client: redis.Redis) -> bool:
    try:
        return client.execute_command("INFO", "agentic_classify").get("agentic_model_status") == "ready"
    except redis.ConnectionError:
        return False


class ValkeyServer:
    """One valkey-server with the module. `appendonly=True` (fsync always) keeps feeds across
    restart(), which starts it again on the same port and directory."""

    def __init__(self, workdir: Path, *, appendonly: bool = False) -> None:
        self.workdir = workdir
        self.appendonly = appendonly
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def client(self, **kwargs) -> redis.Redis:
        kwargs.setdefault("decode_responses", True)
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def start(self, port: int | None = None) -> None:
        for _attempt in range(5):
            self.port = port or free_port()
            persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
            with (self.workdir / "valkey.log").open("ab") as log:
                self.process = subprocess.Popen(
                    ["valkey-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
                     "--dir", str(self.workdir), *module_args()],
                    stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            if self._ready():
                return
            self.stop()
            if port:  # the caller needs this port: another attempt would not get it back
                break
        raise RuntimeError(f"valkey-server did not start:\n{(self.workdir / 'valkey.log').read_text()[-2000:]}")

    def _ready(self) -> bool:
        client = self.client()
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline and self.process.poll() is None:
                if model_ready(client):
                    return True
                time.sleep(0.05)
            return False
        finally:
            client.close()

    def restart(self) -> None:
        self.stop()
        self.start(self.port)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


class ValkeyCluster:
    """Three primaries with the module and its pipeline (`pipeline yes` on every node), on free
    loopback ports, joined with CLUSTER ADDSLOTSRANGE and MEET."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True)

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.ports[0], decode_responses=True)

    def start(self) -> None:
        ports: set[int] = set()
        while len(ports) < 6:  # a client port and a bus port per node, all different
            ports.add(free_port())
        ordered = sorted(ports)
        for index, (port, bus_port) in enumerate(zip(ordered[::2], ordered[1::2], strict=True)):
            workdir = self.workdir / f"node{index}"
            workdir.mkdir()
            command = ["valkey-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                       "--cluster-port", str(bus_port), "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                       "--save", "", "--appendonly", "no", "--dir", str(workdir), *module_args("pipeline", "yes")]  # fmt: skip
            with (workdir / "valkey.log").open("ab") as log:
                self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
            self.ports.append(port)
        nodes = [self.node(port) for port in self.ports]
        try:
            wait_until(lambda: all(self._answers(n) for n in nodes), timeout=START_TIMEOUT_S, message="the nodes")
            for node, (first, last) in zip(nodes, SLOT_RANGES, strict=True):
                node.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
            for port, bus_port in zip(ordered[2::2], ordered[3::2], strict=True):
                nodes[0].execute_command("CLUSTER MEET", "127.0.0.1", port, bus_port)
            wait_until(lambda: all(self._ready(n) for n in nodes), timeout=START_TIMEOUT_S, message="cluster_state:ok and the model")
        except AssertionError:
            logs = "\n".join((self.workdir / f"node{i}" / "valkey.log").read_text()[-1000:] for i in range(len(self.ports)))
            raise RuntimeError(f"the cluster did not form:\n{logs}") from None
        finally:
            for node in nodes:
                node.close()

    def _answers(self, node: redis.Redis) -> bool:
        if any(process.poll() is not None for process in self.processes):
            raise AssertionError("a valkey-server exited")
        try:
            return bool(node.ping())
        except redis.ConnectionError:
            return False

    @staticmethod
    def _ready(node: redis.Redis) -> bool:
        state = node.execute_command("CLUSTER INFO").get("cluster_state")
        return state == "ok" and model_ready(node)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory) -> Iterator[ValkeyServer]:
    skip_without_server()
    server = ValkeyServer(tmp_path_factory.mktemp("valkey"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


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
    server = ValkeyServer(tmp_path, appendonly=True)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory) -> Iterator[ValkeyCluster]:
    skip_without_server()
    cluster = ValkeyCluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


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
