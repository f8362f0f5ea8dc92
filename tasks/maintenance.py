"""Tasks of the `maintenance` queue: market-data refreshes and storage upkeep."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery import current_app, shared_task

from stockpred.infra.clock import utcnow
from stockpred.infra.redis_client import process_client
from stockpred.jobs.locks import training_lock
from stockpred.market.errors import RateLimited, SourceUnavailable
from stockpred.market.factory import tracked_symbols
from stockpred.market.symbols import normalize_symbol
from stockpred.ml.policy import retrain_reason
from stockpred.ml.registry import RegistryError
from stockpred.paths import DataTree
from stockpred.queues import QueueName, hard_time_limit, soft_time_limit
from stockpred.settings import get_settings
from stockpred.storage.check import check_storage as run_storage_check
from stockpred.storage.service import StorageBusy, StorageService
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
    now = utcnow()
    queued, skipped = [], {}
    limit = int(settings.training_time_limit.total_seconds())
    for symbol in registry.symbols():
        try:
            info = registry.current(symbol)
        except RegistryError as exc:  # unreadable: retraining is what replaces it
            reason: str | None = f"the current version is unreadable: {exc}"
        else:
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


def _storage() -> StorageService:
    settings = get_settings()
    return context._memo("storage", lambda: StorageService(settings, process_client(settings)))


def _skip_if_busy(run: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = run()
    except StorageBusy as exc:
        log.warning("skipped: %s", exc)
        return {"skipped": True, "reason": str(exc)}
    return result


@shared_task(name="maintenance.backup", acks_late=True, **_limits())
def backup(
    categories: list[str] | None = None,
    base: str | None = None,
    incremental: bool = False,
    encrypt: bool | None = None,
    scheduled: bool = False,
) -> dict[str, Any]:
    """Back up persistent_data (a scheduled run is skipped if another storage run is active)."""
    return _skip_if_busy(
        lambda: _storage().backup(
            categories=categories,
            base=base,
            incremental=incremental,
            encrypt=encrypt,
            scheduled=scheduled,
        )
    )


@shared_task(name="maintenance.restore", acks_late=True, **_limits())
def restore(
    backup: str | None = None, categories: list[str] | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Verify and restore a backup (default: the newest); dry_run lists what would change."""
    return _storage().restore(name=backup, categories=categories, dry_run=dry_run)


@shared_task(name="maintenance.verify_backup", acks_late=True, **_limits())
def verify_backup(backup: str | None = None) -> dict[str, Any]:
    """Check every checksum of a backup and the archives it depends on."""
    return _storage().verify(backup)


@shared_task(name="maintenance.cleanup", acks_late=True, **_limits())
def cleanup(dry_run: bool = False, scope: str = "all", scheduled: bool = False) -> dict[str, Any]:
    """Remove expired caches, logs, stored predictions and orphaned temp files."""
    return _skip_if_busy(
        lambda: _storage().cleanup(dry_run=dry_run, scope=scope, scheduled=scheduled)
    )


@shared_task(name="maintenance.monitor", acks_late=True, **_limits())
def monitor() -> dict[str, Any]:
    """Measure persistent_data and run the storage health checks; keep the report."""
    report = _storage().monitor()
    for check in report["checks"]:
        if not check["ok"]:
            log.error("storage check %s failed: %s", check["name"], check["detail"])
    return report
