"""Real valkey-server processes with libagentic.so, for tests against a real server: a standalone
server or a 3-primary cluster on free loopback ports, started once the module's model is loaded
and stopped by pid (terminate, then kill), also when a test fails.

Written for this repository's own suites (clients/python, agents-py-compat) and usable by an
application's tests as well: `valkey-server` must be on PATH, and the caller names the module and
its options with module_args(). Only missing() and skip_without_server() need pytest; wrap
`running()` in a fixture:

    @pytest.fixture(scope="session")
    def valkey_server(tmp_path_factory):
        args = module_args("/path/to/libagentic.so", "/path/to/model")
        with running(ValkeyServer(tmp_path_factory.mktemp("valkey"), args)) as server:
            yield server
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import redis
from redis.cluster import RedisCluster

SLOT_RANGES = [(0, 5460), (5461, 10922), (10923, 16383)]


def missing(reason: str) -> None:
    """For pytest: a prerequisite is missing. Skips the calling test, or fails it under CI=true,
    where a skipped suite would hide a broken setup."""
    import pytest  # only here: the servers themselves do not need pytest

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: make test should have provided it)")
    pytest.skip(reason)


def skip_without_server(module: str | Path, model_dir: str | Path) -> None:
    """For pytest: missing() unless valkey-server is on PATH and the module and the model exist
    (the hints name this repository's make targets)."""
    if shutil.which("valkey-server") is None:
        missing("valkey-server is not on PATH (make deps installs Valkey 8.0.1)")
    module, model_dir = Path(module), Path(model_dir)
    if not module.is_file():
        missing(f"{module} is missing: build it with `make build`")
    if not (model_dir / "model.onnx").is_file():
        missing(f"{model_dir} is missing: build it with `make tiny-model`")


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


def module_args(module: str | Path, model_dir: str | Path, *options: str) -> list[str]:
    """valkey-server's arguments loading the module with `model-dir` and further module options."""
    return ["--loadmodule", str(module), "model-dir", str(model_dir), *options]


def model_ready(client: redis.Redis) -> bool:
    """True once the server answers and its model is loaded (loading runs in the background)."""
    try:
        return client.execute_command("INFO", "agentic_classify").get("agentic_model_status") == "ready"
    except redis.ConnectionError:
        return False


def stop_process(process: subprocess.Popen) -> None:
    """Waits for a process already sent SIGTERM, killing it if it does not exit within 10 s."""
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


class _Stoppable(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=_Stoppable)


@contextmanager
def running(server: S) -> Iterator[S]:
    """Starts `server` (a ValkeyServer or ValkeyCluster) and stops it on exit, also after a failed start."""
    try:
        server.start()
        yield server
    finally:
        server.stop()


class ValkeyServer:
    """One valkey-server with the module, without RDB snapshots. `appendonly=True` (fsync always)
    keeps data across restart(), which starts it again on the same port and directory; `aclfile`
    is passed as --aclfile (so ACL SAVE persists). Subclasses add arguments with server_args()."""

    client_options: dict[str, Any] = {"decode_responses": True}

    def __init__(
        self,
        workdir: Path,
        module_args: Sequence[str],
        *,
        start_timeout: float = 30.0,
        appendonly: bool = False,
        aclfile: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.log = workdir / "valkey.log"
        self.module_args = list(module_args)
        self.start_timeout = start_timeout
        self.appendonly = appendonly
        self.aclfile = aclfile
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **{**self.client_options, **kwargs})

    def server_args(self) -> list[str]:
        """Arguments between --dir and the module's; called again for each attempt to start."""
        return ["--aclfile", str(self.aclfile)] if self.aclfile else []

    def start(self, port: int | None = None) -> None:
        """Starts on `port`, or on a free port, retrying with another one if it was taken meanwhile."""
        for _attempt in range(5):
            self.port = port or free_port()
            persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(
                    ["valkey-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
                     "--dir", str(self.workdir), *self.server_args(), *self.module_args],
                    stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            if self._ready():
                return
            self.stop()
            if port:  # the caller needs this port: another attempt would not get it back
                break
        raise RuntimeError(f"valkey-server did not start; see {self.log}:\n{self.log.read_text()[-2000:]}")

    def _ready(self) -> bool:
        client = self.client()
        try:
            deadline = time.monotonic() + self.start_timeout
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
        stop_process(self.process)


class ValkeyCluster:
    """Three primaries with the module, each in its own directory (node<i>/) on free loopback
    ports, joined with CLUSTER ADDSLOTSRANGE and MEET; started once cluster_state is ok and every
    node's model is loaded."""

    client_options: dict[str, Any] = {"decode_responses": True}

    def __init__(self, workdir: Path, module_args: Sequence[str], *, start_timeout: float = 30.0) -> None:
        self.workdir = workdir
        self.module_args = list(module_args)
        self.start_timeout = start_timeout
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, **self.client_options)

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.ports[0], **self.client_options)

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
                       "--save", "", "--appendonly", "no", "--dir", str(workdir), *self.module_args]  # fmt: skip
            with (workdir / "valkey.log").open("ab") as log:
                self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
            self.ports.append(port)
        nodes = [self.node(port) for port in self.ports]
        try:
            wait_until(lambda: all(self._answers(n) for n in nodes), timeout=self.start_timeout, message="the nodes")
            for node, (first, last) in zip(nodes, SLOT_RANGES, strict=True):
                node.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
            for port, bus_port in zip(ordered[2::2], ordered[3::2], strict=True):
                nodes[0].execute_command("CLUSTER MEET", "127.0.0.1", port, bus_port)
            wait_until(lambda: all(self._ready(n) for n in nodes), timeout=self.start_timeout, message="cluster_state:ok and the model")
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

    def kill(self, index: int) -> None:
        """Kills one node (SIGKILL, by its pid): a crashed primary."""
        self.processes[index].kill()
        self.processes[index].wait(10)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            stop_process(process)
