"""A real valkey-server with libagentic.so and the tiny test model, one per test session; each test
starts from an empty database and the module's default settings."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from agentic_agents.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE = REPO_ROOT / "target" / "release" / "libagentic.so"
TINY_MODEL = REPO_ROOT / "model" / "out" / "tiny"
START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ValkeyServer:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log = workdir / "valkey.log"
        self.port = 0
        self.tls_port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The agents' URL: they run as the `agents` user of ops/acl/users.acl (least privilege);
        `client()` is the tests' own unrestricted connection."""
        return f"redis://agents:pw-agents@127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        """The unrestricted default user's URL, for agents given operator settings to apply."""
        return f"redis://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        """The agents' URL over TLS, trusting the test CA (tls_files())."""
        return f"rediss://agents:pw-agents@127.0.0.1:{self.tls_port}?ssl_ca_certs={self.workdir / 'ca.crt'}"

    def tls_files(self) -> list[str]:
        """A test CA and a server certificate for 127.0.0.1 (scripts/test-tls-certs.sh); the server's TLS arguments."""
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "test-tls-certs.sh"), str(self.workdir)], check=True, capture_output=True)
        w = self.workdir
        return ["--tls-port", str(self.tls_port), "--tls-cert-file", str(w / "server.crt"), "--tls-key-file", str(w / "server.key"),
                "--tls-ca-cert-file", str(w / "ca.crt"), "--tls-auth-clients", "no"]  # fmt: skip

    def write_acl_file(self) -> Path:
        """ops/acl/users.acl with the password `pw-<user>` for each user."""
        path = self.workdir / "users.acl"
        path.write_text((REPO_ROOT / "ops" / "acl" / "users.acl").read_text().replace("CHANGE-ME-", "pw-"))
        return path

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, protocol=2)

    def start(self, port: int | None = None) -> None:
        """Starts on `port`, or on a free port, retrying with another one if it was taken meanwhile."""
        for _attempt in range(5):
            self.port = port or free_port()
            self.tls_port = free_port()
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(
                    [
                        "valkey-server",
                        "--port", str(self.port),
                        "--bind", "127.0.0.1",
                        "--save", "",
                        "--appendonly", "no",
                        "--dir", str(self.workdir),
                        "--aclfile", str(self.write_acl_file()),
                        *self.tls_files(),
                        "--loadmodule", str(MODULE),
                        "model-dir", str(TINY_MODEL),
                        # The encoder alone: tests compare an agent's classification with a later
                        # AGENT.CLASSIFY of the same text, which the cascade's load-dependent
                        # escalations would not guarantee.
                        "classify-tier", "model",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
            if self._ready():
                return
            self.stop()
        raise RuntimeError(f"valkey-server did not start; see {self.log}:\n{self.log.read_text()[-2000:]}")

    def _ready(self) -> bool:
        """True once the server answers and the model is loaded (loading runs in the background)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        client = self.client()
        try:
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    if client.execute_command("INFO", "agentic_classify").get("agentic_model_status") == "ready":
                        return True
                except redis.ConnectionError:
                    pass
                time.sleep(0.05)
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Stops the server this fixture started, by its pid."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def missing(reason: str) -> None:
    """A prerequisite is missing: skip locally, fail under CI (CI=true), where `make test` installs
    and builds everything, so a skipped suite would hide a broken setup."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: make test should have provided it)")
    pytest.skip(reason)


def skip_without_server() -> None:
    """Skips the calling test when valkey-server, the module or the tiny model is missing."""
    if shutil.which("valkey-server") is None:
        missing("valkey-server is not on PATH (make deps installs Valkey 8.0.1)")
    if not MODULE.is_file():
        missing(f"{MODULE} is missing: build it with `make build`")
    if not (TINY_MODEL / "model.onnx").is_file():
        missing(f"{TINY_MODEL} is missing: build it with `make tiny-model`")


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory):
    skip_without_server()
    server = ValkeyServer(tmp_path_factory.mktemp("valkey"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def valkey(valkey_server) -> redis.Redis:
    """A client of the session's server, emptied and with the module's settings back to defaults."""
    client = valkey_server.client()
    client.flushall()
    client.config_set("agentic.pipeline", "no")
    client.config_set("agentic.feed-len", 100)
    yield client
    client.close()


@pytest.fixture
def make_config(valkey_server):
    """Config of the agents for the session's server; keyword arguments override fields."""

    def make(**fields) -> Config:
        fields.setdefault("valkey_url", valkey_server.url)
        return Config(**fields)

    return make
