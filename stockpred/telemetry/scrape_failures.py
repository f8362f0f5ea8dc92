"""What a metrics collector does when a section of a scrape cannot be read: log it and count it.

A failed section leaves only its own families out of the scrape; the rest is still served.
"""

from __future__ import annotations

import functools
import logging

import redis
from prometheus_client import Counter
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)


@functools.cache
def scrape_failures() -> Counter:
    """Created once per process in the default registry."""
    return Counter(
        "stockpred_scrape_failures",
        "Sections of a /metrics scrape left out because they could not be read",
        ["section"],
    )


def scrape_failed(section: str, exc: BaseException) -> None:
    """Log one line about a section left out of this scrape, and count it."""
    if isinstance(exc, redis.RedisError | OSError):
        log.warning("metrics section %s left out of this scrape: Redis: %s", section, exc)
    elif isinstance(exc, DBAPIError):
        # The driver's message, without SQLAlchemy's statement and link: the database is away
        # or not migrated, not a bug in the collector.
        cause = str(exc.orig).strip() or type(exc.orig).__name__
        log.warning("metrics section %s left out of this scrape: the ledger: %s", section, cause)
    else:
        log.error("metrics section %s left out of this scrape", section, exc_info=exc)
    scrape_failures().labels(section).inc()
