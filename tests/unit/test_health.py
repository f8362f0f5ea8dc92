"""The health check: storage read but never written, Redis memory, the worker ping."""

from __future__ import annotations

import shutil
from types import SimpleNamespace
from typing import Any, cast

import pytest

from stockpred.settings import Settings
from tests.unit.test_web import FakeRedis, make_app
from web import health
from web.services import Services


def test_health_writes_nothing_under_the_data_root(settings: Settings) -> None:
    before = sorted(settings.data_dir.rglob("*"))
    mtime = settings.data_dir.stat().st_mtime_ns
    response = make_app(settings).test_client().get("/api/v1/health")
    assert response.get_json()["services"]["storage"] == "up"
    assert sorted(settings.data_dir.rglob("*")) == before
    assert settings.data_dir.stat().st_mtime_ns == mtime, "a file was created and removed"


def test_a_missing_data_root_makes_the_service_unhealthy(settings: Settings) -> None:
    app = make_app(settings)
    shutil.rmtree(settings.data_dir)
    response = app.test_client().get("/api/v1/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["services"]["storage"] == "down"
    assert body["checks"]["storage"]["path"] == str(settings.data_dir)


class NearlyFullRedis(FakeRedis):
    """A server at 910 of its 1000 bytes of maxmemory."""

    def info(self, section: str) -> dict[str, Any]:
        return {"used_memory": 910, "maxmemory": 1000, "maxmemory_policy": "noeviction"}


def test_redis_memory_above_the_threshold_degrades_health_with_the_share(
    settings: Settings,
) -> None:
    app = make_app(settings.model_copy(update={"redis_memory_warn_percent": 90}))
    app.extensions["stockpred"]._redis = NearlyFullRedis()
    response = app.test_client().get("/api/v1/health")
    body = response.get_json()
    assert response.status_code == 206, body
    assert body["services"]["redis"] == "memory_high"
    assert body["checks"]["redis"]["warning"].startswith("Redis memory at 91% of maxmemory")


def test_redis_memory_below_the_threshold_is_healthy(settings: Settings) -> None:
    app = make_app(settings.model_copy(update={"redis_memory_warn_percent": 95}))
    app.extensions["stockpred"]._redis = NearlyFullRedis()
    body = app.test_client().get("/api/v1/health").get_json()
    assert body["status"] == "healthy", body
    assert body["checks"]["redis"]["memory_percent"] == 91.0


class FlakyControl:
    """A Celery control whose first broadcast goes out on a broker connection Redis closed."""

    def __init__(self, error: Exception) -> None:
        self.error: Exception | None = error
        self.calls = 0

    def inspect(self, timeout: float) -> FlakyControl:
        return self

    def active_queues(self) -> dict[str, list[dict[str, str]]]:
        self.calls += 1
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return {"inference@h": [{"name": "inference"}], "training@h": [{"name": "training"}]}


def test_the_worker_ping_is_asked_again_once_after_a_broken_broker_connection(
    settings: Settings,
) -> None:
    control = FlakyControl(BrokenPipeError(32, "Broken pipe"))
    services = SimpleNamespace(settings=settings, celery=SimpleNamespace(control=control))
    queues = health._worker_queues(cast(Services, services))
    assert control.calls == 2
    assert queues["inference"] == ["inference@h"] and queues["maintenance"] == []


def test_a_worker_ping_failing_for_another_reason_is_not_asked_again(settings: Settings) -> None:
    control = FlakyControl(ValueError("bad reply"))
    services = SimpleNamespace(settings=settings, celery=SimpleNamespace(control=control))
    with pytest.raises(ValueError):
        health._worker_queues(cast(Services, services))
    assert control.calls == 1
