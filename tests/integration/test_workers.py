"""Real worker subprocesses on a real Redis: job records through the queue, health, outages."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery
from flask import Flask

from stockpred.jobs.records import JobStore
from stockpred.settings import Settings
from tests.contract import assert_conforms
from tests.support import RedisServer, free_port, wait_for
from web import create_app
from web.dispatch import submit
from web.services import Services


@pytest.fixture
def web_app() -> Iterator[Callable[[Settings], Flask]]:
    """Build web apps on given settings; close their connections after the test."""
    made: list[Flask] = []

    def build(settings: Settings) -> Flask:
        made.append(create_app({"STOCKPRED_SETTINGS": settings, "TESTING": True}))
        return made[-1]

    yield build
    for app in made:
        app.extensions["stockpred"].close()


def test_a_submitted_job_runs_on_its_queue_and_its_record_follows(
    web_app: Callable[[Settings], Flask], celery_workers: Celery, worker_settings: Settings
) -> None:
    app = web_app(worker_settings)
    with app.test_request_context():
        job = submit(kind="storage-check", task_name="maintenance.check_storage", kwargs={})
    client = app.test_client()
    queued_or_later = client.get(f"/api/v1/tasks/{job.id}").get_json()
    assert queued_or_later["state"] in {"queued", "started", "succeeded"}

    def finished() -> dict[str, object] | None:
        body = client.get(f"/api/v1/tasks/{job.id}").get_json()
        return body if body["state"] in {"succeeded", "failed"} else None

    body = wait_for(finished, 30, what="the storage check job to finish")
    assert body["state"] == "succeeded", body
    assert body["queue"] == "maintenance"
    assert body["result"]["ok"] is True
    assert body["result"]["root"] == str(worker_settings.data_dir)
    assert body["started_at"] and body["finished_at"]


def test_an_unknown_task_id_is_404_not_pending(
    web_app: Callable[[Settings], Flask], celery_workers: Celery, worker_settings: Settings
) -> None:
    response = web_app(worker_settings).test_client().get("/api/v1/tasks/does-not-exist")
    assert response.status_code == 404
    assert response.get_json()["error"] == "unknown task id"


def test_health_sees_a_live_worker_on_every_queue(
    web_app: Callable[[Settings], Flask], celery_workers: Celery, worker_settings: Settings
) -> None:
    client = web_app(worker_settings).test_client()
    # Earlier tests restart the session's Redis: a broadcast on a connection that has not yet
    # noticed gets no replies, and the next health check asks on a new one.
    answers: list[Any] = []

    def healthy() -> bool:
        response = client.get("/api/v1/health")
        answers.append(response.get_json())
        return response.status_code == 200

    assert wait_for(healthy, 30), answers[-3:]
    body = answers[-1]
    assert body["services"]["worker_training"] == "up"
    assert body["checks"]["queues"]["inference"] == ["inference@test"]


def test_health_is_degraded_on_a_redis_without_workers(
    web_app: Callable[[Settings], Flask],
    worker_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    lonely = RedisServer(tmp_path_factory.mktemp("lonely-redis"))
    lonely.start()
    try:
        settings = worker_settings.model_copy(
            update={"redis_url": lonely.url, "health_timeout": 0.3}
        )
        response = web_app(settings).test_client().get("/api/v1/health")
        assert response.status_code == 206
        assert response.get_json()["services"]["worker_inference"] == "down"
    finally:
        lonely.stop()


def test_health_is_503_while_redis_is_stopped_and_recovers_after(
    web_app: Callable[[Settings], Flask],
    redis_server: RedisServer,
    celery_workers: Celery,
    worker_settings: Settings,
) -> None:
    client = web_app(worker_settings).test_client()
    redis_server.stop()
    try:
        down = client.get("/api/v1/health")
        assert down.status_code == 503
        assert down.get_json()["services"]["redis"] == "down"
    finally:
        redis_server.start()
    wait_for(
        lambda: client.get("/api/v1/health").status_code == 200,
        60,
        what="health to recover after the Redis restart",
    )


def test_reads_while_redis_is_away_are_a_json_503_not_a_500(
    web_app: Callable[[Settings], Flask], worker_settings: Settings
) -> None:
    dead = worker_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    client = web_app(dead).test_client()
    for path in ("/api/v1/tasks/some-job", "/api/v1/stats"):
        response = client.get(path)
        assert response.status_code == 503, (path, response.get_json())
        assert response.get_json()["error"] == "redis unavailable"
        assert response.headers["Retry-After"] == "5"
        template = "/api/v1/tasks/{task_id}" if "tasks" in path else path
        assert_conforms(template, "get", 503, response.get_json())


def test_submitting_while_the_broker_is_down_is_a_503_not_a_hang(
    web_app: Callable[[Settings], Flask],
    worker_settings: Settings,
) -> None:
    dead = worker_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    app = web_app(dead)
    started = time.monotonic()
    with app.test_request_context():
        from web.errors import ApiError

        with pytest.raises(ApiError) as err:
            submit(kind="storage-check", task_name="maintenance.check_storage", kwargs={})
    assert err.value.status == 503
    assert time.monotonic() - started < 15


def test_a_job_for_a_task_whose_record_was_cancelled_is_not_resurrected(
    web_app: Callable[[Settings], Flask], celery_workers: Celery, worker_settings: Settings
) -> None:
    app = web_app(worker_settings)
    svc: Services = app.extensions["stockpred"]
    store = JobStore(svc.redis, worker_settings.job_ttl)
    with app.test_request_context():
        job = submit(kind="storage-check", task_name="maintenance.check_storage", kwargs={})
    store.update(job.id, state="cancelled")
    ran = f"maintenance.check_storage[{job.id}] succeeded"  # Celery's own log line
    wait_for(lambda: ran in worker_settings.log_file.read_text(), 30, what="the task to run")
    loaded = store.get(job.id)
    assert loaded is not None and loaded.state == "cancelled"
    assert not svc.redis.exists(f"celery-task-meta-{job.id}")  # the job record is the result


def test_each_pool_child_gets_its_share_of_cores_for_tensorflow(
    web_app: Callable[[Settings], Flask], celery_workers: Celery, worker_settings: Settings
) -> None:
    import os

    expected = max(1, (os.cpu_count() or 1) // 1)  # the test workers run --concurrency 1
    log_file = worker_settings.log_file

    def children_ready() -> list[str]:
        lines = log_file.read_text().splitlines()
        return [
            line for line in lines if "[inference@test:" in line and "pool process ready" in line
        ]

    ready = wait_for(children_ready, 10, what="the inference pool child's start-up line")
    assert all(f"intra-op threads: {expected})" in line for line in ready)


def test_tensorflow_is_imported_ahead_of_tasks_only_by_workers_that_need_it(
    celery_workers: Celery, worker_settings: Settings
) -> None:
    def preloading_nodes() -> set[str]:
        lines = worker_settings.log_file.read_text().splitlines()
        return {
            node
            for line in lines
            if "TensorFlow imported in" in line
            for node in ("inference@", "training@", "maintenance@")
            if f"[{node}" in line
        }

    wait_for(
        lambda: {"inference@", "training@"} <= preloading_nodes(),
        90,
        what="the inference and training pool children to import TensorFlow",
    )
    assert "maintenance@" not in preloading_nodes()
