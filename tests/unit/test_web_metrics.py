"""The web's /metrics: its own metrics and the Redis facts, and what a failed Redis read does."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest

from stockpred.settings import Settings
from stockpred.telemetry.redis_facts import RedisFactsCollector
from stockpred.telemetry.scrape_failures import scrape_failures
from web import create_app
from web.services import Services


class DownRedis:
    """Every command fails as with a server that is not there."""

    def __getattr__(self, name: str) -> Any:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")


def test_a_failed_redis_read_is_logged_counted_and_the_rest_still_served(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    svc = Services(settings=settings, started_at=time.time(), _redis=DownRedis())  # type: ignore[arg-type]
    client = create_app({"STOCKPRED_SERVICES": svc, "TESTING": True}).test_client()
    failures = scrape_failures().labels("redis_facts")
    before = failures._value.get()
    with caplog.at_level(logging.WARNING):
        response = client.get("/metrics")
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "# TYPE predictions_total counter" in text  # the web's own metrics
    assert "cache_hits_total" not in text and "stockpred_queue_depth" not in text
    assert failures._value.get() == before + 1
    logged = [r.getMessage() for r in caplog.records if "redis_facts" in r.getMessage()]
    assert logged and "Connection refused" in logged[0]


def test_an_unexpected_collector_error_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> Any:
        raise KeyError("a bug")

    registry = CollectorRegistry()
    registry.register(RedisFactsCollector(broken, counters=("c",), key_prefix="p:"))
    with caplog.at_level(logging.ERROR):
        assert generate_latest(registry) == b""
    assert any(r.exc_info and "redis_facts" in r.getMessage() for r in caplog.records)
