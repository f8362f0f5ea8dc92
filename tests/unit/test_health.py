"""The health check's storage part reads the data root and never writes into it."""

from __future__ import annotations

import shutil

from stockpred.settings import Settings
from tests.unit.test_web import make_app


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
