"""Tasks of the `maintenance` queue: storage upkeep and checks."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from stockpred.paths import DataTree
from stockpred.queues import QueueName, hard_time_limit, soft_time_limit
from stockpred.settings import get_settings
from stockpred.storage.check import check_storage as run_storage_check

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
