"""The concrete parts the web app talks to (settings, Redis, the Celery client, job records).

Chosen once in `create_app` and reached through `services()`; connections open lazily, per
gunicorn worker process, on first use.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import redis
from celery import Celery
from flask import current_app

import celeryconfig
from stockpred.infra.redis_client import connect
from stockpred.jobs.records import JobStore
from stockpred.paths import DataTree
from stockpred.settings import Settings
from web.prediction_lookup import PredictionLookup

EXTENSION_KEY = "stockpred"


@dataclass
class Services:
    """What a request handler may use; built by `create_app`, replaceable in tests."""

    settings: Settings
    started_at: float
    _redis: redis.Redis | None = field(default=None, repr=False)
    _celery: Celery | None = field(default=None, repr=False)

    @functools.cached_property
    def redis(self) -> redis.Redis:
        return self._redis or connect(self.settings)

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
    def prediction_lookup(self) -> PredictionLookup:
        return PredictionLookup(DataTree.from_settings(self.settings), self.redis)

    def close(self) -> None:
        """Close the connections opened so far (a worker exiting, a test ending)."""
        opened = vars(self)
        if "redis" in opened:
            self.redis.close()
        if "celery" in opened:
            self.celery.close()


def services() -> Services:
    """The current app's services."""
    found: Services = current_app.extensions[EXTENSION_KEY]
    return found
