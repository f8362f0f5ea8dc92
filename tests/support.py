"""Helpers the fixtures share: free ports, waiting on conditions, real server processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import redis

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], T | None], timeout: float, interval: float = 0.1, what: str = ""
) -> T:
    """Poll `condition` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:  # conditions may fail until the thing is up
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what or condition}: {last_error}")


def stop_group(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Signal a process group, then SIGKILL it if it has not exited in time."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


# Every TCP Redis the project starts asks for a password; the tests' servers do too.
TEST_REDIS_PASSWORD = "tests-redis-password"


class RedisServer:
    """A real redis-server on a free port, with a password, its data in a temp folder."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL with the password (settings fold REDIS_PASSWORD only into URLs without one)."""
        return f"redis://:{TEST_REDIS_PASSWORD}@127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(self.directory),
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--requirepass",
                    TEST_REDIS_PASSWORD,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        client = self.client()
        try:
            wait_for(client.ping, 10, what=f"redis on {self.port}")
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, signal.SIGKILL)
            self.proc = None


def start_worker(
    queue: str,
    env: Mapping[str, str],
    log_dir: Path,
    *,
    app: str = "workers",
    hostname: str | None = None,
) -> subprocess.Popen[bytes]:
    """A real `celery worker` subprocess of `app` consuming one queue, as the Procfile starts it."""
    with (log_dir / f"worker-{hostname or queue}.log").open("ab") as log:
        return subprocess.Popen(
            [
                str(BIN / "celery"),
                "-A",
                app,
                "worker",
                "--task-events",
                "--loglevel",
                "INFO",
                "--queues",
                queue,
                "--concurrency",
                "1",
                "--hostname",
                hostname or f"{queue}@test",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=ROOT,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start_beat(env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """A real `celery -A workers beat` subprocess, as the Procfile starts it, in its own group."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [str(BIN / "celery"), "-A", "workers", "beat", "--loglevel", "INFO"],
            cwd=ROOT,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start_project_redis(settings: Any, log_path: Path) -> subprocess.Popen[bytes]:
    """The redis-server `make run` starts for `settings` (the project's ACL), once it answers."""
    # Deferred: the other helpers here need nothing of stockpred.
    from stockpred.ops.redis_server import redis_server_argv

    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            redis_server_argv(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = redis.Redis.from_url(settings.redis_client_url, socket_timeout=5)
    try:
        wait_for(client.ping, 10, what="the project's redis-server")
    finally:
        client.close()
    return proc


TEST_SENTINEL_PASSWORD = "tests-sentinel-password"
SENTINEL_MASTER = "stockpred-test"


class SentinelSet:
    """A real Sentinel deployment on free ports: a primary, one replica and three sentinels.

    The data nodes run the project's rules (`stockpred.ops.redis_server`): the default user
    with TEST_REDIS_PASSWORD and COMMAND_RULES, the sentinels' and the replicas' users with
    TEST_SENTINEL_PASSWORD, which the sentinels also ask of their clients. Sentinels are
    `redis-server <conf> --sentinel` (the program Debian's redis-sentinel package runs) with
    short timers by default: a killed primary is replaced within a few seconds.
    """

    def __init__(
        self,
        directory: Path,
        *,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
        host: str = "127.0.0.1",
        launch: Callable[[list[str]], list[str]] = list,
    ) -> None:
        self.directory = directory
        self.host = host  # the address every node and sentinel binds and announces
        self.launch = launch  # argv → the argv that runs it (on a namespaced host, say)
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.data_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.nodes: dict[int, subprocess.Popen[bytes]] = {}
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """REDIS_URL naming the three sentinels (kombu's form)."""
        return ";".join(f"sentinel://{self.host}:{port}" for port in self.sentinel_ports)

    def env(self) -> dict[str, str]:
        """The settings that name this deployment."""
        return {
            "REDIS_URL": self.url,
            "REDIS_PASSWORD": TEST_REDIS_PASSWORD,
            "REDIS_SENTINEL_MASTER": SENTINEL_MASTER,
            "REDIS_SENTINEL_PASSWORD": TEST_SENTINEL_PASSWORD,
        }

    def _start_node(self, port: int, primary: int | None) -> None:
        # Deferred: the other helpers here need nothing of stockpred.
        from stockpred.ops.redis_server import REPLICA_USER, default_user_acl, sentinel_users_acl

        directory = self.directory / f"redis-{port}"
        directory.mkdir(parents=True, exist_ok=True)
        argv = ["redis-server", "--port", str(port), "--bind", self.host, "--dir", str(directory)]
        argv += ["--save", "", "--appendonly", "yes"]
        # Every node can become a replica (the old primary, after a failover): it can sync.
        argv += ["--masteruser", REPLICA_USER, "--masterauth", TEST_SENTINEL_PASSWORD]
        if primary is not None:
            argv += ["--replicaof", self.host, str(primary)]
        argv += [
            *sentinel_users_acl(TEST_SENTINEL_PASSWORD),
            *default_user_acl(TEST_REDIS_PASSWORD),
        ]
        with (directory / "redis.log").open("ab") as log:
            self.nodes[port] = subprocess.Popen(
                self.launch(argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _start_sentinel(self, port: int) -> subprocess.Popen[bytes]:
        # Deferred: the other helpers here need nothing of stockpred.
        from stockpred.ops.redis_server import SENTINEL_USER

        directory = self.directory / f"sentinel-{port}"
        directory.mkdir(parents=True, exist_ok=True)
        name = SENTINEL_MASTER
        conf = directory / "sentinel.conf"  # Sentinel rewrites it: its own, writable copy
        conf.write_text(
            f"port {port}\nbind {self.host}\ndir {directory}\n"
            f"sentinel monitor {name} {self.host} {self.data_ports[0]} 2\n"
            f"sentinel auth-user {name} {SENTINEL_USER}\n"
            f"sentinel auth-pass {name} {TEST_SENTINEL_PASSWORD}\n"
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}\n"
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}\n"
            f"requirepass {TEST_SENTINEL_PASSWORD}\n"
        )
        with (directory / "sentinel.log").open("ab") as log:
            return subprocess.Popen(
                self.launch(["redis-server", str(conf), "--sentinel"]),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def sentinel_client(self, index: int = 0) -> redis.Redis:
        """A client of one sentinel."""
        return redis.Redis(
            host=self.host,
            port=self.sentinel_ports[index],
            password=TEST_SENTINEL_PASSWORD,
            decode_responses=True,
            socket_timeout=5,
        )

    def node_client(self, port: int) -> redis.Redis:
        """A client of one data node, as the project's default user."""
        return redis.Redis(
            host=self.host,
            port=port,
            password=TEST_REDIS_PASSWORD,
            decode_responses=True,
            socket_timeout=5,
        )

    def master_port(self, index: int = 0) -> int:
        """The primary's port as one sentinel reports it."""
        client = self.sentinel_client(index)
        try:
            _, port = client.sentinel_get_master_addr_by_name(SENTINEL_MASTER)
            return int(port)
        finally:
            client.close()

    def _settled(self) -> bool:
        """Every sentinel knows the other two and a replica in sync with the primary."""
        for index in range(len(self.sentinel_ports)):
            client = self.sentinel_client(index)
            try:
                master = client.sentinel_master(SENTINEL_MASTER)
                if master["num-other-sentinels"] < 2 or master["num-slaves"] < 1:
                    return False
                if master["is_sdown"] or master["is_odown"]:
                    return False
            finally:
                client.close()
        primary = self.node_client(self.master_port())
        try:
            info = primary.info("replication")
            return bool(info["connected_slaves"] >= 1 and info["slave0"]["state"] == "online")
        finally:
            primary.close()

    def start(self) -> None:
        """Start the primary, the replica, then the sentinels; wait until they agree."""
        self._start_node(self.data_ports[0], None)
        self._start_node(self.data_ports[1], self.data_ports[0])
        self.sentinels = [self._start_sentinel(port) for port in self.sentinel_ports]
        self.wait_settled(30)

    def wait_settled(self, timeout: float = 60) -> None:
        """Wait until the sentinels agree on a primary and a replica is in sync with it."""
        wait_for(self._settled, timeout, interval=0.2, what="the sentinels and the replica")

    def restart_node(self, port: int) -> None:
        """Start a killed data node again (as its supervisor would): it rejoins as a replica."""
        self._start_node(port, self.master_port())

    def kill_primary(self) -> int:
        """SIGKILL the current primary; return its port."""
        port = self.master_port()
        stop_group(self.nodes.pop(port), signal.SIGKILL)
        return port

    def wait_failover(self, old_port: int, timeout: float = 30) -> int:
        """Wait until every sentinel names a new primary that answers as one; return its port."""

        def promoted() -> int | None:
            ports = {self.master_port(i) for i in range(len(self.sentinel_ports))}
            if len(ports) != 1 or old_port in ports:
                return None
            port = ports.pop()
            client = self.node_client(port)
            try:
                return port if client.info("replication")["role"] == "master" else None
            finally:
                client.close()

        return wait_for(promoted, timeout, interval=0.1, what="the sentinels' failover")

    def stop(self) -> None:
        for proc in [*self.sentinels, *self.nodes.values()]:
            stop_group(proc)
        self.sentinels = []
        self.nodes = {}
