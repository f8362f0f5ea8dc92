"""Storage through the real maintenance worker, and a restore under live prediction traffic."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask.testing import FlaskClient

from stockpred.ml.registry import ModelRegistry
from stockpred.settings import Settings
from tests.support import wait_for
from web import create_app

SYMBOL = "TSLA"


def run_job(
    api: FlaskClient, auth: dict[str, str], path: str, body: dict[str, Any], timeout: float = 180
) -> dict[str, Any]:
    response = api.post(path, json=body, headers=auth)
    assert response.status_code == 202, response.get_json()
    task_id = response.get_json()["task_id"]

    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"/api/v1/tasks/{task_id}").get_json()
        return job if job["state"] in {"succeeded", "failed"} else None

    job = wait_for(done, timeout, interval=0.2, what=f"{path} job")
    assert job["state"] == "succeeded", job
    result: dict[str, Any] = job["result"]
    return result


@pytest.fixture(scope="module")
def model_version(api: FlaskClient, auth: dict[str, str], worker_settings: Settings) -> str:
    """TSLA has a published model (trained through the worker if no earlier test made one)."""
    registry = ModelRegistry(worker_settings.ml_model_path, worker_settings.scalers_path)
    if registry.current_version(SYMBOL) is None:
        run_job(api, auth, f"/api/v1/train/{SYMBOL}", {})
    version = registry.current_version(SYMBOL)
    assert version is not None
    return version


def test_a_queued_backup_appears_in_the_history(
    api: FlaskClient, auth: dict[str, str], model_version: str
) -> None:
    result = run_job(api, auth, "/api/v1/storage/backup", {"categories": ["models", "config"]})
    assert result["kind"] == "full" and result["files"] >= 4
    history = api.get("/api/v1/storage/backup").get_json()
    assert history["backups"][0]["name"] == result["name"]
    assert history["keep"] == 10


def test_the_redis_of_another_tree_is_skipped_with_a_reason(
    api: FlaskClient, auth: dict[str, str], model_version: str
) -> None:
    result = run_job(api, auth, "/api/v1/storage/backup", {"categories": ["redis"]})
    assert "outside this data tree" in result["skipped"]["redis"]


def test_restore_under_live_traffic_fails_no_request_and_switches_the_model(
    api: FlaskClient, auth: dict[str, str], worker_settings: Settings, model_version: str
) -> None:
    registry = ModelRegistry(worker_settings.ml_model_path, worker_settings.scalers_path)
    saved = run_job(api, auth, "/api/v1/storage/backup", {"categories": ["models"]})
    newer = run_job(api, auth, f"/api/v1/train/{SYMBOL}", {"force": True})["version"]
    assert registry.current_version(SYMBOL) == newer != model_version
    statuses: list[int] = []
    versions: list[str] = []
    stop = threading.Event()
    app = create_app({"STOCKPRED_SETTINGS": worker_settings, "TESTING": True})
    traffic = app.test_client()

    def hammer() -> None:
        while not stop.is_set():
            response = traffic.get(f"/api/v1/predict/{SYMBOL}")
            statuses.append(response.status_code)
            if response.status_code == 200:
                versions.append(response.get_json()["model_version"])

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        wait_for(lambda: len(statuses) >= 3, 60, what="traffic before the restore")
        restored = run_job(
            api,
            auth,
            "/api/v1/storage/restore",
            {"backup": saved["name"], "categories": ["models"]},
        )
        assert restored["safety_backup"]
        wait_for(
            lambda: versions and versions[-1] == model_version,
            60,
            what="predictions from the restored model",
        )
    finally:
        stop.set()
        thread.join(30)
        app.extensions["stockpred"].close()
    assert registry.current_version(SYMBOL) == model_version
    assert set(statuses) == {200}, statuses
    assert newer in versions and versions[-1] == model_version


def test_cleanup_and_verify_run_on_the_worker(
    api: FlaskClient, auth: dict[str, str], model_version: str
) -> None:
    dry = run_job(api, auth, "/api/v1/storage/cleanup", {"dry_run": True})
    assert dry["dry_run"] is True and "bytes_freed" in dry
    verified = run_job(api, auth, "/api/v1/storage/verify", {})
    assert verified["ok"] is True
    history = {b["name"]: b for b in api.get("/api/v1/storage/backup").get_json()["backups"]}
    assert history[verified["name"]]["verified_at"]


def test_status_runs_the_monitor_and_reports_real_redis_persistence(
    api: FlaskClient, model_version: str
) -> None:
    report = api.get("/api/v1/storage/status?refresh=true").get_json()
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["redis_persistence"]["ok"], checks["redis_persistence"]
    assert checks["backup_fresh"]["ok"] and checks["models_metadata"]["ok"]
    assert api.get("/api/v1/storage/status").get_json()["generated_at"] == report["generated_at"]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/v1/storage/restore", {"backup": "stock_prediction_backup_19990101_000000"}, 404),
        ("/api/v1/storage/restore", {"backup": "../../etc/passwd"}, 400),
        ("/api/v1/storage/restore", {"categories": ["everything"]}, 400),
        ("/api/v1/storage/backup", {"categories": "models"}, 400),
        ("/api/v1/storage/backup", {"encrypt": True}, 400),
        ("/api/v1/storage/cleanup", {"scope": "disk"}, 400),
        ("/api/v1/storage/cleanup", {"dry_run": "maybe"}, 400),
    ],
)
def test_bad_storage_requests_are_refused_clearly(
    api: FlaskClient, auth: dict[str, str], path: str, body: dict[str, Any], status: int
) -> None:
    response = api.post(path, json=body, headers=auth)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["detail"]


def test_storage_mutations_need_the_token(api: FlaskClient) -> None:
    for path in ("/api/v1/storage/backup", "/api/v1/storage/restore", "/api/v1/storage/cleanup"):
        assert api.post(path, json={}).status_code == 401
