"""The compose stack's Redis asks for the password from persistent.env; nginx stays on loopback."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from stockpred.ops.redis_server import (
    COMMAND_RULES,
    REPLICA_USER,
    REPLICA_USER_RULES,
    SENTINEL_USER,
    SENTINEL_USER_RULES,
)
from tests.support import ROOT, free_port, stop_group, wait_for

COMPOSE_TEXT = (ROOT / "docker-compose-persistent.yml").read_text()
SERVICES = yaml.safe_load(COMPOSE_TEXT)["services"]
REDIS = SERVICES["redis"]
APPS = (
    "web",
    "worker-inference",
    "worker-training",
    "worker-maintenance",
    "beat",
    "flower",
    "metrics",
)


def redis_script() -> str:
    """The redis service's shell script as the container runs it (compose turns $$ into $)."""
    command = REDIS["command"]
    assert command[:2] == ["sh", "-c"], command
    return str(command[2]).replace("$$", "$")


def test_redis_never_runs_unprotected_on_all_interfaces() -> None:
    command = " ".join(map(str, REDIS["command"]))
    assert "--protected-mode" not in command
    assert "requirepass" in command or "--user default reset on" in command


def test_the_redis_password_comes_from_persistent_env_not_the_compose_file() -> None:
    assert REDIS["env_file"] == "./persistent_data/config/persistent.env"
    script = str(REDIS["command"][2])
    # Every $ is escaped: compose interpolates nothing (no secret from its own environment).
    assert re.search(r"(?<!\$)\$(?!\$)", script) is None, script
    assert "REDIS_PASSWORD:?" in script
    assert "REDIS_PASSWORD" in " ".join(REDIS["healthcheck"]["test"])


def _rules_after(script: str, marker: str) -> tuple[str, ...]:
    """The ACL rules that follow `marker` on its line of the script, unquoted."""
    line = script.split(marker, 1)[1].splitlines()[0]
    return tuple(rule.strip('"') for rule in line.split(" --user ", 1)[0].split())


def test_the_redis_command_rules_are_the_projects() -> None:
    assert _rules_after(redis_script(), '"#$hash"') == COMMAND_RULES


def test_the_sentinel_profiles_users_are_the_projects() -> None:
    script = redis_script()
    assert _rules_after(script, f"--user {SENTINEL_USER} reset on " + '"#$shash"') == (
        SENTINEL_USER_RULES
    )
    assert _rules_after(script, f"--user {REPLICA_USER} reset on " + '"#$shash"') == (
        REPLICA_USER_RULES
    )
    assert f"--masteruser {REPLICA_USER}" in script
    sentinel = str(SERVICES["sentinel-1"]["command"][2]).replace("$$", "$")
    assert f"sentinel auth-user $master {SENTINEL_USER}" in sentinel


def test_every_client_service_reads_the_password_from_persistent_env() -> None:
    for name in APPS:
        spec = SERVICES[name]
        assert spec["env_file"] == "./persistent_data/config/persistent.env", name
        url = spec["environment"]["REDIS_URL"]
        assert "@" not in url, f"{name}: the password is folded in from REDIS_PASSWORD"


def test_nginx_is_published_on_loopback_by_default() -> None:
    ports = SERVICES["frontend"]["ports"]
    assert ports == ["${FRONTEND_BIND_ADDRESS:-127.0.0.1}:8081:8081"]


@pytest.fixture
def compose_redis(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """The redis service's script run here with the local redis-server; (port, password)."""
    conf = tmp_path / "redis.conf"
    conf.write_text('save ""\nappendonly no\n')
    port = free_port()
    script = (
        redis_script()
        .replace("/usr/local/etc/redis/redis.conf", str(conf))
        .replace("--bind 0.0.0.0", f"--bind 127.0.0.1 --port {port}")
    )
    password = "compose-password-from-env"
    env = {"PATH": os.environ["PATH"], "REDIS_PASSWORD": password, "REDIS_NODE_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        ["sh", "-c", script],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    client = redis.Redis(port=port, password=password, socket_timeout=5)
    try:
        wait_for(client.ping, 10, what="the compose redis script")
        yield port, password
    finally:
        client.close()
        stop_group(proc)


def healthcheck(port: int, password: str) -> subprocess.CompletedProcess[bytes]:
    """The redis service's health check run here against `port`, with REDIS_PASSWORD set."""
    kind, command = REDIS["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    command = command.replace("$$", "$").replace("redis-cli ", f"redis-cli -p {port} ")
    env = {"PATH": os.environ["PATH"], "REDIS_PASSWORD": password}
    return subprocess.run(
        ["sh", "-c", command], env=env, capture_output=True, timeout=10, check=False
    )


def test_the_compose_redis_refuses_anonymous_clients_and_admin_commands(
    compose_redis: tuple[int, str],
) -> None:
    port, password = compose_redis
    anonymous = redis.Redis(port=port, socket_timeout=5)
    client = redis.Redis(port=port, password=password, socket_timeout=5)
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()
        assert client.ping()
        with pytest.raises(redis.exceptions.ResponseError, match=r"(?i)permission"):
            client.execute_command("CONFIG", "SET", "dir", "/tmp")
        assert healthcheck(port, password).returncode == 0
        assert healthcheck(port, "not-it").returncode != 0
    finally:
        anonymous.close()
        client.close()


def test_the_compose_redis_does_not_start_without_a_password(tmp_path: Path) -> None:
    done = subprocess.run(
        ["sh", "-c", redis_script()],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode != 0
    assert "REDIS_PASSWORD" in done.stderr
