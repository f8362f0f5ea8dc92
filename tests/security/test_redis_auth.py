"""The project's redis-server as `make run` starts it: a password on TCP, no admin commands."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from stockpred.infra.redis_client import connect
from stockpred.ops.provision import run_setup
from stockpred.ops.redis_server import PreflightError, redis_server_argv
from stockpred.paths import DataTree
from stockpred.settings import Settings, load_settings
from stockpred.storage.backup import create_backup
from tests.conftest import clean_environ
from tests.support import free_port, stop_group, wait_for

# One command of each kind the project's client must not run, with arguments that would be
# harmless if it could (a refused command is refused before its arguments count).
ADMIN_COMMANDS = [
    ("CONFIG", "GET", "dir"),
    ("CONFIG", "SET", "dir", "/tmp"),
    ("DEBUG", "SLEEP", "0"),
    ("MODULE", "LIST"),
    ("REPLICAOF", "NO", "ONE"),
    ("SHUTDOWN", "NOSAVE"),
]


def start_project_redis(settings: Settings) -> subprocess.Popen[bytes]:
    """redis-server with the command line `stockpred redis-server` execs."""
    log = DataTree.from_settings(settings).redis / "server.log"
    with log.open("ab") as out:
        return subprocess.Popen(
            redis_server_argv(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.fixture(scope="module")
def tcp_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A set-up data root whose Redis listens on REDIS_PORT (setup generated its password)."""
    env = clean_environ()
    env.update(
        STOCKPRED_DATA_DIR=str(tmp_path_factory.mktemp("tcp") / "pd"), REDIS_PORT=str(free_port())
    )
    run_setup(load_settings(env))
    return load_settings(env)


@pytest.fixture(scope="module")
def tcp_redis(tcp_settings: Settings) -> Iterator[redis.Redis]:
    """The project's TCP redis-server, and the project's own client of it."""
    proc = start_project_redis(tcp_settings)
    client = connect(tcp_settings)
    try:
        wait_for(client.ping, 10, what="the project's redis-server on REDIS_PORT")
        yield client
    finally:
        client.close()
        stop_group(proc)


def test_setup_gave_the_tcp_redis_a_password(tcp_settings: Settings) -> None:
    assert tcp_settings.redis_password and len(tcp_settings.redis_password) >= 32
    assert f":{tcp_settings.redis_password}@" in tcp_settings.redis_client_url
    assert tcp_settings.celery_url == tcp_settings.redis_client_url


def test_the_tcp_redis_refuses_clients_without_the_password(
    tcp_settings: Settings, tcp_redis: redis.Redis
) -> None:
    anonymous = redis.Redis(port=tcp_settings.redis_port, socket_timeout=5)
    wrong = redis.Redis(port=tcp_settings.redis_port, password="not-it", socket_timeout=5)
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            wrong.ping()
    finally:
        anonymous.close()
        wrong.close()
    assert tcp_redis.ping()


@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_the_projects_own_client_may_not_run_admin_commands(
    tcp_redis: redis.Redis, command: tuple[str, ...]
) -> None:
    with pytest.raises(redis.exceptions.ResponseError, match=r"(?i)permission|not allowed"):
        tcp_redis.execute_command(*command)
    assert tcp_redis.ping()  # SHUTDOWN was refused too


def test_what_the_project_reads_from_redis_is_still_allowed(tcp_redis: redis.Redis) -> None:
    assert int(tcp_redis.info("memory")["maxmemory"]) > 0
    assert tcp_redis.lastsave()
    tcp_redis.set("stockpred:test:auth", "1", ex=60)
    assert tcp_redis.get("stockpred:test:auth") == "1"


def test_a_backup_still_snapshots_the_redis_it_cannot_configure(
    tcp_settings: Settings, tcp_redis: redis.Redis
) -> None:
    """CONFIG GET dir is refused: the backup knows its Redis by where the snapshot lands."""
    tree = DataTree.from_settings(tcp_settings)
    result = create_backup(tree, categories=["redis"], redis_client=tcp_redis)
    assert "redis" not in result.info.skipped, result.info.skipped
    assert tree.redis_dump.is_file()


def test_the_password_is_not_on_redis_servers_command_line(tcp_settings: Settings) -> None:
    argv = redis_server_argv(tcp_settings)
    assert tcp_settings.redis_password
    assert not any(tcp_settings.redis_password in arg for arg in argv)
    assert "--user" in argv and "-@dangerous" in argv


def test_tcp_without_a_password_does_not_start(tcp_settings: Settings) -> None:
    with pytest.raises(PreflightError, match="REDIS_PASSWORD"):
        redis_server_argv(tcp_settings.model_copy(update={"redis_password": None}))


def test_the_socket_redis_is_owner_only_and_refuses_admin_commands(tmp_path: Path) -> None:
    """Without REDIS_PORT the socket (mode 700) is the authentication; the command rules hold."""
    with_socket = clean_environ()
    with_socket["STOCKPRED_DATA_DIR"] = str(tmp_path / "pd")
    run_setup(load_settings(with_socket))
    settings = load_settings(with_socket)
    proc = start_project_redis(settings)
    client = connect(settings)
    try:
        wait_for(client.ping, 10, what="the project's redis-server on its socket")
        sock = DataTree.from_settings(settings).redis_socket
        assert sock.stat().st_mode & 0o777 == 0o700
        with pytest.raises(redis.exceptions.ResponseError, match=r"(?i)permission"):
            client.execute_command("CONFIG", "SET", "dir", "/tmp")
        with pytest.raises(redis.exceptions.ResponseError, match=r"(?i)permission"):
            client.execute_command("MODULE", "LIST")
    finally:
        client.close()
        stop_group(proc)
