"""Worker kills: a job is redelivered or failed with a reason, never left `started` for hours.

A pool child killed mid-task: Celery puts the message back (acks_late, reject_on_worker_lost),
another child runs it, up to TASK_MAX_REDELIVERIES (see also tests/integration/
test_job_lifecycle.py). A worker's main process killed: its children die with it (Celery sets
PDEATHSIG), the message stays unacknowledged until the visibility timeout (hours), and the
restarted worker fails the job with kind `worker_lost`; when the message finally comes back it
is acknowledged without running. Real `celery worker` subprocesses on a real Redis; what the
user sees is read through the web's task status URL.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from celery import Celery
from flask.testing import FlaskClient

from stockpred.infra.redis_client import connect
from stockpred.jobs.records import RUNNING_PREFIX, JobStore
from stockpred.ml.registry import ModelRegistry
from stockpred.ops.provision import run_setup
from stockpred.paths import DataTree
from stockpred.settings import Settings, load_settings
from stockpred.storage.catalog import list_backups
from tests.conftest import celery_client, clean_environ
from tests.process_set import RunningSet, http_get, process_set, wait_healthy
from tests.support import RedisServer, start_worker, stop_group, wait_for

NODE = "maintenance@chaos"
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"  # kombu's Redis transport keys


@dataclass
class Worker:
    """A real maintenance worker (the workers' app plus a slow task) that tests kill."""

    env: dict[str, str]
    settings: Settings
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_worker(
            "maintenance",
            self.env,
            self.log.parent,
            app="tests.integration.slow_tasks",
            hostname=NODE,
        )

    def children(self) -> list[psutil.Process]:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).children()

    def kill_main(self) -> list[psutil.Process]:
        """SIGKILL the main process only, as the OOM killer would; its pool children."""
        assert self.proc is not None
        children = self.children()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        return children

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Worker, Celery]]:
    """A maintenance worker on its own Redis and data root, and a Celery client of it."""
    server = RedisServer(tmp_path_factory.mktemp("kill-redis"))
    server.start()
    env = clean_environ()
    env.update(
        STOCKPRED_DATA_DIR=str(tmp_path_factory.mktemp("kill-data") / "pd"),
        REDIS_URL=server.url,
    )
    run_setup(load_settings(env))
    settings = load_settings(env)
    running = Worker(env, settings, tmp_path_factory.mktemp("kill-logs") / f"worker-{NODE}.log")
    client = celery_client(settings)
    try:
        running.start()
        _wait_online(client)
        yield running, client
    finally:
        client.close()
        running.stop()
        server.stop()


def _wait_online(client: Celery) -> None:
    wait_for(lambda: client.control.ping(destination=[NODE], timeout=0.5), 60, what=NODE)


@pytest.fixture(scope="module")
def web(worker: tuple[Worker, Celery]) -> Iterator[FlaskClient]:
    """The web app on the worker's Redis: what a user polling the status URL sees."""
    from web import create_app

    app = create_app({"STOCKPRED_SETTINGS": worker[0].settings, "TESTING": True})
    yield app.test_client()
    app.extensions["stockpred"].close()


def _status(web: FlaskClient, job_id: str) -> dict[str, Any]:
    response = web.get(f"/api/v1/tasks/{job_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def test_a_killed_main_process_leaves_no_job_running_and_its_message_does_not_run_again(
    worker: tuple[Worker, Celery], web: FlaskClient
) -> None:
    running, client = worker
    redis = connect(running.settings)
    store = JobStore(redis, running.settings.job_ttl)
    job_id = store.create(
        kind="slow", task_name="maintenance.outlive_soft_limit", queue="maintenance"
    ).id
    client.send_task(
        "maintenance.outlive_soft_limit",
        kwargs={"seconds": 300},
        task_id=job_id,
        ignore_result=True,
    )
    wait_for(lambda: _status(web, job_id)["state"] == "started", 30, what="the job to start")
    first = store.worker_of(job_id)
    assert first is not None and first.node == NODE

    children = running.kill_main()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, "the pool child outlived its main process"
    # Before the restart the job looks alive, and its message waits for the visibility timeout.
    assert _status(web, job_id)["state"] == "started"
    tags = list(redis.hgetall(UNACKED))
    assert len(tags) == 1 and json.loads(redis.hget(UNACKED, tags[0]))[0]["headers"]["id"] == job_id
    # The visibility timeout is hours: pretend it passed, so the restarted worker restores the
    # message at once, the moment the late redelivery would otherwise come.
    redis.zadd(UNACKED_INDEX, {tag: 0 for tag in tags}, xx=True)

    running.start()
    _wait_online(client)
    job = _status(web, job_id)
    assert job["state"] == "failed", job
    assert job["error"]["kind"] == "worker_lost", job
    assert NODE in job["error"]["message"]
    assert not redis.smembers(RUNNING_PREFIX + NODE)

    def restored_and_acknowledged() -> bool:
        return not redis.hlen(UNACKED) and not redis.llen("maintenance")

    wait_for(restored_and_acknowledged, 30, what="the late redelivery to be acknowledged")
    log = running.log.read_text(errors="replace")
    assert f"task {job_id} redelivered, but its job already ended failed (worker_lost)" in log
    again = _status(web, job_id)
    assert (again["state"], again["updated_at"]) == ("failed", job["updated_at"]), "it ran again"
    assert store.worker_of(job_id) == first
    redis.close()


# Pool children killed mid-task on the real process set (`make run`).


@pytest.fixture(scope="module")
def process_set_up() -> Iterator[RunningSet]:
    """`make run` on free ports and a temp data root, healthy."""
    with process_set() as running:
        wait_healthy(running)
        yield running


def _pool_children(role: str) -> list[psutil.Process]:
    """The pool children of the set's `<role>@` worker (their parent is that worker too)."""
    named = [
        p
        for p in psutil.process_iter(["cmdline"])
        if any(part.startswith(f"{role}@") for part in (p.info["cmdline"] or []))
    ]
    return [p for p in named if p.parent() in named]


def _wait_running(redis_client: Any, role: str, timeout: float, *, reported: bool = True) -> str:
    """The id of a job a `<role>@` worker of this host has taken and, if `reported`, started.

    A worker names itself in a job's record when it receives the message; a task that reports
    its start then moves the record to `started`. Inference tasks do not report it (one write
    less per prediction): for them, taken is all that can be seen.
    """
    key = RUNNING_PREFIX + f"{role}@{socket.gethostname()}"

    def started() -> str | None:
        for job_id in redis_client.smembers(key):
            state = redis_client.hget(JobStore.key(job_id), "state")
            if not reported or state in ("started", "progress"):
                return str(job_id)
        return None

    return wait_for(started, timeout, 0.02)


def _kill(children: list[psutil.Process]) -> None:
    for child in children:
        child.send_signal(signal.SIGKILL)
    psutil.wait_procs(children, timeout=10)


def _post(running: RunningSet, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        running.web + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {running.token()}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def _ask(url: str) -> int:
    """The status of a GET that may wait PREDICT_WAIT; 0 when it failed without an answer."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return 0


def _finished(running: RunningSet, job_id: str, timeout: float) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        status, body = http_get(f"{running.web}/api/v1/tasks/{job_id}")
        assert status == 200, body
        job: dict[str, Any] = json.loads(body)
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(final, timeout, interval=0.5, what=f"job {job_id} to finish")


def test_pool_children_killed_mid_task_redeliver_their_work(process_set_up: RunningSet) -> None:
    running = process_set_up
    settings = load_settings(running.env)
    redis_client = connect(settings)
    tree = DataTree.from_settings(settings)

    # Training: killed during its first epochs, run again from the start, published once.
    training = _post(running, "/api/v1/train/NVDA", {"epochs": 3})["task_id"]
    wait_for(
        lambda: (
            json.loads(http_get(f"{running.web}/api/v1/tasks/{training}")[1])["state"]
            in ("started", "progress")
        ),
        120,
        what="the training to start",
    )
    _kill(_pool_children("training"))
    job = _finished(running, training, 300)
    assert job["state"] == "succeeded", job
    registry = ModelRegistry(settings.ml_model_path, settings.scalers_path)
    assert registry.versions("NVDA") == [registry.current_version("NVDA")]
    assert not list((settings.ml_model_path / "NVDA").glob(".staging-*"))

    # Inference: fresh children (still importing TensorFlow) take the prediction; killed.
    _kill(_pool_children("inference"))
    answers: list[int] = []
    asking = threading.Thread(
        target=lambda: answers.append(_ask(f"{running.web}/api/v1/predict/NVDA"))
    )
    asking.start()
    predicting = _wait_running(redis_client, "inference", 30, reported=False)
    _kill(_pool_children("inference"))
    asking.join(60)
    assert answers and answers[0] in (200, 202), answers  # the answer, or where to poll it
    job = _finished(running, predicting, 120)
    assert job["state"] == "succeeded", job
    assert job["result"]["symbol"] == "NVDA"

    # Maintenance: a backup killed while it compresses; the run that follows leaves one backup.
    (tree.logs / "chaos-bulk.log").write_bytes(os.urandom(96 << 20))
    backup = _post(running, "/api/v1/storage/backup", {})["task_id"]
    assert _wait_running(redis_client, "maintenance", 60) == backup
    _kill(_pool_children("maintenance"))
    job = _finished(running, backup, 300)
    assert job["state"] == "succeeded", job
    backups = list_backups(tree.backups)
    assert [b.name for b in backups] == [job["result"]["name"]]
    leftovers = [
        p.name
        for p in tree.backups.iterdir()
        if not p.name.startswith(backups[0].name) and p != tree.storage_lock
    ]
    assert not leftovers, leftovers
    redis_client.close()
