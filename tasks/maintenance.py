"""Tasks of the `maintenance` queue: market-data refreshes and storage upkeep."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from celery import current_app, shared_task

from stockpred.locks import training_lock
from stockpred.market.errors import RateLimited, SourceUnavailable
from stockpred.market.factory import tracked_symbols
from stockpred.market.symbols import normalize_symbol
from stockpred.ml.policy import retrain_reason
from stockpred.paths import DataTree
from stockpred.queues import QueueName, hard_time_limit, soft_time_limit
from stockpred.redis_conn import process_client
from stockpred.settings import get_settings
from stockpred.storage.check import check_storage as run_storage_check
from tasks import context

log = logging.getLogger(__name__)
_QUEUE = QueueName.MAINTENANCE


def _limits() -> dict[str, int]:
    training = int(get_settings().training_time_limit.total_seconds())
    return {
        "time_limit": hard_time_limit(_QUEUE, training),
        "soft_time_limit": soft_time_limit(_QUEUE, training),
    }


@shared_task(name="maintenance.check_storage", acks_late=True, **_limits())
def check_storage() -> dict[str, Any]:
    """Check the persistent_data tree from the worker's side; log problems as errors."""
    report = run_storage_check(DataTree.from_settings(get_settings()))
    for problem in report.problems:
        log.error("storage check: %s", problem)
    summary = report.to_dict()
    summary.pop("directories")
    return summary


@shared_task(
    name="maintenance.refresh_prices",
    acks_late=True,
    autoretry_for=(RateLimited, SourceUnavailable),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=3,
    **_limits(),
)
def refresh_prices(symbol: str, force: bool = False) -> dict[str, Any]:
    """Fetch a symbol's new daily bars into its history and daily cache (no-op when fresh)."""
    return context.market().refresh(normalize_symbol(symbol), force=force).to_dict()


@shared_task(name="maintenance.queue_stale_retraining", acks_late=True, **_limits())
def queue_stale_retraining() -> dict[str, Any]:
    """Queue training for every model the retraining policy calls stale (age or MAPE)."""
    settings = get_settings()
    config = context.ml_config()
    registry = context.registry()
    store = context.jobs()
    now = datetime.now(UTC)
    queued, skipped = [], {}
    limit = int(settings.training_time_limit.total_seconds())
    for symbol in registry.symbols():
        info = registry.current(symbol)
        reason = retrain_reason(info.metadata if info else {}, config, now)
        if reason is None:
            continue
        job_id = str(uuid.uuid4())
        lock = training_lock(process_client(settings), symbol, limit)
        if not lock.acquire(job_id):
            skipped[symbol] = f"job {lock.owner()} is already training it"
            continue
        store.create(
            kind="train",
            task_name="training.train",
            queue=QueueName.TRAINING,
            symbol=symbol,
            params={"symbol": symbol, "reason": reason},
            job_id=job_id,
        )
        current_app.send_task("training.train", kwargs={"symbol": symbol}, task_id=job_id)
        log.info("queued retraining of %s (job %s): %s", symbol, job_id, reason)
        queued.append({"symbol": symbol, "job_id": job_id, "reason": reason})
    return {"queued": queued, "skipped": skipped}


@shared_task(name="maintenance.refresh_tracked_prices", acks_late=True, **_limits())
def refresh_tracked_prices() -> dict[str, Any]:
    """Queue a refresh of every symbol with stored prices or a model."""
    symbols = tracked_symbols(get_settings())
    for symbol in symbols:
        refresh_prices.delay(symbol)
    return {"queued": symbols}
