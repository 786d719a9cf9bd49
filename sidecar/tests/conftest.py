"""Real processes only: a valkey-server with libagentic.so and the tiny test model per test, and
the sidecar as a subprocess; both stopped by PID when the test ends, also when it fails."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import redis

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE = REPO_ROOT / "target" / "release" / "libagentic.so"
TINY_MODEL = REPO_ROOT / "model" / "out" / "tiny"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Server:
    def __init__(self, args: list[str]):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="sidecar-test-")
        self.log = open(os.path.join(self.dir, "valkey.log"), "wb")
        # The sidecar runs as the `sidecar` user of ops/acl/users.acl (least privilege); the
        # tests' own client() is the unrestricted default user.
        self.tls_port = free_port()
        tls = self._tls_files()
        acl = os.path.join(self.dir, "users.acl")
        with open(acl, "w") as f:
            f.write((REPO_ROOT / "ops" / "acl" / "users.acl").read_text().replace("CHANGE-ME-", "pw-"))
        self.proc = subprocess.Popen(
            ["valkey-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir,
             "--aclfile", acl, *tls,
             # classify-tier model: the suite compares the sidecar's answers with the CPU encoder's.
             "--loadmodule", str(MODULE), "model-dir", str(TINY_MODEL), "classify-tier", "model", *args],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.url = f"redis://sidecar:pw-sidecar@127.0.0.1:{self.port}"
        c = self.client()

        def ready():
            try:
                return c.execute_command("INFO", "agentic_classify").get("agentic_model_status") == "ready"
            except redis.ConnectionError:
                return False

        wait_for(ready, what="valkey-server with the model loaded")

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, protocol=2)

    @property
    def tls_url(self) -> str:
        """The sidecar's URL over TLS, trusting the test CA and presenting the test client certificate."""
        d = self.dir
        return (f"rediss://sidecar:pw-sidecar@127.0.0.1:{self.tls_port}?ssl_ca_certs={os.path.join(d, 'ca.crt')}"
                f"&ssl_certfile={os.path.join(d, 'client.crt')}&ssl_keyfile={os.path.join(d, 'client.key')}")  # fmt: skip

    def _tls_files(self) -> list[str]:
        """A test CA, a server certificate for 127.0.0.1 and a client certificate (scripts/test-tls-certs.sh); the
        server's TLS arguments, asking clients for a certificate as Valkey does by default."""
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "test-tls-certs.sh"), str(self.dir)], check=True, capture_output=True)
        d = self.dir
        return ["--tls-port", str(self.tls_port), "--tls-cert-file", os.path.join(d, "server.crt"), "--tls-key-file", os.path.join(d, "server.key"),
                "--tls-ca-cert-file", os.path.join(d, "ca.crt"), "--tls-auth-clients", "yes"]  # fmt: skip

    def stat(self, name: str) -> float:
        flat = self.client().execute_command("AGENT.STATS")
        return float(dict(zip(flat[::2], flat[1::2]))[name])

    def info(self, field: str) -> str:
        return str(self.client().execute_command("INFO", "agentic_classify").get(f"agentic_{field}", ""))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()


class SidecarProcess:
    def __init__(self, server: Server, **env):
        self.env = {**os.environ, "VALKEY_URL": server.url, "MODEL_DIR": str(TINY_MODEL), "ENRICH_USE_CUDA": "0", "METRICS_PORT": "0",
                    "SIDECAR_ID": env.pop("SIDECAR_ID", f"test-{os.getpid()}"), "SIDECAR_BLOCK_MS": "200"}  # fmt: skip
        self.env.update({k: str(v) for k, v in env.items()})
        self.out = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "agentic_sidecar"], env=self.env, stdout=self.out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        self.out.seek(0)
        return self.out.read().decode("utf-8", "replace")

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def missing(reason: str) -> None:
    """A prerequisite is missing: skip locally, fail under CI (CI=true), where `make test` installs
    and builds everything, so a skipped suite would hide a broken setup."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: make test should have provided it)")
    pytest.skip(reason)


@pytest.fixture
def start_server():
    if not MODULE.is_file() or not (TINY_MODEL / "model.onnx").is_file():
        missing(f"needs {MODULE} (make build) and {TINY_MODEL} (make tiny-model)")
    servers = []

    def start(*args: str) -> Server:
        s = Server(list(args))
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def start_sidecar():
    sidecars = []

    def start(server: Server, **env) -> SidecarProcess:
        p = SidecarProcess(server, **env)
        sidecars.append(p)
        return p

    yield start
    for p in sidecars:
        p.kill()
