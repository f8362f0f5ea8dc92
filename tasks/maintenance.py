"""Tasks of the `maintenance` queue: market-data refreshes, retraining policy, rollback, storage."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery import current_app, shared_task
from sqlalchemy.exc import SQLAlchemyError

from stockpred.infra.clock import utcnow
from stockpred.infra.redis_client import process_client
from stockpred.jobs.daily_runs import DailyRun, DailyRuns
from stockpred.jobs.errors import ErrorKind
from stockpred.jobs.lost_workers import fail_jobs_of_silent_workers
from stockpred.jobs.queue_bounds import bounds_for
from stockpred.jobs.submit import submit
from stockpred.ledger.recording import forecast_from_dict
from stockpred.ledger.service import score_due
from stockpred.ledger.tracking import TrackedSymbols, default_symbols
from stockpred.market.errors import RateLimited, SourceUnavailable
from stockpred.market.factory import tracked_symbols
from stockpred.market.symbols import normalize_symbol
from stockpred.ml.predict import NoModel
from stockpred.ml.prediction_store import PredictionCache
from stockpred.ml.registry import RegistryError
from stockpred.ml.retraining import queue_stale
from stockpred.queues import SCHEDULED_PRIORITY
from stockpred.storage.check import check_storage as run_storage_check
from stockpred.storage.service import StorageBusy, StorageService
from stockpred.telemetry.worker_metrics import worker_metrics
from tasks import context

log = logging.getLogger(__name__)
# Time limits: the maintenance queue's, for every task here (celeryconfig.QueueTimeLimits).


class RollbackRefused(RuntimeError):
    """The registry cannot publish the version asked for (unknown, or none older)."""

    kind = ErrorKind.ROLLBACK_REFUSED


@shared_task(name="maintenance.check_storage", acks_late=True)
def check_storage() -> dict[str, Any]:
    """Check the persistent_data tree from the worker's side; log problems as errors."""
    report = run_storage_check(context.data_tree())
    for problem in report.problems:
        log.error("storage check: %s", problem)
    summary = report.to_dict()
    summary.pop("directories")
    return summary


@shared_task(
    name="maintenance.record_forecasts",
    acks_late=True,
    autoretry_for=(SQLAlchemyError,),
    retry_backoff=15,
    retry_backoff_max=900,
    retry_jitter=True,
    max_retries=10,
)
def record_forecasts(forecasts: list[dict[str, Any]]) -> dict[str, Any]:
    """Record forecasts an inference worker could not write (safe twice: the ledger's key)."""
    made = [forecast_from_dict(values) for values in forecasts]
    ledger = context.ledger()
    ids = [ledger.record(forecast).id for forecast in made]
    worker_metrics().ledger_writes.labels("recorded").inc(len(ids))
    return {"recorded": len(ids), "ids": ids}


@shared_task(
    name="maintenance.score_forecasts",
    acks_late=True,
    autoretry_for=(SQLAlchemyError,),
    retry_backoff=30,
    retry_backoff_max=900,
    retry_jitter=True,
    max_retries=5,
)
def score_forecasts() -> dict[str, Any]:
    """Score every due forecast in the ledger against its realised close (safe twice)."""
    return score_due(ledger=context.ledger(), market=context.market()).to_dict()


DAILY_HORIZON = 1  # the next session


@shared_task(name="maintenance.daily_run", bind=True, acks_late=True)
def daily_run(self: Any) -> dict[str, Any]:
    """Queue a next-session prediction (origin "daily") of every tracked symbol with a model.

    Safe twice: a prediction still waiting for the same symbol is reused, and the ledger keeps
    the first forecast of each (symbol, as_of, target, horizon, forecaster, version).
    """
    settings = context.settings()
    symbols = TrackedSymbols(context.ledger().engine, default_symbols(settings)).symbols()
    registry = context.registry()
    run = DailyRun(
        run_id=self.request.id or str(uuid.uuid4()),
        started_at=utcnow().isoformat(),
        horizon=DAILY_HORIZON,
    )
    for symbol in symbols:
        if registry.current_version(symbol) is None:
            run.skipped[symbol] = f"no model: train one with POST /api/v1/train/{symbol}"
            continue
        job = submit(
            self.app.send_task,
            context.jobs(),
            kind="predict",
            task_name="inference.predict",
            kwargs={"symbol": symbol, "horizon": DAILY_HORIZON, "origin": "daily"},
            symbol=symbol,
            dedupe_key=f"daily-run:{symbol}",
            pending_only=True,
        )
        run.queued[symbol] = job.id
    DailyRuns(process_client(settings), settings.job_ttl).save(run)
    log.info(
        "daily run %s queued %d predictions, skipped %d symbols",
        run.run_id,
        len(run.queued),
        len(run.skipped),
    )
    return run.to_dict()


@shared_task(
    name="maintenance.refresh_prices",
    acks_late=True,
    autoretry_for=(RateLimited, SourceUnavailable),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=3,
)
def refresh_prices(symbol: str, force: bool = False) -> dict[str, Any]:
    """Fetch a symbol's new daily bars into its history and daily cache (no-op when fresh)."""
    return context.market().refresh(normalize_symbol(symbol), force=force).to_dict()


RETRAIN_FOLLOW_UP_SECONDS = 1800


@shared_task(name="maintenance.queue_stale_retraining", bind=True, acks_late=True)
def queue_stale_retraining(self: Any) -> dict[str, Any]:
    """Queue training for the models the retraining policy calls stale, oldest first, while the
    training queue has room; what does not fit waits for the next run."""
    settings = context.settings()
    client = process_client(settings)

    def follow_up() -> None:
        # Deferred models are taken by a run after the queue has drained some, not next week.
        self.app.send_task(
            self.name, countdown=RETRAIN_FOLLOW_UP_SECONDS, priority=SCHEDULED_PRIORITY
        )

    return queue_stale(
        self.app.send_task,
        context.jobs(),
        registry=context.registry(),
        config=context.ml_config(),
        redis_client=client,
        claim_seconds=int(settings.job_ttl.total_seconds()),
        now=utcnow(),
        bounds=bounds_for(client, settings),
        follow_up=follow_up,
    )


@shared_task(name="maintenance.refresh_tracked_prices", bind=True, acks_late=True)
def refresh_tracked_prices(self: Any) -> dict[str, Any]:
    """Queue a refresh of every symbol with stored prices or a model."""
    symbols = tracked_symbols(context.settings())
    store = context.jobs()
    for symbol in symbols:
        submit(
            self.app.send_task,
            store,
            kind="refresh_prices",
            task_name="maintenance.refresh_prices",
            kwargs={"symbol": symbol},
            symbol=symbol,
            dedupe_key=f"refresh_prices:{symbol}",
        )
    return {"queued": symbols}


@shared_task(name="maintenance.rollback_model", acks_late=True)
def rollback_model(
    symbol: str, version: str | None = None, from_version: str | None = None
) -> dict[str, Any]:
    """Publish an earlier version of a symbol's model and drop its cached predictions.

    Without `version`, the one before `from_version` (the current one when the caller asked):
    a redelivered run finds the pointer already moved and rolls back no further.
    """
    sym = normalize_symbol(symbol)
    registry = context.registry()
    previous = registry.current_version(sym)  # None too when the pointer is unreadable
    if previous is None and not registry.versions(sym):
        raise NoModel(f"{sym} has no trained model")
    if version is None and from_version is not None and previous != from_version:
        return {"symbol": sym, "current": previous, "previous": from_version}
    try:
        current = registry.rollback(sym, version)
    except RegistryError as exc:
        raise RollbackRefused(str(exc)) from None
    settings = context.settings()
    PredictionCache(process_client(settings), settings.ml_prediction_ttl).clear(sym)
    log.info("rolled %s back from %s to %s", sym, previous, current)
    return {"symbol": sym, "current": current, "previous": previous}


def _storage() -> StorageService:
    settings = context.settings()
    return context._memo("storage", lambda: StorageService(settings, process_client(settings)))


def _skip_if_busy(run: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = run()
    except StorageBusy as exc:
        log.warning("skipped: %s", exc)
        return {"skipped": True, "reason": str(exc)}
    return result


@shared_task(name="maintenance.backup", acks_late=True)
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


@shared_task(name="maintenance.restore", acks_late=True)
def restore(
    backup: str | None = None, categories: list[str] | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Verify and restore a backup (default: the newest); dry_run lists what would change."""
    return _storage().restore(name=backup, categories=categories, dry_run=dry_run)


@shared_task(name="maintenance.verify_backup", acks_late=True)
def verify_backup(backup: str | None = None) -> dict[str, Any]:
    """Check every checksum of a backup and the archives it depends on."""
    return _storage().verify(backup)


@shared_task(name="maintenance.cleanup", acks_late=True)
def cleanup(dry_run: bool = False, scope: str = "all", scheduled: bool = False) -> dict[str, Any]:
    """Remove expired caches, logs, stored predictions and orphaned temp files."""
    return _skip_if_busy(
        lambda: _storage().cleanup(dry_run=dry_run, scope=scope, scheduled=scheduled)
    )


# How long one ping waits for the nodes asked (a live worker's main process answers at once).
PING_TIMEOUT_SECONDS = 2.0


def _answering(nodes: list[str]) -> list[str]:
    """The nodes among `nodes` that answer Celery's ping."""
    replies = current_app.control.ping(
        destination=nodes, timeout=PING_TIMEOUT_SECONDS, limit=len(nodes)
    )
    return [node for reply in replies for node in reply]


@shared_task(name="maintenance.recover_lost_jobs", acks_late=True)
def recover_lost_jobs() -> dict[str, Any]:
    """Fail the running jobs of workers that no longer answer (beat, every LOST_WORKER_CHECK)."""
    return {"failed": fail_jobs_of_silent_workers(context.jobs(), _answering)}


@shared_task(name="maintenance.monitor", acks_late=True)
def monitor() -> dict[str, Any]:
    """Measure persistent_data and run the storage health checks; keep the report."""
    report = _storage().monitor()
    for check in report["checks"]:
        if not check["ok"]:
            log.error("storage check %s failed: %s", check["name"], check["detail"])
    return report
