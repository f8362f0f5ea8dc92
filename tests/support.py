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
