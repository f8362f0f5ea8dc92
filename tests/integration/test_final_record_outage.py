"""A job's final state is written once Redis is back, even after an outage longer than a
client's own reconnect retries (a task that ran on through a Redis restart)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery

from stockpred.infra.redis_client import connect
from stockpred.jobs.records import JobStore
from stockpred.settings import load_settings
from tests.support import RedisServer
from workers import task_base

OUTAGE_SECONDS = 9.0  # longer than redis_client's retries (7.5 s at most)


def test_a_final_record_lands_after_an_outage_longer_than_the_client_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    settings = load_settings({"STOCKPRED_DATA_DIR": str(tmp_path / "pd"), "REDIS_URL": server.url})
    client = connect(settings)
    store = JobStore(client, timedelta(hours=1))
    monkeypatch.setattr(task_base, "_jobs", lambda: store)
    app = Celery("outage", task_cls=task_base.JobTask, set_as_current=False)
    app.conf.update(task_always_eager=True, broker_url="memory://", result_backend=None)
    job = store.create(kind="add", task_name="maintenance.add", queue="maintenance")
    store.update(job.id, state="started")
    restart = threading.Timer(OUTAGE_SECONDS, server.start)

    @app.task(name="maintenance.add")
    def add(a: int, b: int) -> int:
        time.sleep(1.5)  # AOF everysec: the started record is on disk before the kill
        server.kill()
        restart.start()
        return a + b

    try:
        assert add.apply(args=(2, 3), task_id=job.id).get() == 5
        restart.join()
        record = store.get(job.id)
        assert record is not None and record.state == "succeeded" and record.result == 5
    finally:
        restart.cancel()
        client.close()
        server.stop()
