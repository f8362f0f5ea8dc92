"""The concrete parts the web app talks to (settings, Redis, the Celery client, job records).

Chosen once in `create_app` and reached through `services()`; connections open lazily, per
gunicorn worker process, on first use.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from celery import Celery
from flask import current_app
from redis import Redis

import celeryconfig
from stockpred.infra.redis_client import connect
from stockpred.jobs.queue_bounds import QueueBounds, bounds_for
from stockpred.jobs.records import JobStore
from stockpred.paths import DataTree
from stockpred.settings import Settings
from web.prediction_lookup import PredictionLookup

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from web.admission import RateLimits

EXTENSION_KEY = "stockpred"


@dataclass
class Services:
    """What a request handler may use; built by `create_app`, replaceable in tests."""

    settings: Settings
    started_at: float
    _redis: Redis | None = field(default=None, repr=False)
    _celery: Celery | None = field(default=None, repr=False)
    _rate_limits: RateLimits | None = field(default=None, repr=False)

    @functools.cached_property
    def redis(self) -> Redis:
        return self._redis or connect(self.settings)

    @functools.cached_property
    def probe_redis(self) -> Redis:
        """A client that tries once: health, metrics facts and limits say "away" at once."""
        return self._redis or connect(self.settings, fail_fast=True)

    @functools.cached_property
    def celery(self) -> Celery:
        """A Celery client for sending tasks by name and control pings (no task code loaded)."""
        if self._celery is not None:
            return self._celery
        client = Celery("stockpred-web")
        client.config_from_object("celeryconfig")
        settings = self.settings
        client.add_defaults(lambda: celeryconfig.from_settings(settings))
        return client

    @functools.cached_property
    def jobs(self) -> JobStore:
        return JobStore(self.redis, self.settings.job_ttl)

    @functools.cached_property
    def ledger_engine(self) -> Engine:
        """The forecast ledger's database (connects on first use, in this process)."""
        # Deferred: SQLAlchemy loads only in a process that reads the ledger.
        from stockpred.ledger.database import engine_from_settings

        return engine_from_settings(self.settings)

    @functools.cached_property
    def prediction_lookup(self) -> PredictionLookup:
        return PredictionLookup(DataTree.from_settings(self.settings), self.redis)

    @functools.cached_property
    def rate_limits(self) -> RateLimits:
        # Deferred: web.admission imports web.metrics, which imports this module.
        from web.admission import RateLimits

        return self._rate_limits or RateLimits.on_redis(self.probe_redis, self.settings)

    @functools.cached_property
    def queue_bounds(self) -> QueueBounds:
        return bounds_for(self.redis, self.settings)

    def close(self) -> None:
        """Close the connections opened so far (a worker exiting, a test ending)."""
        opened = vars(self)
        if "redis" in opened:
            self.redis.close()
        if "probe_redis" in opened:
            self.probe_redis.close()
        if "celery" in opened:
            self.celery.close()
        if "ledger_engine" in opened:
            self.ledger_engine.dispose()


def services() -> Services:
    """The current app's services."""
    found: Services = current_app.extensions[EXTENSION_KEY]
    return found
