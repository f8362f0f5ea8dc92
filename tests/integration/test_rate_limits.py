"""Rate limits on a real Redis: shared by every app on it, expiring, and failing open."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from stockpred.settings import Settings
from tests.support import RedisServer
from web import create_app
from web.admission import KEY_PREFIX


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server this test may stop."""
    with tempfile.TemporaryDirectory(prefix="sp-limits-") as directory:
        server = RedisServer(Path(directory))
        server.start()
        yield server
        server.stop()


def app_on(settings: Settings, server: RedisServer, **update: object) -> Flask:
    changed = settings.model_copy(update={"redis_url": server.url, **update})
    return create_app({"STOCKPRED_SETTINGS": changed, "TESTING": True})


def test_two_web_processes_share_one_budget_per_client_in_redis(
    settings: Settings, own_redis: RedisServer
) -> None:
    first = app_on(settings, own_redis, rate_limit_reads="3/minute")
    second = app_on(settings, own_redis, rate_limit_reads="3/minute")
    statuses = [app.test_client().get("/").status_code for app in (first, second, first, second)]
    assert statuses == [200, 200, 200, 429]
    refused = second.test_client().get("/")
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    client = own_redis.client()
    keys = client.keys(f"{KEY_PREFIX}:*")
    assert keys and all(0 < client.ttl(key) <= 60 for key in keys)
    client.close()
    for app in (first, second):
        app.extensions["stockpred"].close()


def test_with_redis_gone_requests_are_admitted_and_a_warning_is_logged(
    settings: Settings, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_on(settings, own_redis, rate_limit_reads="1/minute")
    client = app.test_client()
    assert client.get("/").status_code == 200
    own_redis.stop()
    with caplog.at_level(logging.WARNING, logger="web.admission"):
        statuses = [client.get("/").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]  # over the limit, but nobody can count it
    assert sum("rate limits not enforced" in r.getMessage() for r in caplog.records) == 1
    app.extensions["stockpred"].close()
