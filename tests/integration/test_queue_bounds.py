"""Queue bounds on a real Redis, and scheduled work ahead of an API backlog on a real worker."""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

import celeryconfig
from stockpred.infra.redis_client import connect
from stockpred.jobs.queue_bounds import QueueBounds, QueueFull
from stockpred.jobs.records import JobStore
from stockpred.jobs.submit import submit
from stockpred.ops.provision import run_setup
from stockpred.queues import API_PRIORITY, QueueName
from stockpred.settings import Settings, load_settings
from stockpred.telemetry.queue_facts import queue_depths
from tests.conftest import clean_environ
from tests.support import RedisServer, start_worker, stop_group, wait_for

MAINTENANCE = QueueName.MAINTENANCE.value


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server no session worker consumes from."""
    with tempfile.TemporaryDirectory(prefix="sp-bounds-") as directory:
        server = RedisServer(Path(directory))
        server.start()
        yield server
        server.stop()


@pytest.fixture
def env(own_redis: RedisServer, tmp_path: Path) -> dict[str, str]:
    """A set-up data root on `own_redis`."""
    environ = clean_environ()
    environ["STOCKPRED_DATA_DIR"] = str(tmp_path / "persistent_data")
    environ["REDIS_URL"] = own_redis.url
    run_setup(load_settings(environ))
    return environ


def client_app(settings: Settings) -> Celery:
    """A Celery client configured as the web's (priorities included)."""
    app = Celery("stockpred-bounds-test", set_as_current=False)
    app.config_from_object("celeryconfig")
    app.add_defaults(lambda: celeryconfig.from_settings(settings))
    return app


def api_submit(app: Celery, store: JobStore, bounds: QueueBounds) -> str:
    """Submit one quick maintenance job as the web does; its id."""
    job = submit(
        app.send_task,
        store,
        kind="storage-check",
        task_name="maintenance.check_storage",
        kwargs={},
        bounds=bounds,
        priority=API_PRIORITY,
    )
    return job.id


def test_concurrent_submitters_never_push_a_queue_past_its_bound(env: dict[str, str]) -> None:
    settings = load_settings(env)
    app = client_app(settings)
    redis_client = connect(settings)
    store = JobStore(redis_client, settings.job_ttl)
    bound = 25
    bounds = QueueBounds(redis_client, {MAINTENANCE: bound})
    admitted: list[str] = []
    refused: list[QueueFull] = []
    lock = threading.Lock()

    def submitter() -> None:
        for _ in range(8):
            try:
                job_id = api_submit(app, store, bounds)
            except QueueFull as exc:
                with lock:
                    refused.append(exc)
            else:
                with lock:
                    admitted.append(job_id)

    threads = [threading.Thread(target=submitter) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == bound
    assert len(refused) == 12 * 8 - bound
    assert queue_depths(redis_client)[MAINTENANCE] == bound
    assert all(exc.retry_after > 0 and exc.bound == bound for exc in refused)
    for job_id in admitted[:3]:
        job = store.get(job_id)
        assert job is not None and job.state == "queued"
    app.close()
    redis_client.close()


def test_scheduled_work_is_never_refused_and_runs_before_the_api_backlog(
    env: dict[str, str], tmp_path: Path
) -> None:
    settings = load_settings(env)
    app = client_app(settings)
    redis_client = connect(settings)
    store = JobStore(redis_client, settings.job_ttl)
    bound = 6
    bounds = QueueBounds(redis_client, {MAINTENANCE: bound})
    backlog = [api_submit(app, store, bounds) for _ in range(bound)]
    with pytest.raises(QueueFull):
        api_submit(app, store, bounds)
    # Sent as beat sends an entry: its task, kwargs and options (priority included).
    entry = celeryconfig.BEAT_SCHEDULE["storage-monitor-every-6h"]
    scheduled = app.send_task(entry["task"], kwargs=entry.get("kwargs", {}), **entry["options"])
    assert queue_depths(redis_client)[MAINTENANCE] == bound + 1  # accepted past the bound

    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    worker = start_worker(MAINTENANCE, env, log_dir)
    try:

        def backlog_done() -> bool:
            if worker.poll() is not None:
                raise AssertionError((log_dir / "worker-maintenance.log").read_text()[-3000:])
            jobs = [store.get(job_id) for job_id in backlog]
            return all(job is not None and job.finished for job in jobs)

        wait_for(backlog_done, 90, interval=0.3, what="the worker to drain the backlog")
    finally:
        stop_group(worker)
        app.close()
        redis_client.close()
    log = (log_dir / "worker-maintenance.log").read_text()
    received = re.findall(r"Task (maintenance\.\w+)\[([0-9a-f-]+)\] received", log)
    assert received, log[-3000:]
    assert received[0] == ("maintenance.monitor", scheduled.id), received
    assert {task_id for _, task_id in received[1:]} == set(backlog)
