"""The workers' app plus one task that outlives its soft time limit (for the hard-limit tests)."""

from __future__ import annotations

import time

from celery.exceptions import SoftTimeLimitExceeded

from workers import app

__all__ = ["app", "outlive_soft_limit"]


@app.task(name="maintenance.outlive_soft_limit", acks_late=True)
def outlive_soft_limit(seconds: float) -> None:
    """Sleep `seconds`, swallowing the soft time limit as careless task code does."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            time.sleep(left)
        except SoftTimeLimitExceeded:
            continue
