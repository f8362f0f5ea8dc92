"""The per-symbol training lock on real Redis and a real training worker with a tiny TTL."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from stockpred.jobs.locks import claim, training_lock
from stockpred.jobs.records import JobStore
from stockpred.jobs.submit import submit
from stockpred.ops.provision import run_setup
from stockpred.settings import Settings, load_settings
from tests.conftest import SMALL_ML_CONFIG, celery_client, clean_environ
from tests.support import RedisServer, start_worker, stop_group, wait_for

LOCK_TTL = 2  # seconds: a training here takes several times longer


def test_renew_extends_the_owners_claim_takes_a_vanished_one_and_refuses_anothers(
    redis_client: redis.Redis,
) -> None:
    lock = training_lock(redis_client, f"R{uuid.uuid4().hex[:6].upper()}", 30)
    assert lock.acquire("job-1")
    redis_client.pexpire(lock.key, 500)
    assert lock.renew("job-1") == 1 and redis_client.pttl(lock.key) > 29_000
    redis_client.delete(lock.key)
    assert lock.renew("job-1") == 2 and lock.owner() == "job-1"
    redis_client.set(lock.key, "job-2")
    assert lock.renew("job-1") == 0 and lock.owner() == "job-2"


@pytest.fixture(scope="module")
def short_lock_worker() -> Iterator[tuple[Settings, redis.Redis]]:
    """A training worker with TRAINING_LOCK_TTL=2s on a Redis and data root of its own."""
    with tempfile.TemporaryDirectory(prefix="sp-tl-") as directory:
        server = RedisServer(Path(directory) / "redis")
        server.start()
        env = clean_environ()
        env.update(
            STOCKPRED_DATA_DIR=str(Path(directory) / "pd"),
            REDIS_URL=server.url,
            TRAINING_LOCK_TTL=f"{LOCK_TTL}s",
        )
        settings = load_settings(env)
        run_setup(settings)
        config = {**SMALL_ML_CONFIG, "epochs": 3}
        (settings.data_dir / "ml_config.json").write_text(json.dumps(config))
        settings.log_path.mkdir(parents=True, exist_ok=True)
        worker = start_worker("training", env, settings.log_path)
        client = server.client()
        try:
            yield settings, client
        finally:
            stop_group(worker)
            client.close()
            server.stop()


def test_a_training_longer_than_the_lock_ttl_keeps_its_lock_and_releases_it_at_the_end(
    short_lock_worker: tuple[Settings, redis.Redis],
) -> None:
    settings, client = short_lock_worker
    store = JobStore(client, timedelta(hours=1))
    symbol = "NVDA"
    job_id = str(uuid.uuid4())
    lock = training_lock(client, symbol, int(settings.job_ttl.total_seconds()))
    assert claim(lock, job_id, lambda _: True) is None
    submit(
        celery_client(settings).send_task,
        store,
        kind="train",
        task_name="training.train",
        kwargs={"symbol": symbol, "force": True},
        symbol=symbol,
        job_id=job_id,
        lock=lock,
    )
    assert client.ttl(lock.key) > 3600  # queued: the claim lives as long as its job record
    seen: list[tuple[float, str | None, int]] = []

    def finished() -> bool:
        job = store.get(job_id)
        assert job is not None
        if job.state in ("started", "progress"):
            seen.append((time.monotonic(), lock.owner(), int(client.pttl(lock.key))))
        return job.finished

    wait_for(finished, 300, interval=0.1, what="the training to finish")
    job = store.get(job_id)
    assert job is not None and job.state == "succeeded", job.error
    # From the worker's first renewal on (before it, the queued claim's TTL), to the end:
    cut = next(i for i, (_, _, ttl) in enumerate(seen) if ttl <= LOCK_TTL * 1000)
    running = seen[cut:-1]  # the last sample may fall between the release and "succeeded"
    assert running[-1][0] - running[0][0] > 2 * LOCK_TTL  # it outlived its TTL, held all along
    assert all(owner == job_id and 0 < ttl <= LOCK_TTL * 1000 for _, owner, ttl in running)
    assert lock.owner() is None  # released at the end
