"""Tasks of the `training` queue: train a symbol's model, publish it if it is not worse."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from stockpred.infra.redis_client import process_client
from stockpred.jobs.errors import ErrorKind
from stockpred.jobs.locks import OwnedLock, training_lock
from stockpred.market.symbols import normalize_symbol
from stockpred.ml.training import TrainingCancelled, train_and_publish
from stockpred.telemetry.worker_metrics import worker_metrics
from tasks import context


class TrainingBusy(RuntimeError):
    """Another job is training this symbol."""

    kind = ErrorKind.TRAINING_BUSY


def _lock(symbol: str) -> OwnedLock:
    settings = context.settings()
    limit = int(settings.training_time_limit.total_seconds())
    return training_lock(process_client(settings), symbol, limit)


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
    lock = _lock(symbol)
    if not lock.acquire(job_id):
        raise TrainingBusy(f"{symbol} is being trained by job {lock.owner()}")
    store = context.jobs()
    try:
        frame, source = context.bars_with_source(symbol)

        def progress(epoch: int, total: int, logs: dict[str, float]) -> None:
            worker_metrics().training_epochs.labels(symbol).inc()
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

        def cancelled() -> bool:
            job = store.get(job_id)
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
        return {"symbol": symbol, "cancelled": True, "reason": str(exc)}
    finally:
        lock.release(job_id)
