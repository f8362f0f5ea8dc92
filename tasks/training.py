"""Tasks of the `training` queue: train a symbol's model, publish it if it is not worse."""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import shared_task

from stockpred.infra.redis_client import process_client
from stockpred.jobs.errors import ErrorKind
from stockpred.jobs.locks import OwnedLock, Renewal, claim, training_lock
from stockpred.market.symbols import normalize_symbol
from stockpred.ml.training import TrainingCancelled, train_and_publish
from stockpred.telemetry.worker_metrics import worker_metrics
from tasks import context

log = logging.getLogger(__name__)


class TrainingBusy(RuntimeError):
    """Another job is training this symbol."""

    kind = ErrorKind.TRAINING_BUSY


def _lock(symbol: str) -> OwnedLock:
    """The symbol's lock as a running training holds it: TRAINING_LOCK_TTL, renewed."""
    settings = context.settings()
    ttl = int(settings.training_lock_ttl.total_seconds())
    return training_lock(process_client(settings), symbol, ttl)


@shared_task(
    name="training.train",
    bind=True,
    acks_late=True,
    # Time limits: TRAINING_TIME_LIMIT and 90 % of it (celeryconfig.QueueTimeLimits).
)
def train(self: Any, symbol: str, epochs: int | None = None, force: bool = False) -> dict[str, Any]:
    """Train `symbol`; progress and cancellation go through the job record of this task id."""
    symbol = normalize_symbol(symbol)
    job_id = str(self.request.id)
    store = context.jobs()
    lock = _lock(symbol)
    # The submitter claimed the lock for this job; claim it again (it may have been freed, or
    # held by a job that has since finished), then keep it alive while the training runs.
    holder = claim(lock, job_id, lambda owner: _unfinished(store, owner))
    if holder is not None:
        raise TrainingBusy(f"{symbol} is being trained by job {holder}")
    with Renewal(lock, job_id) as renewal:
        return _train(store, renewal, symbol=symbol, job_id=job_id, epochs=epochs, force=force)


def _unfinished(store: Any, job_id: str) -> bool:
    job = store.get(job_id)
    return job is not None and not job.finished


def _train(
    store: Any, renewal: Renewal, *, symbol: str, job_id: str, epochs: int | None, force: bool
) -> dict[str, Any]:
    """Train and publish under the renewed lock; a lost lock stops it before it publishes."""
    try:
        frame, source = context.bars_with_source(symbol)

        # Progress and the cancel check ride out a Redis restart: a missed report is only a
        # stale progress bar, and the training must not die of it (the next epoch reports).
        def progress(epoch: int, total: int, logs: dict[str, float]) -> None:
            worker_metrics().training_epochs.labels(symbol).inc()
            try:
                store.update(
                    job_id,
                    state="progress",
                    progress={
                        "epoch": epoch,
                        "epochs": total,
                        "loss": logs.get("loss"),
                        "val_loss": logs.get("val_loss"),
                    },
                )
            except redis.RedisError as exc:
                log.warning("job %s: epoch %d of %d not reported (%s)", job_id, epoch, total, exc)

        def cancelled() -> bool:
            if renewal.lost:
                return True
            try:
                job = store.get(job_id)
            except redis.RedisError as exc:
                log.warning("job %s: could not read a cancel (%s); asking again", job_id, exc)
                return False
            return job is not None and job.state == "cancelled"

        settings = context.settings()
        result = train_and_publish(
            symbol,
            frame,
            config=context.ml_config(),
            registry=context.registry(),
            band=settings.buy_threshold - 1,
            epochs=epochs,
            force=force,
            progress=progress,
            should_stop=cancelled,
            data_source=source,
        )
        worker_metrics().training_duration.labels(symbol).observe(result.seconds)
        return result.to_dict()
    except TrainingCancelled as exc:
        if renewal.lost:
            raise TrainingBusy(
                f"{symbol}: this job lost its training lock to job {renewal.lock.owner()}; "
                "stopped without publishing"
            ) from None
        return {"symbol": symbol, "cancelled": True, "reason": str(exc)}
