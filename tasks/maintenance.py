"""Tasks of the `maintenance` queue: market-data refreshes and storage upkeep."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from stockpred.market.errors import RateLimited, SourceUnavailable
from stockpred.market.factory import tracked_symbols
from stockpred.market.symbols import normalize_symbol
from stockpred.paths import DataTree
from stockpred.queues import QueueName, hard_time_limit, soft_time_limit
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


@shared_task(name="maintenance.refresh_tracked_prices", acks_late=True, **_limits())
def refresh_tracked_prices() -> dict[str, Any]:
    """Queue a refresh of every symbol with stored prices or a model."""
    symbols = tracked_symbols(get_settings())
    for symbol in symbols:
        refresh_prices.delay(symbol)
    return {"queued": symbols}
