"""JobTask: the job record follows the task, and a metrics failure never changes an outcome."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery import Celery
from redis.backoff import NoBackoff
from redis.retry import Retry

from workers import task_base


class FakeJobs:
    """Records the updates JobTask makes to job records."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, dict[str, Any]]] = []

    def update(self, job_id: str, **fields: Any) -> bool:
        self.updates.append((job_id, fields))
        return True

    def send_update(self, job_id: str, *, state: str | None, worker: Any = None) -> None:
        self.updates.append((job_id, {"state": state, "worker": worker}))


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch) -> FakeJobs:
    """JobTask's job store, faked."""
    fake = FakeJobs()
    monkeypatch.setattr(task_base, "_jobs", lambda: fake)
    return fake


def _app() -> Celery:
    app = Celery("unit", task_cls=task_base.JobTask, set_as_current=False)
    app.conf.update(task_always_eager=True, broker_url="memory://", result_backend=None)
    return app


def test_a_failing_metrics_store_does_not_change_the_task_outcome(
    jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> Any:
        raise OSError("metrics folder gone")

    monkeypatch.setattr(task_base, "_metrics", broken)
    app = _app()

    @app.task(name="maintenance.add")
    def add(a: int, b: int) -> int:
        return a + b

    result = add.apply(args=(2, 3), task_id="job-1")
    assert result.successful() and result.get() == 5
    job_id, fields = jobs.updates[-1]
    assert (job_id, fields["state"], fields["result"]) == ("job-1", "succeeded", 5)
    assert "could not record the metrics of maintenance.add" in caplog.text


def test_a_failed_task_records_its_kind(jobs: FakeJobs) -> None:
    app = _app()

    @app.task(name="maintenance.boom")
    def boom() -> None:
        raise ValueError("no")

    boom.apply(task_id="job-2")
    job_id, fields = jobs.updates[-1]
    assert (job_id, fields["state"]) == ("job-2", "failed")
    assert fields["error"]["kind"] == "internal" and fields["error"]["message"] == "no"


class Counting(FakeJobs):
    """Also counts redeliveries, as JobStore does in Redis."""

    def __init__(self) -> None:
        super().__init__()
        self.redeliveries = 0

    def count_redelivery(self, job_id: str) -> int:
        self.redeliveries += 1
        return self.redeliveries


def test_a_message_that_keeps_coming_back_is_failed_past_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jobs = Counting()
    monkeypatch.setattr(task_base, "_jobs", lambda: jobs)
    monkeypatch.setattr(task_base, "_redelivery_limit", lambda: 2)
    task = task_base.JobTask()
    first = SimpleNamespace(id="job-3", delivery_info={"redelivered": False})
    again = SimpleNamespace(id="job-3", delivery_info={"redelivered": True})
    task._refuse_endless_redelivery(first)
    assert jobs.redeliveries == 0, "a first delivery is not counted"
    task._refuse_endless_redelivery(again)
    task._refuse_endless_redelivery(again)
    with pytest.raises(task_base.RedeliveryLimit, match="redelivered 3 times") as raised:
        task._refuse_endless_redelivery(again)
    assert task_base.job_error(raised.value)["kind"] == "redelivery_limit"


class FullRedis(FakeJobs):
    """A job store whose Redis is at maxmemory: every update is refused."""

    def update(self, job_id: str, **fields: Any) -> bool:
        raise redis.exceptions.OutOfMemoryError(
            "command not allowed when used memory > 'maxmemory'."
        )


def test_a_refused_record_update_is_logged_with_the_job_and_keeps_the_outcome(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(task_base, "_jobs", FullRedis)
    app = _app()

    @app.task(name="maintenance.add")
    def add(a: int, b: int) -> int:
        return a + b

    assert add.apply(args=(2, 3), task_id="job-4").get() == 5
    assert (
        "Redis is at maxmemory and refused the update of job job-4 (maintenance.add: state "
        "succeeded)" in caplog.text
    )


def test_a_task_that_lost_redis_records_the_kind_redis_unavailable(jobs: FakeJobs) -> None:
    app = _app()

    @app.task(name="training.publish")
    def publish() -> None:
        try:
            raise redis.exceptions.ConnectionError("Error 111 connecting: Connection refused")
        except redis.RedisError as exc:
            raise RuntimeError("could not publish") from exc

    publish.apply(task_id="job-5")
    _, fields = jobs.updates[-1]
    assert fields["state"] == "failed"
    assert fields["error"]["kind"] == "redis_unavailable"
    assert "Connection refused" in fields["error"]["message"]


def test_an_error_that_names_its_kind_keeps_it_even_when_redis_was_also_away() -> None:
    try:
        raise redis.exceptions.ConnectionError("gone")
    except redis.RedisError:
        try:
            raise task_base.WorkerLost("lost")
        except task_base.WorkerLost as exc:
            assert task_base.job_error(exc)["kind"] == "worker_lost"


class Restarting(FakeJobs):
    """A job store whose Redis is away for the first `outage` updates."""

    def __init__(self, outage: int) -> None:
        super().__init__()
        self.outage = outage
        self.tries = 0

    def update(self, job_id: str, **fields: Any) -> bool:
        self.tries += 1
        if self.tries <= self.outage:
            raise redis.exceptions.ConnectionError("Connection refused")
        return super().update(job_id, **fields)


def test_a_final_record_update_is_tried_again_until_redis_is_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = Restarting(outage=3)
    monkeypatch.setattr(task_base, "_jobs", lambda: store)
    monkeypatch.setattr(
        task_base,
        "final_record_retry",
        lambda: Retry(NoBackoff(), task_base.FINAL_RECORD_RETRIES, task_base.REDIS_AWAY),
    )
    app = _app()

    @app.task(name="maintenance.add")
    def add(a: int, b: int) -> int:
        return a + b

    assert add.apply(args=(2, 3), task_id="job-6").get() == 5
    assert store.tries == 4
    job_id, fields = store.updates[-1]
    assert (job_id, fields["state"], fields["result"]) == ("job-6", "succeeded", 5)
    assert "job job-6: Redis is away" in caplog.text


def test_a_retry_record_update_is_not_waited_for(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = Restarting(outage=1)
    monkeypatch.setattr(task_base, "_jobs", lambda: store)
    app = _app()

    @app.task(name="maintenance.add")
    def add(a: int, b: int) -> int:
        return a + b

    add.on_retry(RuntimeError("again"), "job-7", (), {}, None)
    assert store.tries == 1 and not store.updates
    assert "could not update job record job-7" in caplog.text
