"""Jobs of workers that stopped answering are failed; those of answering workers are not.

Real Redis job records; the ping is a fake here (the real Celery ping, with a host killed, is
in tests/multihost).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import redis

from stockpred.jobs.lost_workers import fail_jobs_of_silent_workers
from stockpred.jobs.records import JobStore, WorkerRun


def _started(store: JobStore, worker: WorkerRun) -> str:
    job = store.create(kind="predict", task_name="inference.predict", queue="inference")
    store.update(job.id, state="started", worker=worker)
    return job.id


def test_only_the_jobs_of_a_node_silent_twice_are_failed(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client, timedelta(hours=1))
    tag = uuid.uuid4().hex[:8]
    dead, alive, flaky = (f"{name}@{tag}" for name in ("dead", "alive", "flaky"))
    jobs = {node: _started(store, WorkerRun(node, "boot")) for node in (dead, alive, flaky)}
    asked: list[list[str]] = []

    def ping(nodes: list[str]) -> list[str]:
        asked.append(nodes)
        # `flaky` misses the first ping only: a busy moment, not a lost host. The session's
        # other workers (shared Redis) answer.
        return [node for node in nodes if node != dead and (node != flaky or len(asked) > 1)]

    failed = fail_jobs_of_silent_workers(store, ping)
    assert failed == [jobs[dead]]
    lost = store.get(jobs[dead])
    assert lost is not None and lost.state == "failed" and lost.error is not None
    assert lost.error["kind"] == "worker_lost" and dead in lost.error["message"]
    for node in (alive, flaky):
        job = store.get(jobs[node])
        assert job is not None and job.state == "started"
    assert sorted(asked[1]) == sorted([dead, flaky])  # the second ping asks the silent only
    assert alive in asked[0]
    waiter = store.wait_finished(jobs[dead], 1)  # a waiting web request wakes with the failure
    assert waiter is not None and waiter.state == "failed"
