"""Beat on every host, one scheduler: real `celery beat` processes (RedBeat) on the project's Redis.

The Redis is started as `make run` starts it (`redis_server_argv`: the project's ACL, a password
on TCP, the owner-only socket otherwise). The schedule's cache cleanup runs every second and no
worker consumes, so every message beat sends stays in the maintenance queue to be counted.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

import celeryconfig
from stockpred.ops.provision import run_setup
from stockpred.paths import DataTree
from stockpred.queues import QueueName, priority_lists
from stockpred.settings import Settings, load_settings
from stockpred.telemetry.queue_facts import PUBLISHED_HEADER
from tests.conftest import clean_environ
from tests.support import ROOT, free_port, start_beat, start_project_redis, stop_group, wait_for

LOCK_TIMEOUT = 5  # seconds, the shortest BEAT_LOCK_TIMEOUT allowed; beat ticks every second
LOCK_KEY = f"{celeryconfig.REDBEAT_KEY_PREFIX}:lock"
# Two beats sending the same run would publish it within milliseconds of each other.
DOUBLE_SEND = 0.5


def _project_redis(directory: Path, *, tcp: bool) -> tuple[dict[str, str], subprocess.Popen[bytes]]:
    """The environment of a fresh data root and its redis-server, started as `make run` does."""
    env = clean_environ()
    env.update(
        STOCKPRED_DATA_DIR=str(directory / "pd"),
        CACHE_CLEANUP_INTERVAL="1s",
        BEAT_LOCK_TIMEOUT=f"{LOCK_TIMEOUT}s",
    )
    if tcp:
        env["REDIS_PORT"] = str(free_port())
    run_setup(load_settings(env))  # writes redis.conf and, with REDIS_PORT, REDIS_PASSWORD
    settings = load_settings(env)
    log = DataTree.from_settings(settings).redis / "server.log"
    return env, start_project_redis(settings, log)


def _client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_client_url, decode_responses=True, socket_timeout=5)


def cleanup_sends(client: redis.Redis) -> list[float]:
    """When beat published each cache-cleanup message waiting in the maintenance queue."""
    sent = []
    for name in priority_lists(QueueName.MAINTENANCE.value):
        for raw in client.lrange(name, 0, -1):
            message = json.loads(raw)
            headers = message["headers"]
            _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
            if headers["task"] == "maintenance.cleanup" and kwargs.get("scope") == "caches":
                sent.append(float(headers[PUBLISHED_HEADER]))
    return sorted(sent)


def assert_sent_once_a_second(sent: list[float], start: float, end: float) -> None:
    """Between `start` and `end`, one send per second: none twice, none missing."""
    window = [t for t in sent if start <= t <= end]
    gaps = [later - earlier for earlier, later in itertools.pairwise(window)]
    assert gaps and min(gaps) > DOUBLE_SEND, f"sent twice: {gaps}"
    assert len(window) >= int(end - start) - 1, (len(window), end - start)


def healthcheck(env: dict[str, str]) -> int:
    """Exit status of the compose file's beat healthcheck, run here against the test's Redis."""
    compose = yaml.safe_load((ROOT / "docker-compose-persistent.yml").read_text())
    command = compose["services"]["beat"]["healthcheck"]["test"]
    assert command[0] == "CMD"
    return subprocess.run(command[1:], cwd=ROOT, env=env, timeout=30, check=False).returncode


@pytest.fixture
def beats(tmp_path: Path) -> Iterator[tuple[dict[str, str], list[subprocess.Popen[bytes]]]]:
    """The project's Redis on TCP with its password and ACL; the beats a test starts."""
    env, server = _project_redis(tmp_path, tcp=True)
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield env, started
    finally:
        for proc in started:
            stop_group(proc)
        stop_group(server)


def test_two_beats_send_each_run_once_and_the_other_takes_over_when_the_holder_is_killed(
    beats: tuple[dict[str, str], list[subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    env, started = beats
    client = _client(load_settings(env))
    assert healthcheck(env) == 1  # no beat holds the lock yet
    holder = start_beat(env, tmp_path / "beat-a.log")
    started.append(holder)
    wait_for(lambda: client.exists(LOCK_KEY), 30, what="the first beat holding the lock")
    standby = start_beat(env, tmp_path / "beat-b.log")
    started.append(standby)
    log = load_settings(env).log_file  # every beat logs here, each line with its pid
    wait_for(
        lambda: f"[beat:{standby.pid}] celery.beat: beat: Starting" in log.read_text(),
        30,
        what="the second beat started",
    )
    wait_for(lambda: cleanup_sends(client), 30, what="the first cache cleanup sent")
    both_from = time.time()
    time.sleep(3)
    both_until = time.time()
    assert standby.poll() is None and holder.poll() is None
    assert f"[beat:{standby.pid}] celery.beat: beat: Acquired lock" not in log.read_text()
    assert healthcheck(env) == 0
    assert 0 < client.pttl(LOCK_KEY) <= LOCK_TIMEOUT * 1000

    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait(10)
    killed_at = time.time()
    taken_over = wait_for(
        lambda: next((t for t in cleanup_sends(client) if t > killed_at), None),
        LOCK_TIMEOUT + 10,
        what="the standby beat sending after the holder was killed",
    )
    # The dead holder's lock expires within LOCK_TIMEOUT; the standby retries every tick.
    assert taken_over - killed_at <= LOCK_TIMEOUT + 2
    time.sleep(2)
    sent = cleanup_sends(client)
    client.close()
    assert_sent_once_a_second(sent, both_from, both_until)
    assert_sent_once_a_second(sent, taken_over, time.time())
    assert standby.poll() is None
    assert f"[beat:{standby.pid}] celery.beat: beat: Acquired lock" in log.read_text()


def test_beat_schedules_through_the_projects_unix_socket(tmp_path: Path) -> None:
    env, server = _project_redis(tmp_path, tcp=False)
    settings = load_settings(env)
    assert settings.redis_client_url.startswith("unix://")
    beat = start_beat(env, tmp_path / "beat.log")
    client = _client(settings)
    try:
        wait_for(lambda: cleanup_sends(client), 30, what="a cache cleanup sent")
        assert client.exists(LOCK_KEY)
        assert client.zcard(f"{celeryconfig.REDBEAT_KEY_PREFIX}:schedule") == len(
            celeryconfig.beat_schedule_for(settings.cache_cleanup_interval)
        )
        assert not list(DataTree.from_settings(settings).config.glob("celerybeat-schedule*"))
    finally:
        client.close()
        stop_group(beat)
        stop_group(server)
