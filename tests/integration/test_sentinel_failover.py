"""Redis Sentinel: clients, a Celery worker, beat, the web app and Flower follow a failover.

One real deployment for the module (tests.support.SentinelSet: a primary, a replica, three
sentinels, the project's ACL), one failover: the fixture starts a real maintenance worker and a
real beat with REDIS_URL=sentinel://…, writes and queues work, SIGKILLs the primary and waits
for the sentinels to promote the replica; each test checks one part afterwards.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import yaml
from celery import Celery

import celeryconfig
from stockpred.infra.redis_client import connect
from stockpred.jobs.records import JobStore
from stockpred.ops.provision import run_setup
from stockpred.settings import Settings, load_settings
from tests.conftest import clean_environ
from tests.support import (
    BIN,
    ROOT,
    SentinelSet,
    free_port,
    start_beat,
    start_worker,
    stop_group,
    wait_for,
)

WORKER = "sentinel-maintenance@test"
LOCK_KEY = f"{celeryconfig.REDBEAT_KEY_PREFIX}:lock"
RUNNING_SECONDS = 4  # the task running while the primary dies outlives the failover


@dataclass
class Failover:
    """What the module's one failover left for the tests to check."""

    deployment: SentinelSet
    settings: Settings
    env: dict[str, str]
    client: redis.Redis  # made by `connect` before the kill, still in use after
    written: dict[str, str]  # acknowledged by the replica (WAIT) before the kill
    jobs_before: list[str]  # [running when killed, waiting in the queue when killed]
    old_port: int
    new_port: int
    celery: Celery
    beat: subprocess.Popen[bytes]

    def store(self) -> JobStore:
        return JobStore(self.client, self.settings.job_ttl)

    def send_sleep(self, seconds: float) -> str:
        """Record a job and send `maintenance.outlive_soft_limit` (a sleep) for it."""
        job = self.store().create(
            kind="slow", task_name="maintenance.outlive_soft_limit", queue="maintenance"
        )
        self.celery.send_task(
            "maintenance.outlive_soft_limit",
            kwargs={"seconds": seconds},
            task_id=job.id,
            ignore_result=True,
        )
        return job.id


def sentinel_celery(settings: Settings) -> Celery:
    """A Celery client configured as the web's (`celeryconfig.from_settings`)."""
    app = Celery("stockpred-sentinel-tests", set_as_current=False)
    app.config_from_object("celeryconfig")
    app.add_defaults(lambda: celeryconfig.from_settings(settings))
    return app


@pytest.fixture(scope="module")
def failover() -> Iterator[Failover]:
    """A sentinel deployment, a worker and beat on it, work in flight; then the primary killed."""
    with tempfile.TemporaryDirectory(prefix="sp-sentinel-") as directory:
        root = Path(directory)
        deployment = SentinelSet(root / "redis")
        env = {**clean_environ(), **deployment.env(), "STOCKPRED_DATA_DIR": str(root / "pd")}
        env["BEAT_LOCK_TIMEOUT"] = "5s"
        settings = load_settings(env)
        run_setup(settings)
        procs: list[subprocess.Popen[bytes]] = []
        deployment.start()
        client = connect(settings)
        celery = sentinel_celery(settings)
        try:
            procs.append(
                start_worker(
                    "maintenance",
                    env,
                    root,
                    app="tests.integration.slow_tasks",
                    hostname=WORKER,
                )
            )
            beat = start_beat(env, root / "beat.log")
            procs.append(beat)
            wait_for(
                lambda: celery.control.ping(destination=[WORKER], timeout=0.5),
                60,
                what="the worker on the sentinel deployment",
            )
            wait_for(lambda: client.exists(LOCK_KEY), 30, what="beat holding its lock")
            state = Failover(deployment, settings, env, client, {}, [], 0, 0, celery, beat)
            running = state.send_sleep(RUNNING_SECONDS)
            wait_for(
                lambda: (job := state.store().get(running)) and job.state == "started",
                30,
                what="the long task started",
            )
            waiting = state.send_sleep(0)
            state.jobs_before = [running, waiting]
            state.written = {f"sentinel-test:{uuid.uuid4().hex}": str(n) for n in range(20)}
            client.mset(state.written)
            # The replica has every write up to this connection's last one (one ordered stream),
            # the queued message and the job records included.
            assert client.wait(1, 5000) == 1
            state.old_port = deployment.kill_primary()
            state.new_port = deployment.wait_failover(state.old_port)
            yield state
        finally:
            celery.close()
            client.close()
            for proc in procs:
                stop_group(proc)
            deployment.stop()


def test_a_client_made_before_the_kill_reads_acknowledged_writes_and_writes_on_the_new_primary(
    failover: Failover,
) -> None:
    client = failover.client
    assert client.mget(list(failover.written)) == list(failover.written.values())
    key = f"sentinel-test:after:{uuid.uuid4().hex}"
    assert client.set(key, "1") and client.get(key) == "1"
    assert int(client.info("server")["tcp_port"]) == failover.new_port != failover.old_port
    probe = connect(failover.settings, fail_fast=True)
    try:
        assert probe.ping()
    finally:
        probe.close()


def test_a_worker_finishes_the_running_task_and_runs_the_queued_and_a_new_one(
    failover: Failover,
) -> None:
    store = failover.store()
    after = failover.send_sleep(0)
    for job_id in [*failover.jobs_before, after]:
        done = store.wait_finished(job_id, 60)
        assert done is not None and done.state == "succeeded", done


def test_beat_holds_its_lock_on_the_new_primary_once_its_supervisor_restarts_it(
    failover: Failover, tmp_path: Path
) -> None:
    # RedBeat's Sentinel client does not retry through the failover: beat exits when it cannot
    # extend its lock (celeryconfig: its supervisor starts it again, as for a Redis restart).
    beat = failover.beat
    if beat.poll() is not None:
        beat = start_beat(failover.env, tmp_path / "beat-restarted.log")
    try:
        client = failover.client

        def extended() -> bool:
            first = client.pttl(LOCK_KEY)
            time.sleep(1.2)  # beat extends its lock every tick, at most a second apart here
            return 0 < first < client.pttl(LOCK_KEY)

        wait_for(extended, 30, what="beat extending its lock on the new primary")
        assert beat.poll() is None
        compose = yaml.safe_load((ROOT / "docker-compose-persistent.yml").read_text())
        command = compose["services"]["beat"]["healthcheck"]["test"]
        assert command[0] == "CMD"
        done = subprocess.run(command[1:], cwd=ROOT, env=failover.env, timeout=30, check=False)
        assert done.returncode == 0
    finally:
        if beat is not failover.beat:
            stop_group(beat)


def test_the_web_app_submits_work_and_reads_its_result_after_the_failover(
    failover: Failover,
) -> None:
    from web import create_app

    app = create_app({"STOCKPRED_SETTINGS": failover.settings, "TESTING": True})
    try:
        answer = app.test_client().get("/api/v1/storage/status?refresh=true")
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["ok"] in (True, False)
    finally:
        app.extensions["stockpred"].close()


def test_deferred_writes_reach_the_master_the_sentinels_name(failover: Failover) -> None:
    from stockpred.infra.deferred_writes import DeferredWrites

    key = f"sentinel-test:deferred:{uuid.uuid4().hex}"
    writes = DeferredWrites(failover.client)
    writes.send("SET", key, "1")
    writes.flush()
    primary = failover.deployment.node_client(failover.new_port)
    try:
        assert primary.get(key) == "1"
    finally:
        primary.close()


def test_rate_limits_are_counted_on_the_master_the_sentinels_name(failover: Failover) -> None:
    from web.admission import WORK, RateLimits

    settings = load_settings({**failover.env, "RATE_LIMIT_WORK": "2/minute"})
    probe = connect(settings, fail_fast=True)
    try:
        limits = RateLimits.on_redis(probe, settings)
        client = f"sentinel-test-{uuid.uuid4().hex}"
        assert limits.hit(WORK, client) is None
        assert limits.hit(WORK, client) is None
        assert limits.hit(WORK, client) is not None  # counted in Redis: the third is refused
    finally:
        probe.close()


def test_flower_reads_queue_lengths_from_the_new_primary(
    failover: Failover, tmp_path: Path
) -> None:
    port = free_port()
    env = {**failover.env, "FLOWER_PORT": str(port), "FLOWER_BASIC_AUTH": "tests:flower"}
    with (tmp_path / "flower.log").open("ab") as log:
        flower = subprocess.Popen(
            [str(BIN / "celery"), "-A", "workers", "flower", "--conf=workers/flowerconfig.py"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    auth = "Basic " + base64.b64encode(b"tests:flower").decode()

    def queue_lengths() -> dict[str, int] | None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/queues/length", headers={"Authorization": auth}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            found = json.loads(answer.read())["active_queues"]
        return {queue["name"]: queue["messages"] for queue in found} or None

    try:
        lengths = wait_for(queue_lengths, 60, interval=0.5, what="Flower's queue lengths")
        assert set(lengths) == {"inference", "training", "maintenance"}
    finally:
        stop_group(flower)
