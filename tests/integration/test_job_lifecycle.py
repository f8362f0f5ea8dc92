"""The job lifecycle on real workers: hard time limits, revocation, rollback through the queue."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
import pytest
from celery import Celery

from stockpred.infra.redis_client import connect
from stockpred.jobs.errors import ErrorKind
from stockpred.jobs.records import JobStore
from stockpred.ml.registry import ModelRegistry
from stockpred.settings import Settings, load_settings
from tests.conftest import celery_client
from tests.contract import assert_conforms
from tests.support import RedisServer, start_worker, stop_group, wait_for


@pytest.fixture
def slow_worker(
    worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Celery, Settings]]:
    """A maintenance worker that also knows `maintenance.outlive_soft_limit`, on its own Redis."""
    server = RedisServer(tmp_path_factory.mktemp("slow-redis"))
    server.start()
    # One redelivery allowed: the redelivery test kills the pool child twice.
    env = {**worker_env, "REDIS_URL": server.url, "TASK_MAX_REDELIVERIES": "1"}
    settings = load_settings(env)
    proc = start_worker(
        "maintenance",
        env,
        tmp_path_factory.mktemp("slow-worker"),
        app="tests.integration.slow_tasks",
        hostname="slow@test",
    )
    client = celery_client(settings)
    try:
        wait_for(
            lambda: client.control.ping(destination=["slow@test"], timeout=0.5),
            60,
            what="the slow worker",
        )
        yield client, settings
    finally:
        client.close()
        stop_group(proc)
        server.stop()


def send_slow(
    slow_worker: tuple[Celery, Settings], seconds: float, **options: Any
) -> tuple[JobStore, str]:
    """Record a job and send `maintenance.outlive_soft_limit` for it with `options`."""
    client, settings = slow_worker
    store = JobStore(connect(settings), settings.job_ttl)
    job_id = store.create(
        kind="slow", task_name="maintenance.outlive_soft_limit", queue="maintenance"
    ).id
    client.send_task(
        "maintenance.outlive_soft_limit",
        kwargs={"seconds": seconds},
        task_id=job_id,
        ignore_result=True,
        **options,
    )
    return store, job_id


def test_a_task_killed_by_its_hard_time_limit_ends_failed_with_the_reason(
    slow_worker: tuple[Celery, Settings],
) -> None:
    # The soft limit fires first and is swallowed: the hard limit then kills the pool child.
    store, job_id = send_slow(slow_worker, 60, time_limit=2, soft_time_limit=1)
    done = store.wait_finished(job_id, 30)
    assert done is not None and done.state == "failed", done
    assert done.error is not None
    assert done.error["kind"] == ErrorKind.TIME_LIMIT
    assert "hard time limit (2s) exceeded" in done.error["message"]


def _slow_pool_child() -> psutil.Process:
    """The one pool child of the slow worker (its main process is the one whose parent is not)."""
    named = [
        p for p in psutil.process_iter(["cmdline"]) if "slow@test" in (p.info["cmdline"] or [])
    ]
    children = [p for p in named if p.parent() is not None and p.parent() in named]
    assert len(children) == 1, children
    return children[0]


def test_a_message_whose_worker_keeps_dying_is_failed_past_the_redelivery_limit(
    slow_worker: tuple[Celery, Settings],
) -> None:
    store, job_id = send_slow(slow_worker, 120)

    def started_at() -> str | None:
        job = store.get(job_id)
        return job.started_at if job is not None and job.state == "started" else None

    first = wait_for(started_at, 30, what="the first run")
    wait_for(_slow_pool_child, 30, what="the pool child").kill()
    # reject_on_worker_lost: the message comes back, and one redelivery is allowed.
    wait_for(lambda: (s := started_at()) and s != first, 60, what="the redelivered run")
    wait_for(_slow_pool_child, 30, what="the new pool child").kill()
    done = store.wait_finished(job_id, 60)
    assert done is not None and done.state == "failed", done
    assert done.error is not None and done.error["kind"] == ErrorKind.REDELIVERY_LIMIT
    assert "redelivered 2 times (TASK_MAX_REDELIVERIES=1)" in done.error["message"]


def test_a_revoked_message_cancels_its_job(slow_worker: tuple[Celery, Settings]) -> None:
    # Expired on arrival: the worker revokes it without running it.
    store, job_id = send_slow(slow_worker, 0, expires=datetime.now(UTC) - timedelta(minutes=1))
    done = store.wait_finished(job_id, 30)
    assert done is not None and done.state == "cancelled", done


def test_a_rollback_is_a_maintenance_job_and_the_web_writes_no_pointer(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from web import create_app

    registry = ModelRegistry(settings.ml_model_path, settings.scalers_path)
    for version in ("20240101T000000Z-aaaa", "20240201T000000Z-bbbb"):
        model_dir = settings.ml_model_path / "ZZZ" / version
        scaler_dir = settings.scalers_path / "ZZZ" / version
        model_dir.mkdir(parents=True)
        scaler_dir.mkdir(parents=True)
        (model_dir / "model.keras").write_bytes(b"")
        (model_dir / "metadata.json").write_text("{}")
        (scaler_dir / "scaler.joblib").write_bytes(b"")
    registry.publish("ZZZ", "20240201T000000Z-bbbb")
    lonely = RedisServer(tmp_path_factory.mktemp("no-workers"))  # nothing consumes its queues
    lonely.start()
    try:
        app = create_app(
            {
                "STOCKPRED_SETTINGS": settings.model_copy(
                    update={"redis_url": lonely.url, "predict_wait": 0.3}
                ),
                "TESTING": True,
            }
        )
        _roll_back_without_a_worker(app, registry, settings)
        app.extensions["stockpred"].close()
    finally:
        lonely.stop()


def _roll_back_without_a_worker(app: Any, registry: ModelRegistry, settings: Settings) -> None:
    response = app.test_client().post(
        "/api/v1/models/ZZZ/rollback",
        json={},
        headers={"Authorization": f"Bearer {settings.api_token}"},
    )
    body = response.get_json()
    assert response.status_code == 202, body
    assert_conforms("/api/v1/models/{symbol}/rollback", "post", 202, body)
    assert response.headers["Location"] == body["status_url"]
    assert registry.current_version("ZZZ") == "20240201T000000Z-bbbb"
    job = app.test_client().get(body["status_url"]).get_json()
    assert (job["kind"], job["task_name"], job["state"]) == (
        "rollback",
        "maintenance.rollback_model",
        "queued",
    )
    assert job["params"] == {
        "symbol": "ZZZ",
        "version": None,
        "from_version": "20240201T000000Z-bbbb",
    }
