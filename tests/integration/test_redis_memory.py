"""A full Redis, started as `make run` starts it (the shipped redis.conf) with a tiny maxmemory.

Filled with cache entries until it refuses writes: the lock and the running job's record are
still there, reads keep working, the web answers new work with a JSON 503, and the health check,
the storage monitor and /metrics say how full it is.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from flask import Flask

from stockpred.infra.counters import HitCounter
from stockpred.jobs.locks import training_lock
from stockpred.jobs.records import JobStore
from stockpred.ml.prediction_store import cache_key
from stockpred.ops.provision import run_setup
from stockpred.ops.redis_server import redis_server_argv
from stockpred.paths import DataTree
from stockpred.settings import Settings, load_settings
from stockpred.storage.monitor import build_report
from tests.support import free_port, stop_group, wait_for

FILLER = "x" * 8192
HEADROOM = 1 << 20  # bytes of maxmemory above what the server uses before the fill
# The project's default user may not run CONFIG: the test lowers maxmemory as a user of its own.
ADMIN = ("test-admin", "test-admin-password")


@dataclass
class FullRedis:
    """The server, its settings, and what was written before it filled up."""

    settings: Settings
    client: redis.Redis
    lock_key: str
    running_job: str
    cached_key: str
    fillers: int


def _fill(client: redis.Redis) -> int:
    """Write cache entries with a TTL until Redis refuses one; how many it took."""
    for written in range(100_000):
        try:
            client.set(cache_key("FILL", 1, "v", str(written)), FILLER, ex=3600)
        except redis.exceptions.OutOfMemoryError:
            return written
    raise AssertionError("Redis never refused a write: something was evicted instead")


@pytest.fixture(scope="module")
def full_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FullRedis]:
    """The shipped redis.conf, maxmemory set to what it uses plus 1 MiB, then filled."""
    from tests.conftest import clean_environ

    env = clean_environ()
    env.update(
        STOCKPRED_DATA_DIR=str(tmp_path_factory.mktemp("full") / "pd"),
        REDIS_PORT=str(free_port()),
    )
    run_setup(load_settings(env))
    settings = load_settings(env)  # with the API token setup wrote
    log = DataTree.from_settings(settings).redis / "server.log"
    with log.open("ab") as out:
        admin_user = ["--user", ADMIN[0], "on", f">{ADMIN[1]}", "~*", "&*", "+@all"]
        argv = [*redis_server_argv(settings), *admin_user]
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    client = redis.Redis.from_url(settings.redis_client_url, decode_responses=True)
    admin = redis.Redis(port=settings.redis_port, username=ADMIN[0], password=ADMIN[1])
    try:
        wait_for(client.ping, 10, what="the redis-server of redis.conf")
        store = JobStore(client, settings.job_ttl)
        running = store.create(kind="train", task_name="training.train", queue="training").id
        store.update(running, state="started")
        lock = training_lock(client, "LOCKED", 3600)
        assert lock.acquire(running)
        cached = cache_key("CACHED", 1, "v", "2024-01-02")
        client.set(cached, '{"ok": true}', ex=3600)
        used = int(client.info("memory")["used_memory"])
        admin.config_set("maxmemory", used + HEADROOM)
        yield FullRedis(settings, client, lock.key, running, cached, _fill(client))
    finally:
        client.close()
        admin.close()
        stop_group(proc)


def test_the_shipped_policy_refuses_writes_instead_of_evicting(full_redis: FullRedis) -> None:
    client = full_redis.client
    assert client.info("memory")["maxmemory_policy"] == "noeviction"
    assert full_redis.fillers > 10
    assert int(client.info("stats")["evicted_keys"]) == 0
    assert client.get(full_redis.lock_key) == full_redis.running_job
    job = JobStore(client, full_redis.settings.job_ttl).get(full_redis.running_job)
    assert job is not None and job.state == "started"


def test_a_full_redis_still_answers_cached_reads(full_redis: FullRedis) -> None:
    counter = HitCounter(full_redis.client, "oom-test")
    assert counter.read_counted(full_redis.cached_key) == '{"ok": true}'
    assert counter.read_counted(cache_key("ABSENT", 1, "v", "x")) is None


@pytest.fixture(scope="module")
def web(full_redis: FullRedis) -> Iterator[Flask]:
    """The web app on the full Redis, with one route that writes straight to Redis."""
    from web import create_app
    from web.services import services

    app = create_app({"STOCKPRED_SETTINGS": full_redis.settings, "TESTING": True})

    @app.post("/api/v1/_test/write")
    def write() -> dict[str, bool]:
        """A route whose Redis write is refused."""
        services().redis.set("stockpred:test:write", FILLER, ex=60)
        return {"ok": True}

    yield app
    app.extensions["stockpred"].close()


def test_the_web_answers_refused_writes_with_a_json_503(web: Flask, full_redis: FullRedis) -> None:
    client = web.test_client()
    auth = {"Authorization": f"Bearer {full_redis.settings.api_token}"}
    direct = client.post("/api/v1/_test/write", headers=auth)
    assert direct.status_code == 503, direct.get_data(as_text=True)
    assert direct.get_json()["error"] == "redis out of memory"
    assert direct.headers["Retry-After"]
    submitted = client.post("/api/v1/storage/backup", json={}, headers=auth)
    body = submitted.get_json()
    assert submitted.status_code == 503, body
    assert "used memory > 'maxmemory'" in body["detail"], body
    assert full_redis.client.llen("maintenance") == 0
    status = client.get(f"/api/v1/tasks/{full_redis.running_job}")
    assert status.status_code == 200 and status.get_json()["state"] == "started"


def test_health_metrics_and_the_monitor_say_how_full_redis_is(
    web: Flask, full_redis: FullRedis
) -> None:
    client = web.test_client()
    health = client.get("/api/v1/health").get_json()
    assert health["services"]["redis"] == "memory_high", health
    assert health["status"] != "unhealthy"
    assert health["checks"]["redis"]["warning"].startswith("Redis memory at 1")  # 100% or more
    assert "% of maxmemory" in health["checks"]["redis"]["warning"]
    metrics = client.get("/metrics").get_data(as_text=True)
    used = _sample(metrics, "stockpred_redis_memory_used_bytes")
    maximum = _sample(metrics, "stockpred_redis_memory_max_bytes")
    assert maximum == int(full_redis.client.info("memory")["maxmemory"])
    assert used >= maximum * 0.95
    report = build_report(
        DataTree.from_settings(full_redis.settings),
        max_backup_age=full_redis.settings.backup_max_age,
        redis_client=full_redis.client,
    )
    check = next(c for c in report.checks if c.name == "redis_memory")
    assert not check.ok and "of maxmemory" in check.detail


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} is not in /metrics")


def test_writes_work_again_once_entries_expire(full_redis: FullRedis, tmp_path: Path) -> None:
    client = full_redis.client
    keys = list(client.scan_iter(match=cache_key("FILL", 1, "v", "*"), count=1000))
    client.delete(*keys)  # what their TTLs would do, sooner
    assert client.set("stockpred:test:after", "1", ex=60)
