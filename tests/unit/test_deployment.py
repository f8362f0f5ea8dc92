"""The Docker stack, validated without a Docker engine: compose, Dockerfile, nginx, Grafana."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stockpred.settings import load_settings, read_env_file
from tests.support import BIN, ROOT
from tests.unit.test_monitoring_config import exported_metric_names

COMPOSE = yaml.safe_load((ROOT / "docker-compose-persistent.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = {
    "web",
    "worker-inference",
    "worker-training",
    "worker-maintenance",
    "beat",
    "flower",
    "metrics",
}


def mounts(service: str) -> list[tuple[str, str, str]]:
    out = []
    for volume in SERVICES[service].get("volumes", []):
        parts = volume.split(":")
        out.append((parts[0], parts[1], parts[2] if len(parts) > 2 else "rw"))
    return out


SENTINEL_PROFILE = {"redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"}


def test_the_stack_has_every_service() -> None:
    base = OURS | {"redis", "prometheus", "grafana", "frontend"}
    assert set(SERVICES) == base | SENTINEL_PROFILE
    # Only the sentinel profile's services wait for `--profile sentinel` (or its env file).
    assert {name for name, spec in SERVICES.items() if spec.get("profiles")} == SENTINEL_PROFILE
    assert all(SERVICES[name]["profiles"] == ["sentinel"] for name in SENTINEL_PROFILE)


def test_the_sentinel_env_file_starts_the_profile_and_points_every_service_at_the_sentinels() -> (
    None
):
    values = read_env_file(ROOT / "docker" / "sentinel.env")
    assert values["COMPOSE_PROFILES"] == "sentinel"
    url = values["STOCKPRED_REDIS_URL"]
    target = load_settings({"REDIS_URL": url}).redis_sentinel
    assert target is not None
    assert {host for host, _ in target.nodes} == {n for n in SENTINEL_PROFILE if "sentinel" in n}
    assert {port for _, port in target.nodes} == {26379}
    for service in OURS:
        assert SERVICES[service]["environment"]["REDIS_URL"] == (
            "${STOCKPRED_REDIS_URL:-redis://redis:6379/0}"
        ), service
    for name in ("sentinel-1", "sentinel-2", "sentinel-3"):
        command = SERVICES[name]["command"]
        assert command[:2] == ["sh", "-c"] and command[3:] == [name], name  # its own folder
        assert command[2] == SERVICES["sentinel-1"]["command"][2]
        assert "sentinel monitor $$master redis 6379 2" in command[2]
    replica = SERVICES["redis-replica"]["command"]
    assert replica[2] == SERVICES["redis"]["command"][2]  # the same node script and ACL
    assert replica[3:] == ["redis-replica", "--replicaof", "redis", "6379"]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_state_lives_only_under_persistent_data(service: str) -> None:
    assert "volumes" not in COMPOSE, "no named volumes: state is bind-mounted"
    for source, _, mode in mounts(service):
        if source.startswith("./persistent_data"):
            continue
        assert source.startswith("./docker/") and mode == "ro", (service, source, mode)


@pytest.mark.parametrize(
    ("service", "mount"),
    [
        ("web", "./persistent_data:/app/persistent_data"),
        ("web", "./persistent_data/logs:/app/logs"),
        ("web", "./persistent_data/config:/app/config"),
        ("redis", "./persistent_data/redis:/data"),
        ("redis", "./persistent_data/config/redis.conf:/usr/local/etc/redis/redis.conf:ro"),
        ("prometheus", "./persistent_data/prometheus:/prometheus"),
        ("prometheus", "./persistent_data/logs/prometheus:/var/log/prometheus"),
        ("grafana", "./persistent_data/grafana:/var/lib/grafana"),
        ("grafana", "./persistent_data/logs/grafana:/var/log/grafana"),
        ("frontend", "./persistent_data/frontend/logs:/var/log/nginx"),
        ("frontend", "./persistent_data/frontend/cache:/var/cache/nginx"),
    ],
)
def test_every_mount_the_v3_3_1_notes_list_is_there(service: str, mount: str) -> None:
    assert mount in SERVICES[service]["volumes"]


@pytest.mark.parametrize(
    ("container", "path"),
    [
        ("stock-prediction", "/app/persistent_data"),
        ("redis", "/data"),
        ("prometheus", "/prometheus"),
        ("grafana", "/var/lib/grafana"),
    ],
)
def test_the_v3_3_1_verification_commands_name_real_containers(container: str, path: str) -> None:
    """`docker exec <container> ls -la <path>` from the v3.3.1 notes reaches the mounted data."""
    named = {spec.get("container_name"): name for name, spec in SERVICES.items()}
    assert container in named, f"no service has container_name {container!r}"
    assert any(target == path for _, target, _ in mounts(named[container]))


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_restart_policy_healthcheck_and_non_root(service: str) -> None:
    spec = SERVICES[service]
    assert spec["restart"] == "unless-stopped"
    assert spec["healthcheck"]["test"]
    assert spec["user"] == "1001:1001"
    for dependency in (spec.get("depends_on") or {}).values():
        assert dependency["condition"] in {"service_healthy", "service_started"}


def test_only_the_api_grafana_and_frontend_publish_ports_and_flower_does_not() -> None:
    published = {name: spec["ports"] for name, spec in SERVICES.items() if "ports" in spec}
    assert set(published) == {"web", "grafana", "frontend"}
    assert all(p.startswith("127.0.0.1:") for p in published["web"] + published["grafana"])


def test_grafana_password_comes_from_the_environment() -> None:
    env = SERVICES["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert "admin/admin" not in (ROOT / "docker-compose-persistent.yml").read_text()


def local_check(command: list[str]) -> list[str]:
    """The service's command run locally in its check or help mode."""
    program = command[0]
    if program == "gunicorn":
        return [str(BIN / "gunicorn"), *command[1:], "--check-config"]
    return [str(BIN / program), *command[1:], "--help"]


@pytest.mark.parametrize("service", sorted(OURS))
def test_every_service_command_is_a_real_entry_point(
    service: str, data_env: dict[str, str]
) -> None:
    command = SERVICES[service]["command"]
    assert command[0] in {"gunicorn", "celery", "stockpred"}
    env = {**data_env, "FLOWER_BASIC_AUTH": "u:p"}
    out = subprocess.run(
        local_check(command),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, (service, out.stdout[-1500:], out.stderr[-1500:])


def dockerfile_stages() -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = ""
    for line in (ROOT / "docker" / "Dockerfile").read_text().splitlines():
        match = re.match(r"FROM \S+ AS (\w+)", line)
        if match:
            current = match.group(1)
            stages[current] = []
        elif current:
            stages[current].append(line)
    return stages


def test_the_dockerfile_builds_a_web_image_without_tensorflow_and_a_worker_image_with_it() -> None:
    stages = dockerfile_stages()
    assert {"base", "build", "web", "worker"} <= set(stages)
    web, worker = "\n".join(stages["web"]), "\n".join(stages["worker"])
    assert "install --no-index --find-links /wheels stockpred " in web and "[ml]" not in web
    assert "'stockpred[ml]'" in worker
    assert "postgresql-client" in worker  # the maintenance worker's pg_dump for the ledger
    for text in (web, worker):
        assert "USER 1001:1001" in text and "HEALTHCHECK" in text
    assert "useradd --uid 1001 --gid appgroup" in "\n".join(stages["base"])
    for service in OURS:
        target = SERVICES[service]["build"]["target"]
        assert target == ("web" if service == "web" else "worker")


def test_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if nginx is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing: `make install` installs nginx-light")
        pytest.skip("nginx is not installed")
    text = (ROOT / "docker" / "nginx" / "nginx.conf").read_text()
    (tmp_path / "logs").mkdir()
    (tmp_path / "cache").mkdir()
    text = (
        text.replace("web:8080", "127.0.0.1:8080")
        .replace("/var/log/nginx", str(tmp_path / "logs"))
        .replace("/var/cache/nginx", str(tmp_path / "cache"))
        .replace("/tmp/nginx.pid", str(tmp_path / "nginx.pid"))
    )
    (tmp_path / "nginx.conf").write_text(text)
    out = subprocess.run(
        [
            nginx,
            "-t",
            "-c",
            str(tmp_path / "nginx.conf"),
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "logs" / "error.log"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "test is successful" in out.stderr


def dashboard() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        (ROOT / "docker" / "grafana" / "dashboards" / "stockpred.json").read_text()
    )
    return found


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    source = yaml.safe_load(
        (ROOT / "docker/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load(
        (ROOT / "docker/grafana/provisioning/dashboards/stockpred.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    assert (
        "./docker/grafana/dashboards:/etc/grafana/dashboards:ro" in SERVICES["grafana"]["volumes"]
    )


def test_every_dashboard_panel_queries_exported_metrics() -> None:
    known = exported_metric_names()
    titles = [p["title"] for p in dashboard()["panels"]]
    for topic in ("API", "Prediction", "Queue", "Training", "Storage", "Backup"):
        assert any(topic.lower() in t.lower() for t in titles), topic
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            for name in re.findall(
                r"\b((?:stockpred|flower|prediction|predictions|api|cache)_[a-z_]+)", target["expr"]
            ):
                base = re.sub(r"_(bucket|count|sum|total)$", "", name)
                assert name in known or base in known, (panel["title"], name)
