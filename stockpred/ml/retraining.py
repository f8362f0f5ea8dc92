"""The weekly retraining: queue a training for every stale model, oldest first, within bounds.

Stale is the policy's word (`stockpred.ml.policy`: too old, too wrong, unreadable). Unreadable
versions and unknown training dates go first, then the oldest. Each job is submitted under its
symbol's training lock and within the training queue's bound (`QUEUE_MAX_TRAINING`): when the
queue is full the rest are left for a follow-up run (`deferred`; the caller's `follow_up`
schedules it), so hundreds of stale symbols never flood the queue or crowd out the API's
trainings, and none waits a week for the next scheduled run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from stockpred.jobs.locks import claim, training_lock
from stockpred.jobs.queue_bounds import QueueBounds, QueueFull
from stockpred.jobs.records import JobStore
from stockpred.jobs.submit import SendTask, submit
from stockpred.ml.config import MLConfig
from stockpred.ml.policy import retrain_reason
from stockpred.ml.registry import ModelRegistry, RegistryError

log = logging.getLogger(__name__)


def stale_models(registry: ModelRegistry, config: MLConfig, now: datetime) -> list[tuple[str, str]]:
    """(symbol, why) of every stale model, unreadable or undated first, then oldest first."""
    found: list[tuple[str, str, str]] = []
    for symbol in registry.symbols():
        try:
            info = registry.current(symbol)
        except RegistryError as exc:  # unreadable: retraining is what replaces it
            found.append(("", symbol, f"the current version is unreadable: {exc}"))
            continue
        metadata = info.metadata if info else {}
        reason = retrain_reason(metadata, config, now)
        if reason is not None:
            trained = metadata.get("trained_at")
            # ISO-8601 UTC timestamps sort as text; "" (unknown) sorts first.
            found.append((str(trained) if isinstance(trained, str) else "", symbol, reason))
    return [(symbol, reason) for _, symbol, reason in sorted(found)]


def queue_stale(
    send_task: SendTask,
    store: JobStore,
    *,
    registry: ModelRegistry,
    config: MLConfig,
    redis_client: Any,
    claim_seconds: int,
    now: datetime,
    bounds: QueueBounds | None = None,
    follow_up: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Submit a training job, under its symbol's lock, for each stale model while the training
    queue has room; return what was queued, skipped (already training) and deferred."""
    queued: list[dict[str, str]] = []
    skipped: dict[str, str] = {}
    stale = stale_models(registry, config, now)
    for position, (symbol, reason) in enumerate(stale):
        job_id = str(uuid.uuid4())
        lock = training_lock(redis_client, symbol, claim_seconds)  # a queued claim: JOB_TTL
        owner = claim(lock, job_id, lambda held: _running(store, held))
        if owner is not None:
            skipped[symbol] = f"job {owner} is already training it"
            continue
        try:
            submit(
                send_task,
                store,
                kind="train",
                task_name="training.train",
                kwargs={"symbol": symbol},
                symbol=symbol,
                job_id=job_id,
                lock=lock,
                bounds=bounds,
            )
        except QueueFull as exc:
            deferred = [s for s, _ in stale[position:]]
            log.warning("retraining: %s; %d stale models left for a follow-up", exc, len(deferred))
            if follow_up is not None:
                follow_up()
            return {"queued": queued, "skipped": skipped, "deferred": deferred}
        log.info("queued retraining of %s (job %s): %s", symbol, job_id, reason)
        queued.append({"symbol": symbol, "job_id": job_id, "reason": reason})
    return {"queued": queued, "skipped": skipped, "deferred": []}


def _running(store: JobStore, job_id: str) -> bool:
    job = store.get(job_id)
    return job is not None and not job.finished
