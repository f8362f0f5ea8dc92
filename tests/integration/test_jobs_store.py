"""Job records on a real Redis: create, read, update, cancelled stays cancelled, expiry."""

from __future__ import annotations

import uuid
from datetime import timedelta

import redis

from stockpred.jobs import JobStore


def test_a_record_round_trips_with_json_fields(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client, timedelta(days=7))
    job = store.create(
        kind="train",
        task_name="training.train",
        queue="training",
        symbol="NVDA",
        params={"epochs": 3},
    )
    loaded = store.get(job.id)
    assert loaded is not None
    assert (loaded.state, loaded.symbol, loaded.params) == ("queued", "NVDA", {"epochs": 3})
    assert store.update(job.id, state="progress", progress={"epoch": 1, "of": 3})
    assert store.update(job.id, state="succeeded", result={"version": "v1"})
    done = store.get(job.id)
    assert done is not None
    assert done.state == "succeeded"
    assert done.progress == {"epoch": 1, "of": 3}
    assert done.result == {"version": "v1"}
    assert done.finished_at is not None and done.finished


def test_an_unknown_id_is_none_and_updates_never_create_it(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client, timedelta(days=7))
    missing = str(uuid.uuid4())
    assert store.get(missing) is None
    assert not store.update(missing, state="started")
    assert store.get(missing) is None


def test_a_cancelled_job_stays_cancelled(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client, timedelta(days=7))
    job = store.create(kind="train", task_name="training.train", queue="training")
    assert store.update(job.id, state="cancelled")
    assert not store.update(job.id, state="started")
    loaded = store.get(job.id)
    assert loaded is not None and loaded.state == "cancelled"


def test_records_expire_after_the_ttl_from_their_last_change(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client, timedelta(seconds=100))
    job = store.create(kind="x", task_name="maintenance.x", queue="maintenance")
    assert 0 < redis_client.ttl(JobStore.key(job.id)) <= 100
    redis_client.expire(JobStore.key(job.id), 5)
    store.update(job.id, state="started")
    assert redis_client.ttl(JobStore.key(job.id)) > 5
