"""docker/: the compose file as Debian's docker-compose resolves it (no Docker engine here), the
Dockerfile's build stages against the Makefile, and the images' scripts run natively against real
servers."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import redis
import yaml
from buildfiles import parse_dockerfile, parse_makefile
from conftest import COMPONENT_PASSWORD, COMPOSE_FILE, EXPORTER_SCRIPT, ROOT, bind_mounts, compose_config, free_port, tool

DOCKER = ROOT / "docker"
STAGES = parse_dockerfile(DOCKER / "Dockerfile")

DEFAULT_SERVICES = {"valkey", "redis-exporter", "prometheus", "grafana", "fetcher", "gateway", "demo-users"}
PROFILE_SERVICES = {
    "agents": {"enrich", "fanout", "user-reader", "user-seeder", "stats-exporter"},
    "gpu": {"sidecar"},
}
# Services that run as several replicas with `--scale`: consumer groups, stateless gateways,
# independent producers, one sidecar per GPU.
SCALABLE = {"gateway", "fetcher", "enrich", "fanout", "user-reader", "sidecar"}


def services_with(compose: dict, profiles: set[str]) -> set[str]:
    """The services `up` starts with these profiles (docker-compose 1.29's `config` lists all)."""
    return {name for name, s in compose["services"].items() if not s.get("profiles") or set(s["profiles"]) & profiles}


def copied_to(stage: str, source: str) -> str:
    """Where a stage's COPY puts a file of the build context."""
    return next(dest for sources, dest, from_stage in STAGES[stage].copies if from_stage is None and source in sources)


def script_defaults(path) -> dict[str, str]:
    """${NAME:-default} of a shell script."""
    return dict(re.findall(r"\$\{(\w+):-([^}]*)\}", path.read_text()))


def run_script(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(DOCKER / script), *args], capture_output=True, text=True, env=env)


def test_services_by_profile(compose):
    assert services_with(compose, set()) == DEFAULT_SERVICES
    for profile, extra in PROFILE_SERVICES.items():
        assert services_with(compose, {profile}) == DEFAULT_SERVICES | extra


def test_agents_env_file_swaps_the_pipeline_for_the_agents(compose):
    env = dict(line.split("=", 1) for line in (DOCKER / "agents.env").read_text().splitlines() if line and not line.startswith("#"))
    assert env["COMPOSE_PROFILES"] == "agents"
    agents = compose_config("--env-file", str(DOCKER / "agents.env"))
    for config, pipeline, group in [(compose, "yes", "agentic"), (agents, "no", "cg_enrich")]:
        assert config["services"]["valkey"]["environment"]["AGENTIC_PIPELINE"] == pipeline
        assert f"--group={group}" in config["services"]["fetcher"]["command"]
    # The consumer groups the fetcher's backpressure watches: the module's pipeline and the enrich agent.
    assert 'GROUP: &str = "agentic"' in (ROOT / "module" / "src" / "pipeline.rs").read_text()
    assert 'GROUP = "cg_enrich"' in (ROOT / "agents-py-compat" / "agentic_agents" / "enrich.py").read_text()


def test_replicas_can_scale(compose):
    for name, service in compose["services"].items():
        assert "container_name" not in service, name
    for name in SCALABLE:
        for port in compose["services"][name].get("ports", []):
            assert re.fullmatch(r"(?:[\d.]+:)?\d+-\d+:\d+(?:/tcp)?", port), f"{name}: a fixed host port allows one replica: {port}"


def test_everything_that_uses_valkey_waits_for_a_healthy_one(compose):
    for name, service in compose["services"].items():
        if name != "valkey" and "valkey:6379" in json.dumps(service):
            assert service["depends_on"]["valkey"] == {"condition": "service_healthy"}, name


def test_valkey_image_runs_the_tested_scripts(compose):
    valkey = STAGES["valkey"]
    assert compose["services"]["valkey"]["build"]["target"] == "valkey"
    assert "healthcheck" not in compose["services"]["valkey"], "the image's module check applies"
    assert json.loads(valkey.instructions["ENTRYPOINT"]) == [copied_to("valkey", "docker/valkey-start.sh").rsplit("/", 1)[1]]
    health_command = json.loads(valkey.instructions["HEALTHCHECK"].split(" CMD ", 1)[1])
    assert health_command == [copied_to("valkey", "docker/valkey-healthcheck.sh").rsplit("/", 1)[1]]
    # The start script's default paths are where the image puts the module, the model and the ACL.
    defaults = script_defaults(DOCKER / "valkey-start.sh")
    destinations = {dest for _, dest, _ in valkey.copies}
    for name in ["AGENTIC_MODULE", "AGENTIC_MODEL_DIR", "AGENTIC_EXPORTER_ACL", "AGENTIC_USERS_ACL"]:
        assert defaults[name] in destinations, name


def test_component_users_are_created_from_the_shipped_acl_file(valkey, compose):
    """valkey-start.sh makes a user of ops/acl/users.acl for each AGENTIC_<USER>_PASSWORD set;
    compose gives every component its own user."""
    fetcher = redis.Redis(port=valkey.port, username="fetcher", password=COMPONENT_PASSWORD, decode_responses=True)
    assert fetcher.xlen("news_raw") >= 0  # its own stream: allowed
    with pytest.raises(redis.exceptions.NoPermissionError):
        fetcher.execute_command("AGENT.FEED", "user:{alice}")
    gateway = redis.Redis(port=valkey.port, username="gateway", password=COMPONENT_PASSWORD, decode_responses=True)
    assert isinstance(gateway.execute_command("AGENT.INTERESTS", "user:{alice}"), list)
    with pytest.raises(redis.exceptions.NoPermissionError):
        gateway.execute_command("AGENT.FANOUT", "sports", "doc:{x}", "{}")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=valkey.port, username="sidecar", password=COMPONENT_PASSWORD).ping()  # no password set: no user
    services = compose["services"]
    assert "fetcher:" in " ".join(services["fetcher"]["command"])
    assert services["gateway"]["environment"]["VALKEY_URL"].startswith("redis://gateway:")
    assert services["enrich"]["environment"]["VALKEY_URL"].startswith("redis://agents:")
    assert services["sidecar"]["environment"]["VALKEY_URL"].startswith("redis://sidecar:")
    for name in ["FETCHER", "GATEWAY", "AGENTS", "SIDECAR"]:
        assert services["valkey"]["environment"][f"AGENTIC_{name}_PASSWORD"]


def test_health_check_passes_only_with_the_module(valkey, plain_valkey):
    assert run_script("valkey-healthcheck.sh", str(valkey.port)).returncode == 0
    assert run_script("valkey-healthcheck.sh", str(plain_valkey.port)).returncode != 0
    assert run_script("valkey-healthcheck.sh", str(free_port())).returncode != 0


def test_demo_users_get_interests_once(valkey, compose):
    script = (DOCKER / "demo-users.sh").read_text()
    users = re.findall(r"^subscribe (\S+)", script, re.MULTILINE)
    assert ",".join(users) == compose["services"]["gateway"]["environment"]["AGENTIC_DEMO_USERS"]
    env = {**os.environ, "VALKEY_URL": valkey.url}
    assert run_script("demo-users.sh", env=env).returncode == 0
    assert valkey.client.execute_command("AGENT.INTERESTS", "user:{alice}") == ["business", "science", "technology"]
    valkey.client.execute_command("AGENT.UNSUBSCRIBE", "user:{alice}", "business")
    assert run_script("demo-users.sh", env=env).returncode == 0
    assert valkey.client.execute_command("AGENT.INTERESTS", "user:{alice}") == ["science", "technology"]


def test_bind_mounts_exist(compose):
    for name, service in compose["services"].items():
        for source in bind_mounts(service).values():
            assert (ROOT / source).exists(), f"{name}: {source}"


def test_build_targets_and_copied_files_exist(compose):
    for name, service in compose["services"].items():
        if "build" in service:
            build = service["build"]
            assert (build["context"], build["dockerfile"]) == (str(ROOT), "docker/Dockerfile"), name
            assert build["target"] in STAGES, name
    for stage_name, stage in STAGES.items():
        for sources, _, from_stage in stage.copies:
            if from_stage:
                assert from_stage in STAGES, f"{stage_name}: --from={from_stage}"
            else:
                for source in sources:
                    assert (ROOT / source).exists(), f"{stage_name}: COPY {source}"


def test_build_stages_run_the_makefile_commands():
    makefile = parse_makefile(ROOT / "Makefile")
    for target in ["build", "model", "ui"]:
        commands = makefile.commands(target)
        assert commands, f"make {target} has no build commands"
        assert STAGES[target].build_commands() == commands, f"stage {target} vs make {target}"


def test_prometheus_scrapes_every_metrics_port(compose):
    prometheus = yaml.safe_load((ROOT / "ops" / "prometheus" / "prometheus.yml").read_text())
    targets = set()
    for job in prometheus["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets |= {tuple(t.split(":")) for t in static["targets"]}
        for dns in job.get("dns_sd_configs", []):
            targets |= {(name, str(dns["port"])) for name in dns["names"]}
    targets.discard(("localhost", "9090"))
    exposed = {(name, port) for name, service in compose["services"].items() for port in service.get("expose", [])}
    assert targets == exposed


def test_exporter_service_runs_the_tested_exporter_and_script(compose):
    service = compose["services"]["redis-exporter"]
    env = service["environment"]
    # The variables conftest.start_exporter gives Debian's binary.
    assert set(env) == {"REDIS_ADDR", "REDIS_USER", "REDIS_PASSWORD", "REDIS_EXPORTER_SCRIPT"}
    assert bind_mounts(service)[env["REDIS_EXPORTER_SCRIPT"]] == str(EXPORTER_SCRIPT)
    assert env["REDIS_USER"] == "exporter"
    assert env["REDIS_PASSWORD"] == compose["services"]["valkey"]["environment"]["AGENTIC_EXPORTER_PASSWORD"]
    version = subprocess.run([tool("prometheus-redis-exporter"), "-version"], capture_output=True, text=True)
    tested = re.search(r"Exporter (\d+\.\d+\.\d+)", version.stdout + version.stderr).group(1)
    assert service["image"] == f"oliver006/redis_exporter:v{tested}"


def test_prometheus_image_is_the_tested_version(compose):
    version = subprocess.run([tool("promtool"), "--version"], capture_output=True, text=True).stdout
    tested = re.search(r"version (\d+\.\d+\.\d+)", version).group(1)
    assert compose["services"]["prometheus"]["image"] == f"prom/prometheus:v{tested}"
    mounts = bind_mounts(compose["services"]["prometheus"])
    for name in ["prometheus.yml", "alerts.yml"]:
        assert mounts[f"/etc/prometheus/{name}"] == str(ROOT / "ops" / "prometheus" / name)


def test_gpu_sidecar_reserves_an_nvidia_gpu_and_has_the_model(compose):
    sidecar = compose["services"]["sidecar"]
    assert sidecar["profiles"] == ["gpu"]
    devices = sidecar["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    # The sidecar must serve the module's model files: both images copy them from one stage.
    model_copies = {
        stage: next((sources[0], dest) for sources, dest, from_stage in STAGES[stage].copies if from_stage == "model")
        for stage in ["valkey", "sidecar"]
    }
    assert model_copies["valkey"][0] == model_copies["sidecar"][0]
    assert sidecar["environment"]["MODEL_DIR"] == model_copies["sidecar"][1]
    assert sidecar["environment"]["VALKEY_URL"] == "redis://sidecar:agentic-sidecar@valkey:6379"


def test_compose_file_is_valid_without_settings():
    out = subprocess.run([tool("docker-compose"), "-f", str(COMPOSE_FILE), "config", "--quiet"], capture_output=True, text=True)
    assert out.returncode == 0 and not out.stderr, out.stderr
