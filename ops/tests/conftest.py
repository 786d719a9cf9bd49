"""Real processes for ops/tests: valkey-server with the module and the tiny model, started by the
valkey image's entrypoint (docker/valkey-start.sh) with the exporter's ACL user; Debian's
redis_exporter with ops/prometheus/agentic.lua; the gateway and the fetcher from target/release.
Each runs on a free loopback port and is stopped by its PID at teardown, also when a test fails.
A missing tool or build output skips the tests that need it, naming what to install or build."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
import yaml

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "target" / "release"
MODULE = RELEASE / "libagentic.so"
TINY_MODEL = ROOT / "model" / "out" / "tiny"
EXPORTER_SCRIPT = ROOT / "ops" / "prometheus" / "agentic.lua"
EXPORTER_ACL = ROOT / "ops" / "prometheus" / "exporter.acl"
USERS_ACL = ROOT / "ops" / "acl" / "users.acl"
# The fetcher's and the gateway's users get this password in the module's server.
COMPONENT_PASSWORD = "component-test-password"
COMPOSE_FILE = ROOT / "docker" / "compose.yaml"

# Debian packages of the tools the tests run.
DEBIAN_PACKAGE = {
    "valkey-server": "valkey-server (bookworm-backports)",
    "valkey-cli": "valkey-tools (bookworm-backports)",
    "prometheus-redis-exporter": "prometheus-redis-exporter",
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "docker-compose": "docker-compose",
}

# Users and articles of the workload, so that counters and percentiles are not all zero.
WORKLOAD_USERS = {"ops-a": ["technology", "science"], "ops-b": ["sports", "business"], "ops-c": ["politics", "health", "climate"]}
WORKLOAD_ARTICLES = 30


def missing(reason: str) -> None:
    """A prerequisite is missing: skip locally, fail under CI (CI=true), where `make test` installs
    and builds everything, so a skipped suite would hide a broken setup."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: make test should have provided it)")
    pytest.skip(reason)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not found: apt-get install {DEBIAN_PACKAGE[name]}")
    return path


def built(path: Path, how: str) -> Path:
    if not path.exists():
        missing(f"{path.relative_to(ROOT)} is missing: run `{how}`")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (OSError, redis.exceptions.ConnectionError, urllib.error.URLError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Process:
    """A child process with its output in a log file; stop() ends it by its PID."""

    def __init__(self, name: str, argv: list[str], logdir: Path, env: dict[str, str] | None = None):
        self.name = name
        self.log = logdir / f"{name}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **(env or {})})

    def check_running(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log.read_text(errors='replace')}")
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Processes:
    """Every process a fixture started, stopped in reverse order."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.started: list[Process] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        p = Process(name, argv, self.logdir, env)
        self.started.append(p)
        return p

    def stop_all(self) -> None:
        for p in reversed(self.started):
            p.stop()


@pytest.fixture(scope="session")
def processes(tmp_path_factory):
    procs = Processes(tmp_path_factory.mktemp("logs"))
    yield procs
    procs.stop_all()


class Valkey:
    def __init__(self, port: int, process: Process, exporter_password: str | None):
        self.port = port
        self.url = f"redis://127.0.0.1:{port}"
        self.process = process
        self.exporter_password = exporter_password
        self.client = redis.Redis(port=port, decode_responses=True)

    def stats(self) -> dict[str, str]:
        flat = self.client.execute_command("AGENT.STATS")
        return dict(zip(flat[::2], flat[1::2], strict=True))


def start_valkey(processes: Processes, name: str, datadir: Path, *, module: bool, exporter_password: str | None = None) -> Valkey:
    """valkey-server on a free port: through docker/valkey-start.sh with the module, or plain."""
    port = free_port()
    server_args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(datadir)]
    if module:
        env = {
            "AGENTIC_MODULE": str(built(MODULE, "make build")),
            "AGENTIC_MODEL_DIR": str(built(TINY_MODEL, "make tiny-model")),
            "AGENTIC_EXPORTER_ACL": str(EXPORTER_ACL),
            "AGENTIC_EXPORTER_PASSWORD": exporter_password or "",
            "AGENTIC_USERS_ACL": str(USERS_ACL),
            # With the exporter's password, as compose runs it: the components' users too.
            "AGENTIC_FETCHER_PASSWORD": COMPONENT_PASSWORD if exporter_password else "",
            "AGENTIC_GATEWAY_PASSWORD": COMPONENT_PASSWORD if exporter_password else "",
        }
        process = processes.start(name, ["sh", str(ROOT / "docker" / "valkey-start.sh"), *server_args], env)
    else:
        process = processes.start(name, [tool("valkey-server"), *server_args])
    valkey = Valkey(port, process, exporter_password)
    wait_until(lambda: process.check_running() and valkey.client.ping(), f"{name} to answer PING")
    return valkey


@pytest.fixture(scope="session")
def valkey(processes, tmp_path_factory) -> Valkey:
    """The module's server, as the valkey container runs it, with the model loaded."""
    tool("valkey-server")
    server = start_valkey(processes, "valkey", tmp_path_factory.mktemp("valkey"), module=True, exporter_password=secrets.token_hex(12))
    wait_until(lambda: server.stats().get("model_ready") == "1", "the tiny model to load")
    return server


@pytest.fixture(scope="session")
def plain_valkey(processes, tmp_path_factory) -> Valkey:
    """A Valkey without the module: what the guardrails must catch."""
    return start_valkey(processes, "plain-valkey", tmp_path_factory.mktemp("plain"), module=False)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Scrape:
    """A Prometheus text exposition: samples as (name, labels, value)."""

    def __init__(self, text: str):
        self.text = text
        self.samples: list[tuple[str, dict[str, str], float]] = []
        for line in text.splitlines():
            m = _SAMPLE.match(line)
            if m and not line.startswith("#"):
                self.samples.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))

    @property
    def names(self) -> set[str]:
        return {name for name, _, _ in self.samples}

    def values(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(labels, value) for n, labels, value in self.samples if n == name]

    def script_values(self) -> dict[str, float]:
        """redis_script_values by key: what agentic.lua returned."""
        return {labels["key"]: value for labels, value in self.values("redis_script_values")}


def scrape(url: str) -> Scrape:
    status, text = http_get(url)
    assert status == 200, f"{url}: HTTP {status}"
    return Scrape(text)


@pytest.fixture(scope="session")
def workload(valkey, processes) -> Scrape:
    """Users subscribe and the real fetcher writes articles through the pipeline to them; returns
    the fetcher's /metrics once it is done."""
    for user, topics in WORKLOAD_USERS.items():
        valkey.client.execute_command("AGENT.SUBSCRIBE", f"user:{{{user}}}", *topics)
    metrics_port = free_port()
    fetcher = processes.start(
        "fetcher",
        [
            str(built(RELEASE / "agentic-fetcher", "make build")),
            "--valkey",
            valkey.url,
            "--metrics-addr",
            f"127.0.0.1:{metrics_port}",
            "--linger",
            "600",
            "generate",
            "--rate",
            "0",
            "--count",
            str(WORKLOAD_ARTICLES),
            "--seed",
            "7",
        ],
    )
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    wait_until(lambda: fetcher.check_running() and "fetcher_source_done 1" in http_get(url)[1], "the fetcher to write its articles")
    wait_until(lambda: int(valkey.stats()["pipeline_acked"]) >= WORKLOAD_ARTICLES, "the pipeline to deliver the articles")
    metrics = scrape(url)
    fetcher.stop()
    return metrics


def start_exporter(processes: Processes, name: str, valkey: Valkey, user: str | None, password: str | None) -> str:
    """Debian's redis_exporter with the stack's script, configured through the same environment
    variables as the redis-exporter service of docker/compose.yaml; returns its /metrics URL."""
    port = free_port()
    env = {"REDIS_ADDR": valkey.url, "REDIS_EXPORTER_SCRIPT": str(EXPORTER_SCRIPT)}
    if user:
        env |= {"REDIS_USER": user, "REDIS_PASSWORD": password}
    exporter = processes.start(name, [tool("prometheus-redis-exporter"), "-web.listen-address", f"127.0.0.1:{port}"], env)
    url = f"http://127.0.0.1:{port}/metrics"
    wait_until(lambda: exporter.check_running() and http_get(url)[0] == 200, f"{name} to serve /metrics")
    return url


@pytest.fixture(scope="session")
def exporter_url(valkey, processes) -> str:
    return start_exporter(processes, "redis-exporter", valkey, "exporter", valkey.exporter_password)


@pytest.fixture(scope="session")
def exporter_metrics(exporter_url, workload) -> Scrape:
    """The exporter's /metrics after the workload."""
    return scrape(exporter_url)


@pytest.fixture(scope="session")
def gateway_metrics(valkey, processes, workload) -> Scrape:
    port = free_port()
    gateway = processes.start(
        "gateway",
        [str(built(RELEASE / "agentic-gateway", "make build")), "--valkey", valkey.url, "--listen", f"127.0.0.1:{port}"],
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: gateway.check_running() and http_get(f"{base}/healthz")[0] == 200, "the gateway to be healthy")
    return scrape(f"{base}/metrics")


@pytest.fixture(scope="session")
def scraped(exporter_metrics, gateway_metrics, workload) -> dict[str, set[str]]:
    """What the stack's scrapes really contain: metric names, and the module's script keys."""
    return {
        "names": exporter_metrics.names | gateway_metrics.names | workload.names,
        "script_keys": set(exporter_metrics.script_values()),
    }


def compose_config(*options: str) -> dict:
    """`docker-compose -f docker/compose.yaml [options] config`, parsed."""
    out = subprocess.run([tool("docker-compose"), "-f", str(COMPOSE_FILE), *options, "config"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


@pytest.fixture(scope="session")
def compose() -> dict:
    return compose_config()


def bind_mounts(service: dict) -> dict[str, str]:
    """Container path -> host path of a compose service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("/"):
            mounts[target] = source
    return mounts
