"""ops/grafana: the committed files are exactly what generate.py writes, every panel query parses
and names metrics that the real exporter, gateway and fetcher scrapes contain, and the
provisioning agrees with docker/compose.yaml."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml
from conftest import ROOT, bind_mounts, tool
from promql import missing_from

GRAFANA = ROOT / "ops" / "grafana"
GENERATED_DIRS = ["dashboards", "provisioning"]


def files_under(base) -> dict[str, bytes]:
    return {str(p.relative_to(base)): p.read_bytes() for d in GENERATED_DIRS for p in sorted((base / d).rglob("*")) if p.is_file()}


def dashboard() -> dict:
    return json.loads((GRAFANA / "dashboards" / "agentic.json").read_text())


def queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every query."""
    return [(panel["title"], t["expr"]) for panel in dashboard()["panels"] for t in panel.get("targets", [])]


def test_committed_files_are_the_generated_ones(tmp_path):
    subprocess.run([sys.executable, str(GRAFANA / "generate.py"), "--out", str(tmp_path)], check=True, capture_output=True)
    generated, committed = files_under(tmp_path), files_under(GRAFANA)
    differing = sorted(path for path in generated.keys() | committed.keys() if generated.get(path) != committed.get(path))
    assert differing == [], "run `python3 ops/grafana/generate.py` and commit its output"


def test_panels_cover_the_issue():
    titles = " | ".join(panel["title"] for panel in dashboard()["panels"])
    for subject in [
        "Ingest",
        "Classify throughput",
        "Delivery throughput",
        "Pipeline backlog",
        "Pipeline lag",
        "Classify latency",
        "Fan-out latency",
        "WebSockets",
        "Entries sent",
        "Resyncs",
        "Ingest to socket latency",
        "Classifiers live",
        "Memory vs maxmemory",
        "Forced drops",
    ]:
        assert subject in titles


def test_every_query_parses(tmp_path):
    # Grafana's interval variable is not PromQL; promtool parses the queries as recording rules.
    rules = {
        "groups": [
            {
                "name": "panels",
                "rules": [
                    {"record": f"panel_query_{i}", "expr": expr.replace("$__rate_interval", "1m")} for i, (_, expr) in enumerate(queries())
                ],
            }
        ]
    }
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump(rules))
    out = subprocess.run([tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_query_names_scraped_metrics(scraped):
    missing = {}
    for title, expr in queries():
        names = missing_from(expr, scraped["names"], scraped["script_keys"])
        if names:
            missing.setdefault(title, []).extend(names)
    assert missing == {}


def test_provisioning_matches_the_compose_stack(compose):
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())["datasources"][0]
    # Prometheus' own address, as its self-scrape job names it.
    prometheus = yaml.safe_load((ROOT / "ops" / "prometheus" / "prometheus.yml").read_text())
    self_target = next(job for job in prometheus["scrape_configs"] if job["job_name"] == "prometheus")["static_configs"][0]["targets"][0]
    assert datasource["url"] == "http://prometheus:" + self_target.split(":")[1]
    assert "prometheus" in compose["services"]
    assert {panel.get("datasource", {}).get("uid") for panel in dashboard()["panels"] if panel["type"] != "row"} == {datasource["uid"]}

    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "agentic.yaml").read_text())["providers"][0]
    mounts = bind_mounts(compose["services"]["grafana"])
    assert mounts[provider["options"]["path"]] == str(GRAFANA / "dashboards")
    for kind in ["datasources", "dashboards"]:
        assert mounts[f"/etc/grafana/provisioning/{kind}"] == str(GRAFANA / "provisioning" / kind)
