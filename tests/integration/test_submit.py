"""Submitting work on a real Redis to a broker that refuses: nothing stays queued or locked."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery import Celery

from stockpred.jobs.errors import ErrorKind
from stockpred.jobs.locks import training_lock
from stockpred.jobs.queue_bounds import QueueBounds
from stockpred.jobs.records import DEDUPE_PREFIX, JobStore
from stockpred.jobs.submit import QueueUnavailable, submit
from stockpred.ml.config import MLConfig
from stockpred.ml.registry import RegistryError
from stockpred.ml.retraining import queue_stale
from stockpred.queues import priority_lists
from tests.support import RedisServer, free_port


@pytest.fixture
def refusing_broker() -> Iterator[Celery]:
    """A Celery client whose broker is a closed port."""
    app = Celery("refusing", set_as_current=False)
    app.config_from_object("celeryconfig")
    url = f"redis://127.0.0.1:{free_port()}/0"
    app.conf.update(broker_url=url, result_backend=url)
    yield app
    app.close()


class StaleRegistry:
    """A registry with one model, trained long ago."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol

    def symbols(self) -> list[str]:
        return [self.symbol]

    def current(self, symbol: str) -> Any:
        return SimpleNamespace(metadata={"trained_at": "2020-01-01T00:00:00+00:00"})


def test_a_failed_publish_fails_the_record_forgets_the_dedupe_key_and_releases_the_lock(
    redis_client: redis.Redis, refusing_broker: Celery
) -> None:
    store = JobStore(redis_client, timedelta(minutes=5))
    symbol = f"S{uuid.uuid4().hex[:6].upper()}"
    job_id = str(uuid.uuid4())
    lock = training_lock(redis_client, symbol, 60)
    assert lock.acquire(job_id)
    dedupe = f"test:{job_id}"
    started = time.monotonic()
    with pytest.raises(QueueUnavailable):
        submit(
            refusing_broker.send_task,
            store,
            kind="train",
            task_name="training.train",
            kwargs={"symbol": symbol},
            symbol=symbol,
            job_id=job_id,
            dedupe_key=dedupe,
            lock=lock,
        )
    assert time.monotonic() - started < 15
    record = store.get(job_id)
    assert record is not None and record.state == "failed"
    assert record.error is not None and record.error["kind"] == ErrorKind.QUEUE_UNAVAILABLE
    assert lock.owner() is None
    assert not redis_client.exists(DEDUPE_PREFIX + dedupe)


def test_a_task_that_queues_training_leaves_nothing_queued_or_locked_when_publishing_fails(
    redis_client: redis.Redis, refusing_broker: Celery
) -> None:
    store = JobStore(redis_client, timedelta(minutes=5))
    symbol = f"S{uuid.uuid4().hex[:6].upper()}"
    with pytest.raises(QueueUnavailable) as failed:
        queue_stale(
            refusing_broker.send_task,
            store,
            registry=StaleRegistry(symbol),  # type: ignore[arg-type]
            config=MLConfig(),
            redis_client=redis_client,
            claim_seconds=60,
            now=datetime.now(UTC),
        )
    assert training_lock(redis_client, symbol, 60).owner() is None
    assert failed.value.job_id is not None
    record = store.get(failed.value.job_id)
    assert record is not None and record.symbol == symbol and record.kind == "train"
    assert record.state == "failed"


def test_a_deduplicated_submission_returns_the_earlier_job_and_releases_its_own_lock(
    redis_client: redis.Redis,
) -> None:
    store = JobStore(redis_client, timedelta(minutes=5))
    sent: list[str] = []

    def send_task(name: str, /, **options: Any) -> None:
        sent.append(options["task_id"])

    dedupe = f"test:{uuid.uuid4()}"
    first = submit(
        send_task, store, kind="k", task_name="maintenance.monitor", kwargs={}, dedupe_key=dedupe
    )
    lock = training_lock(redis_client, f"S{uuid.uuid4().hex[:6].upper()}", 60)
    second_id = str(uuid.uuid4())
    assert lock.acquire(second_id)
    again = submit(
        send_task,
        store,
        kind="k",
        task_name="maintenance.monitor",
        kwargs={},
        dedupe_key=dedupe,
        job_id=second_id,
        lock=lock,
    )
    assert again.id == first.id and sent == [first.id]
    assert lock.owner() is None


class ManyModels:
    """Models trained on the given dates (None: unreadable), under unique symbol names."""

    def __init__(self, trained: dict[str, str | None]) -> None:
        self.trained = trained

    def symbols(self) -> list[str]:
        return sorted(self.trained)

    def current(self, symbol: str) -> Any:
        when = self.trained[symbol]
        if when is None:
            raise RegistryError(f"{symbol}: metadata.json is not JSON")
        return SimpleNamespace(
            metadata={"trained_at": when, "evaluation": {"summary": {"mape": 1}}}
        )


def test_weekly_retraining_queues_the_oldest_first_within_the_training_queue_bound(
    redis_server: RedisServer,
) -> None:
    # A broker database of its own: the session's workers consume database 0.
    url = redis_server.url.removesuffix("/0") + "/7"
    client = redis.Redis.from_url(url, decode_responses=True)
    app = Celery("retraining-test", set_as_current=False)
    app.config_from_object("celeryconfig")
    app.conf.update(broker_url=url, result_backend=url)
    tag = uuid.uuid4().hex[:5].upper()
    trained = {
        f"A{tag}": "2025-06-01T00:00:00+00:00",
        f"B{tag}": "2024-01-01T00:00:00+00:00",
        f"C{tag}": None,
        f"D{tag}": "2026-11-28T00:00:00+00:00",  # fresh: not stale
        f"E{tag}": "2025-01-01T00:00:00+00:00",
    }
    store = JobStore(client, timedelta(minutes=5))
    follow_ups: list[str] = []

    def weekly_run() -> dict[str, Any]:
        return queue_stale(
            app.send_task,
            store,
            registry=ManyModels(trained),  # type: ignore[arg-type]
            config=MLConfig(),
            redis_client=client,
            claim_seconds=60,
            now=datetime(2026, 11, 30, tzinfo=UTC),
            bounds=QueueBounds(client, {"training": 2}),
            follow_up=lambda: follow_ups.append("queued"),
        )

    try:
        outcome = weekly_run()
        assert [q["symbol"] for q in outcome["queued"]] == [f"C{tag}", f"B{tag}"]
        assert "unreadable" in outcome["queued"][0]["reason"]
        assert outcome["deferred"] == [f"E{tag}", f"A{tag}"]
        assert follow_ups == ["queued"]  # the deferred ones get a run of their own
        waiting = sum(client.llen(name) for name in priority_lists("training"))
        assert waiting == 2
        # The deferred ones hold no lock: the next run takes them once there is room.
        assert training_lock(client, f"E{tag}", 60).owner() is None
        for name in priority_lists("training"):
            client.delete(name)
        later = weekly_run()
        # C and B are still claimed by their queued jobs, which have not finished.
        assert set(later["skipped"]) == {f"C{tag}", f"B{tag}"}
        assert [q["symbol"] for q in later["queued"]] == [f"E{tag}", f"A{tag}"]
        assert later["deferred"] == []
        assert follow_ups == ["queued"]  # nothing deferred: no further run
    finally:
        client.flushdb()
        client.close()
        app.close()
