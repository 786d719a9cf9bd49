"""`make dev`'s monitoring (issue 14 point 1): scripts/dev-prometheus.sh writes a scrape config that
promtool accepts, and Debian's Prometheus started on it, as scripts/dev.sh starts it, scrapes the
module through redis_exporter (as the exporter ACL user) and the gateway, with the alert rules
loaded."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from pathlib import Path

from conftest import RELEASE, ROOT, built, free_port, http_get, tool, wait_until


def render(dirpath: Path, gateway: int, fetcher: int, exporter: int, prometheus: int) -> Path:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "dev-prometheus.sh"), "render", str(dirpath), str(gateway), str(fetcher), str(exporter), str(prometheus)],
        check=True,
    )
    return dirpath / "prometheus.yml"


def test_the_rendered_config_is_valid(tmp_path):
    config = render(tmp_path, 8080, 9187, 9121, 9090)
    out = subprocess.run([tool("promtool"), "check", "config", str(config)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 1 rule files found" in out.stdout


def test_bad_ports_are_refused(tmp_path):
    out = subprocess.run(["bash", str(ROOT / "scripts" / "dev-prometheus.sh"), "render", str(tmp_path), "80x", "1", "2", "3"], capture_output=True, text=True)
    assert out.returncode == 2 and "not a port: 80x" in out.stderr
    assert not (tmp_path / "prometheus.yml").exists()


def api(base: str, path: str, **params: str) -> dict:
    status, body = http_get(f"{base}{path}?{urllib.parse.urlencode(params)}")
    assert status == 200, body
    return json.loads(body)["data"]


def test_prometheus_scrapes_the_module_and_the_gateway(valkey, exporter_url, workload, processes, tmp_path):
    gateway_port = free_port()
    gateway = processes.start(
        "dev-gateway",
        [str(built(RELEASE / "agentic-gateway", "make build")), "--valkey", valkey.url, "--listen", f"127.0.0.1:{gateway_port}"],
    )
    wait_until(lambda: gateway.check_running() and http_get(f"http://127.0.0.1:{gateway_port}/healthz")[0] == 200, "the gateway")
    exporter_port = int(urllib.parse.urlparse(exporter_url).port)
    prometheus_port = free_port()
    config = render(tmp_path, gateway_port, free_port(), exporter_port, prometheus_port)
    prometheus = processes.start(
        "dev-prometheus",
        [
            tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
    )
    base = f"http://127.0.0.1:{prometheus_port}"
    # Prometheus answers 503 on its API until it has replayed its WAL and loaded the config.
    wait_until(lambda: prometheus.check_running() and http_get(f"{base}/-/ready")[0] == 200, "Prometheus to be ready", timeout=60)

    def targets_up() -> bool:
        prometheus.check_running()
        health = {t["labels"]["job"]: t["health"] for t in api(base, "/api/v1/targets")["activeTargets"]}
        return health.get("valkey") == "up" and health.get("gateway") == "up" and health.get("prometheus") == "up"

    wait_until(targets_up, "Prometheus to scrape the exporter, the gateway and itself", timeout=60)
    users = wait_until(
        lambda: api(base, "/api/v1/query", query='redis_script_values{key="user_keys"}')["result"], "the module's user_keys in Prometheus", timeout=60
    )
    assert float(users[0]["value"][1]) >= 3  # the workload's users
    rules = api(base, "/api/v1/rules")["groups"]
    assert any(r["type"] == "alerting" for g in rules for r in g["rules"])
