"""A real valkey-server with libagentic.so and the tiny test model, one per test session; each test
starts from an empty database and the module's default settings."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis
from agentic_client import testing
from agentic_client.testing import free_port, missing, running  # noqa: F401 - the tests import free_port and missing from here

from agentic_agents.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE = REPO_ROOT / "target" / "release" / "libagentic.so"
TINY_MODEL = REPO_ROOT / "model" / "out" / "tiny"
START_TIMEOUT_S = 20.0


class ValkeyServer(testing.ValkeyServer):
    """With the ACL users of ops/acl/users.acl and TLS on a second port. The encoder alone
    (`classify-tier model`): tests compare an agent's classification with a later AGENT.CLASSIFY
    of the same text, which the cascade's load-dependent escalations would not guarantee."""

    client_options = {"decode_responses": True, "protocol": 2}

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, testing.module_args(MODULE, TINY_MODEL, "classify-tier", "model"), start_timeout=START_TIMEOUT_S)
        self.tls_port = 0

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
        """The agents' URL over TLS, trusting the test CA and presenting the test client certificate (tls_files())."""
        w = self.workdir
        return (f"rediss://agents:pw-agents@127.0.0.1:{self.tls_port}"
                f"?ssl_ca_certs={w / 'ca.crt'}&ssl_certfile={w / 'client.crt'}&ssl_keyfile={w / 'client.key'}")  # fmt: skip

    def server_args(self) -> list[str]:
        self.tls_port = free_port()
        return ["--aclfile", str(self.write_acl_file()), *self.tls_files()]

    def tls_files(self) -> list[str]:
        """A test CA, a server certificate for 127.0.0.1 and a client certificate (scripts/test-tls-certs.sh); the
        server's TLS arguments, asking clients for a certificate as Valkey does by default."""
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "test-tls-certs.sh"), str(self.workdir)], check=True, capture_output=True)
        w = self.workdir
        return ["--tls-port", str(self.tls_port), "--tls-cert-file", str(w / "server.crt"), "--tls-key-file", str(w / "server.key"),
                "--tls-ca-cert-file", str(w / "ca.crt"), "--tls-auth-clients", "yes"]  # fmt: skip

    def write_acl_file(self) -> Path:
        """ops/acl/users.acl with the password `pw-<user>` for each user."""
        path = self.workdir / "users.acl"
        path.write_text((REPO_ROOT / "ops" / "acl" / "users.acl").read_text().replace("CHANGE-ME-", "pw-"))
        return path


def skip_without_server() -> None:
    """Skips the calling test when valkey-server, the module or the tiny model is missing (fails it under CI=true)."""
    testing.skip_without_server(MODULE, TINY_MODEL)


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory):
    skip_without_server()
    with running(ValkeyServer(tmp_path_factory.mktemp("valkey"))) as server:
        yield server


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
