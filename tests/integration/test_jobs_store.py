"""Job records on a real Redis: create, dedupe, read, update, cancel, expiry, waiting."""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import redis

from stockpred.infra.deferred_writes import DeferredWrites
from stockpred.jobs.records import DEDUPE_PREFIX, RUNNING_PREFIX, Job, JobStore, WorkerRun
from tests.support import RedisServer, wait_for


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


def test_a_late_start_or_progress_never_takes_a_finished_job_back(
    redis_client: redis.Redis,
) -> None:
    store = JobStore(redis_client, timedelta(days=7))
    job = store.create(kind="predict", task_name="inference.predict", queue="inference")
    assert store.update(job.id, state="succeeded", result={"ok": 1})
    assert not store.update(job.id, state="started")
    assert not store.update(job.id, state="progress", progress={"epoch": 9})
    loaded = store.get(job.id)
    assert loaded is not None and loaded.state == "succeeded" and loaded.progress is None


def test_a_start_sent_without_waiting_lands_before_the_next_update(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    client = redis_server.client()
    store = JobStore(client, timedelta(days=7), DeferredWrites(client))
    job = store.create(kind="predict", task_name="inference.predict", queue="inference")
    redis_client.script_flush()  # as after a Redis restart: the start must not need EVALSHA
    store.send_update(job.id, state="started")
    assert store.update(job.id, state="succeeded", result={"ok": 1})
    done = store.get(job.id)
    assert done is not None and done.state == "succeeded"
    assert done.started_at is not None and done.finished_at is not None
    assert done.started_at <= done.finished_at
    store.send_update(job.id, state="started")  # a duplicate start, late: ignored
    store.flush()
    again = store.get(job.id)
    assert again is not None and again.state == "succeeded"
    client.close()


def test_records_expire_after_the_ttl_from_their_last_change(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client, timedelta(seconds=100))
    job = store.create(kind="x", task_name="maintenance.x", queue="maintenance")
    assert 0 < redis_client.ttl(JobStore.key(job.id)) <= 100
    redis_client.expire(JobStore.key(job.id), 5)
    store.update(job.id, state="started")
    assert redis_client.ttl(JobStore.key(job.id)) > 5


def test_a_dedupe_key_returns_the_live_job_and_writes_nothing(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client, timedelta(days=7))

    def predict(job_id: str | None = None) -> Job:
        return store.create(
            kind="predict",
            task_name="inference.predict",
            queue="inference",
            job_id=job_id,
            dedupe_key="predict:DEDUP:1",
            dedupe_seconds=30,
        )

    first = predict()
    assert predict("other-id") == first and store.get("other-id") is None
    redis_client.delete(JobStore.key(first.id))  # its record expired: the key is taken over
    assert predict("third-id").id == "third-id" and store.get("third-id") is not None
    assert 0 < redis_client.ttl(DEDUPE_PREFIX + "predict:DEDUP:1") <= 30


def test_a_cancelled_job_never_stands_for_the_same_work(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client, timedelta(days=7))
    key = f"storage-monitor:{uuid.uuid4().hex}"

    def monitor(job_id: str) -> Job:
        return store.create(
            kind="storage-monitor",
            task_name="maintenance.monitor",
            queue="maintenance",
            job_id=job_id,
            dedupe_key=key,
            dedupe_seconds=30,
        )

    first = monitor(f"first-{key}")
    store.update(first.id, state="cancelled")
    second = monitor(f"second-{key}")
    assert second.id == f"second-{key}" and second.state == "queued"
    assert monitor(f"third-{key}") == second  # a live job still stands for it


def test_every_waiter_wakes_with_the_final_record(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client, timedelta(days=7))
    job = store.create(kind="predict", task_name="inference.predict", queue="inference")
    with ThreadPoolExecutor(3) as pool:
        waiters = [pool.submit(store.wait_finished, job.id, 10) for _ in range(3)]
        wait_for(
            lambda: redis_client.info("clients")["blocked_clients"] >= 3,
            5,
            what="three blocked waiters",
        )
        started = time.monotonic()
        store.update(job.id, state="succeeded", result={"price": 1.5, "note": 'a/b "q"'})
        woken = [w.result(timeout=5) for w in waiters]
    assert time.monotonic() - started < 2
    for found in woken:
        assert found is not None and found.state == "succeeded"
        assert found.result == {"price": 1.5, "note": 'a/b "q"'}
        assert found == store.get(job.id)
    late = store.wait_finished(job.id, 10)  # a waiter arriving after the end
    assert late == store.get(job.id)


def test_waiting_on_an_unfinished_job_returns_it_as_it_is_at_the_timeout(
    redis_client: redis.Redis,
) -> None:
    store = JobStore(redis_client, timedelta(days=7))
    job = store.create(kind="predict", task_name="inference.predict", queue="inference")
    store.update(job.id, state="started")
    found = store.wait_finished(job.id, 0.3)
    assert found is not None and found.state == "started"
    assert store.wait_finished(str(uuid.uuid4()), 0.1) is None


def test_a_restarted_node_fails_only_the_jobs_its_previous_run_left_running(
    redis_client: redis.Redis,
) -> None:
    store = JobStore(redis_client, timedelta(hours=1))
    node = f"training@{uuid.uuid4().hex[:8]}"
    old, new, elsewhere = (
        WorkerRun(node, "boot-1"),
        WorkerRun(node, "boot-2"),
        WorkerRun("x@y", "b"),
    )

    def started(worker: WorkerRun) -> str:
        job = store.create(kind="train", task_name="training.train", queue="training")
        store.update(job.id, state="started", worker=worker)
        return job.id

    lost, finished, current, other = started(old), started(old), started(new), started(elsewhere)
    store.update(finished, state="succeeded", result={"ok": True})
    assert redis_client.smembers(RUNNING_PREFIX + node) == {lost, current}
    # A job redelivered to another node after it ran here stays with that node.
    store.update(other, worker=WorkerRun(node, "boot-1"))
    store.update(other, state="progress", worker=elsewhere)

    assert store.fail_lost(new, {"kind": "worker_lost", "message": "gone"}) == [lost]
    failed = store.get(lost)
    assert failed is not None and failed.state == "failed" and failed.finished_at
    assert failed.error == {"kind": "worker_lost", "message": "gone"}
    assert store.wait_finished(lost, 1) == failed  # waiters wake up with it
    for job_id, state in ((finished, "succeeded"), (current, "started"), (other, "progress")):
        job = store.get(job_id)
        assert job is not None and job.state == state, job
    assert redis_client.smembers(RUNNING_PREFIX + node) == {current}
    assert store.worker_of(current) == new
    assert store.fail_lost(new, {"kind": "worker_lost"}) == []


def test_a_gone_incarnation_fails_only_its_own_jobs_and_running_boots_names_them(
    redis_client: redis.Redis,
) -> None:
    store = JobStore(redis_client, timedelta(hours=1))
    node = f"inference@{uuid.uuid4().hex[:8]}"
    gone, restarted = WorkerRun(node, "boot-1"), WorkerRun(node, "boot-2")

    def started(worker: WorkerRun) -> str:
        job = store.create(kind="predict", task_name="inference.predict", queue="inference")
        store.update(job.id, state="started", worker=worker)
        return job.id

    lost, current = started(gone), started(restarted)
    assert store.running_boots()[node] == {"boot-1", "boot-2"}
    assert store.fail_gone(gone, {"kind": "worker_lost", "message": "host gone"}) == [lost]
    failed, running = store.get(lost), store.get(current)
    assert failed is not None and failed.state == "failed"
    assert failed.error == {"kind": "worker_lost", "message": "host gone"}
    assert running is not None and running.state == "started"
    assert store.running_boots()[node] == {"boot-2"}
    assert store.fail_gone(gone, {"kind": "worker_lost"}) == []


def test_a_failed_job_never_stands_for_the_same_work(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client, timedelta(days=7))
    key = f"predict:{uuid.uuid4().hex}:1"

    def predict() -> Job:
        return store.create(
            kind="predict",
            task_name="inference.predict",
            queue="inference",
            dedupe_key=key,
            dedupe_seconds=30,
        )

    first = predict()
    assert predict() == first
    store.update(first.id, state="failed", error={"kind": "worker_lost", "message": "gone"})
    again = predict()
    assert again.id != first.id and again.state == "queued"


def test_recent_jobs_are_newest_first_and_a_damaged_record_is_left_out_and_logged(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    store = JobStore(redis_client, timedelta(days=7))
    first, damaged, last = (
        store.create(kind="backup", task_name="maintenance.backup", queue="maintenance")
        for _ in range(3)
    )
    redis_client.hset(JobStore.key(damaged.id), "progress", "{not json")
    with caplog.at_level(logging.WARNING, logger="stockpred.jobs.records"):
        listed = [job.id for job in store.recent(10_000)]
    mine = [job_id for job_id in listed if job_id in {first.id, damaged.id, last.id}]
    assert mine == [last.id, first.id]
    assert f"the record of job {damaged.id} is damaged" in caplog.text
    assert [job.id for job in store.recent(1)] == [last.id]
    assert len(store.recent(10_000, scan_cap=2)) <= 2
