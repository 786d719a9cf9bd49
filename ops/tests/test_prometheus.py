"""ops/prometheus: the config and the alert rules, checked and unit-tested with Debian's promtool
(the version of the stack's Prometheus image), and the rules' metrics checked against the real
exporter scrape."""

from __future__ import annotations

import subprocess

import yaml
from conftest import ROOT, tool
from promql import missing_from

PROMETHEUS = ROOT / "ops" / "prometheus"


def promtool(*args: str) -> str:
    out = subprocess.run([tool("promtool"), *args], cwd=PROMETHEUS, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_config_is_valid():
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml")


def test_rules_are_valid():
    assert f"SUCCESS: {len(alert_rules())} rules found" in promtool("check", "rules", "alerts.yml")


def test_rule_unit_tests_pass():
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yml")


def test_every_alert_is_tested_firing_and_silent():
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in alert_rules():
        name = rule["alert"]
        assert any(c["alertname"] == name and c["exp_alerts"] for c in cases), f"{name}: no case where it fires"
        assert any(c["alertname"] == name and not c["exp_alerts"] for c in cases), f"{name}: no case where it stays silent"


def test_alerts_cover_the_issue():
    names = {rule["alert"] for rule in alert_rules()}
    assert {"AgenticPipelineBacklogGrowing", "AgenticStreamForcedDrops", "AgenticNoLiveClassifier", "ValkeyMemoryNearMaxmemory"} <= names


def test_alert_metrics_appear_in_the_scrape(scraped):
    missing = {rule["alert"]: missing_from(rule["expr"], scraped["names"], scraped["script_keys"]) for rule in alert_rules()}
    assert {alert: names for alert, names in missing.items() if names} == {}
