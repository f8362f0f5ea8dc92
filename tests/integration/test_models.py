"""Training and inference through real workers with real TensorFlow, over the HTTP API."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from datetime import datetime, timedelta
from typing import Any

import psutil
import pytest
from celery import Celery
from flask.testing import FlaskClient

from stockpred.infra.counters import HitCounter
from stockpred.infra.redis_client import connect
from stockpred.jobs.records import JobStore
from stockpred.market.daily_cache import DailyCache
from stockpred.ml.prediction_store import cache_key
from stockpred.ml.registry import ModelRegistry
from stockpred.paths import DataTree
from stockpred.settings import Settings
from tests.contract import assert_conforms
from tests.support import BIN, wait_for
from web import create_app
from web.api.stats import LOADED_PREFIX

SYMBOL = "TSLA"


def registry(settings: Settings) -> ModelRegistry:
    return ModelRegistry(settings.ml_model_path, settings.scalers_path)


def job(api: FlaskClient, task_id: str) -> dict[str, Any]:
    body: dict[str, Any] = api.get(f"/api/v1/tasks/{task_id}").get_json()
    assert_conforms("/api/v1/tasks/{task_id}", "get", 200, body)
    return body


def finish(api: FlaskClient, task_id: str, timeout: float = 180) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = job(api, task_id)
        return body if body["state"] in {"succeeded", "failed", "cancelled"} else None

    return wait_for(done, timeout, interval=0.2, what=f"job {task_id}")


def _metric(api: FlaskClient, sample: str) -> float:
    """The value of one sample (name and labels as exposed) on the app's /metrics."""
    for line in api.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def train(api: FlaskClient, auth: dict[str, str], **body: Any) -> str:
    response = api.post(f"/api/v1/train/{SYMBOL}", json=body, headers=auth)
    assert response.status_code == 202, response.get_json()
    assert response.headers["Location"] == response.get_json()["status_url"]
    assert_conforms("/api/v1/train/{symbol}", "post", 202, response.get_json())
    return str(response.get_json()["task_id"])


@pytest.fixture(scope="module")
def first_version(api: FlaskClient, auth: dict[str, str], worker_settings: Settings) -> str:
    """A model trained through the real training worker."""
    if registry(worker_settings).current_version(SYMBOL) is None:  # unless another module trained
        assert api.get(f"/api/v1/predict/{SYMBOL}").status_code == 404
    done = finish(api, train(api, auth))
    assert done["state"] == "succeeded", done
    assert done["progress"]["epoch"] == done["progress"]["epochs"] == 2
    assert done["result"]["published"] is True
    version = registry(worker_settings).current_version(SYMBOL)
    assert version == done["result"]["version"]
    return version


def test_a_trained_model_predicts_with_its_skill_and_then_hits_the_cache(
    api: FlaskClient, first_version: str, worker_settings: Settings
) -> None:
    counter = HitCounter(connect(worker_settings), "prediction_cache")
    before = counter.counts()
    first = api.get(f"/api/v1/predict/{SYMBOL}?horizon=3")
    body = first.get_json()
    assert counter.counts() == {"hits": before["hits"], "misses": before["misses"] + 1}
    assert first.status_code == 200, body
    assert_conforms("/api/v1/predict/{symbol}", "get", 200, body)
    for key in (
        "symbol",
        "current_price",
        "predicted_price",
        "trading_signal",
        "confidence",
        "prediction_time",
        "model_version",
        "horizon",
        "predictions",
        "evaluation",
    ):
        assert key in body, key
    assert body["model_version"] == first_version and body["cached"] is False
    assert body["trading_signal"] in {"BUY", "SELL", "HOLD"}
    assert 0 <= body["confidence"] <= 1
    assert len(body["predictions"]) == 3
    low, high = body["predictions"][0]["interval"]
    assert low < body["predictions"][0]["price"] < high
    assert {"rmse", "naive_rmse", "skill", "direction_accuracy"} <= set(body["evaluation"])
    journal = DataTree.from_settings(worker_settings).predictions_daily

    def journaled() -> bool:  # the worker writes the line just after answering
        rows = [
            json.loads(line) for p in journal.glob("*.jsonl") for line in p.read_text().splitlines()
        ]
        return {**body, "cached": False} in [{**row, "cached": False} for row in rows]

    wait_for(journaled, 10, what="the prediction's journal line")
    hits = _metric(api, 'predictions_total{cached="true"}')
    fast = api.get(f"/api/v1/predict/{SYMBOL}?horizon=3")  # a hit: answered by web.fastpath
    spelled = api.get(f"/api/v1/predict/{SYMBOL}?horizon=3&async=false")  # by it too
    again = fast.get_json()
    assert_conforms("/api/v1/predict/{symbol}", "get", 200, again)
    assert again["cached"] is True and again["predicted_price"] == body["predicted_price"]
    assert fast.data == spelled.data
    assert sorted(fast.headers.keys()) == sorted(spelled.headers.keys())
    assert fast.headers["X-Cache"] == spelled.headers["X-Cache"] == "hit"
    assert _metric(api, 'predictions_total{cached="true"}') == hits + 2
    assert counter.counts() == {"hits": before["hits"] + 2, "misses": before["misses"] + 1}


def test_a_prediction_job_records_its_start_with_its_outcome(
    api: FlaskClient, first_version: str
) -> None:
    accepted = api.get(f"/api/v1/predict/{SYMBOL}?horizon=4&async=true")
    assert accepted.status_code == 202, accepted.get_json()
    done = finish(api, accepted.get_json()["task_id"])
    assert done["state"] == "succeeded" and done["result"]["horizon"] == 4
    created, started, finished = (
        datetime.fromisoformat(done[name]) for name in ("created_at", "started_at", "finished_at")
    )
    assert created <= started <= finished


def test_models_endpoints_show_versions_and_metrics(api: FlaskClient, first_version: str) -> None:
    listed = api.get("/api/v1/models").get_json()
    assert_conforms("/api/v1/models", "get", 200, listed)
    assert SYMBOL in [m["symbol"] for m in listed["models"]]
    detail = api.get(f"/api/v1/models/{SYMBOL}").get_json()
    assert_conforms("/api/v1/models/{symbol}", "get", 200, detail)
    assert detail["current"] == first_version
    assert detail["versions"][0]["evaluation"]["skill"] is not None
    assert api.get("/api/v1/models/ZZZZZZ").status_code == 404


def test_a_second_training_of_the_same_symbol_is_409_naming_the_running_job(
    api: FlaskClient, auth: dict[str, str], first_version: str
) -> None:
    running = train(api, auth, epochs=400)
    conflict = api.post(f"/api/v1/train/{SYMBOL}", json={}, headers=auth)
    assert conflict.status_code == 409
    assert_conforms("/api/v1/train/{symbol}", "post", 409, conflict.get_json())
    assert conflict.get_json()["task_id"] == running
    assert running in conflict.get_json()["detail"]
    wait_for(
        lambda: (job(api, running)["progress"] or {}).get("epoch", 0) >= 1,
        120,
        what="the first epoch",
    )
    cancel = api.post(f"/api/v1/tasks/{running}/cancel", headers=auth)
    assert cancel.status_code == 200, cancel.get_json()
    assert_conforms("/api/v1/tasks/{task_id}/cancel", "post", 200, cancel.get_json())
    ended = finish(api, running)
    assert ended["state"] == "cancelled"
    assert ended["progress"]["epoch"] < 400
    assert api.post(f"/api/v1/tasks/{running}/cancel", headers=auth).status_code == 409
    followed = train(api, auth)  # the lock was released
    assert finish(api, followed)["state"] == "succeeded"


def test_a_new_version_is_picked_up_without_restart_and_changes_the_cache_key(
    api: FlaskClient, auth: dict[str, str], worker_settings: Settings, first_version: str
) -> None:
    before = api.get(f"/api/v1/predict/{SYMBOL}").get_json()
    done = finish(api, train(api, auth, force=True))
    assert done["result"]["published"] and done["result"]["reason"] == "forced"
    newer = done["result"]["version"]
    after = api.get(f"/api/v1/predict/{SYMBOL}").get_json()
    assert after["model_version"] == newer != before["model_version"]
    assert after["cached"] is False
    rolled = api.post(
        f"/api/v1/models/{SYMBOL}/rollback", json={"version": before["model_version"]}, headers=auth
    )
    assert rolled.status_code == 200 and rolled.get_json()["current"] == before["model_version"]
    assert_conforms("/api/v1/models/{symbol}/rollback", "post", 200, rolled.get_json())
    assert (
        api.get(f"/api/v1/predict/{SYMBOL}").get_json()["model_version"] == before["model_version"]
    )


@pytest.mark.parametrize("damage", ["model", "scaler", "metadata"])
def test_a_damaged_version_is_a_clear_error_and_a_rollback_mends_it(
    api: FlaskClient,
    auth: dict[str, str],
    worker_settings: Settings,
    first_version: str,
    damage: str,
) -> None:
    reg = registry(worker_settings)
    good = reg.current_version(SYMBOL)
    assert good is not None
    dead = f"20991231T000000Z-{damage[:4]}"  # a copy of the good version, then damaged
    model_dir = worker_settings.ml_model_path / SYMBOL / dead
    scaler_dir = worker_settings.scalers_path / SYMBOL / dead
    shutil.copytree(worker_settings.ml_model_path / SYMBOL / good, model_dir)
    shutil.copytree(worker_settings.scalers_path / SYMBOL / good, scaler_dir)
    try:
        if damage == "model":
            keras = model_dir / "model.keras"
            keras.write_bytes(keras.read_bytes()[: keras.stat().st_size // 2])
        elif damage == "scaler":
            (scaler_dir / "scaler.joblib").write_bytes(b"\x80\x04garbage")
        else:
            (model_dir / "metadata.json").write_text("[]")
        reg.publish(SYMBOL, dead)
        # With the token: a 5xx answer to an anonymous request withholds the cause.
        response = api.get(f"/api/v1/predict/{SYMBOL}", headers=auth)
        body = response.get_json()
        assert response.status_code == 500, body
        assert_conforms("/api/v1/predict/{symbol}", "get", 500, body)
        assert body["error"] == "model unreadable" and dead in body["detail"]
        assert "rollback" in body["detail"]
        described = api.get(f"/api/v1/models/{SYMBOL}").get_json()
        assert_conforms("/api/v1/models/{symbol}", "get", 200, described)
        if damage == "metadata":
            row = next(v for v in described["versions"] if v["version"] == dead)
            assert "unreadable" in row["problem"]
            listed = api.get("/api/v1/models").get_json()
            assert_conforms("/api/v1/models", "get", 200, listed)
            assert (
                "unreadable"
                in next(m for m in listed["models"] if m["symbol"] == SYMBOL)["problem"]
            )
        rolled = api.post(f"/api/v1/models/{SYMBOL}/rollback", json={"version": good}, headers=auth)
        assert rolled.status_code == 200, rolled.get_json()
        again = api.get(f"/api/v1/predict/{SYMBOL}")
        assert again.status_code == 200 and again.get_json()["model_version"] == good
    finally:
        if reg.current_version(SYMBOL) != good:
            reg.publish(SYMBOL, good)
        shutil.rmtree(model_dir)
        shutil.rmtree(scaler_dir)


def test_an_unreadable_pointer_is_a_clear_error_and_a_rollback_replaces_it(
    api: FlaskClient, auth: dict[str, str], worker_settings: Settings, first_version: str
) -> None:
    reg = registry(worker_settings)
    good = reg.current_version(SYMBOL)
    pointer = worker_settings.ml_model_path / SYMBOL / "current"
    pointer.write_bytes(b"\xff\xfe\x00garbage")
    try:
        response = api.get(f"/api/v1/predict/{SYMBOL}")
        assert response.status_code == 500, response.get_json()
        assert response.get_json()["error"] == "model unreadable"
        assert api.get("/api/v1/models").status_code == 200
        assert api.get("/api/v1/stats").status_code == 200
        rolled = api.post(f"/api/v1/models/{SYMBOL}/rollback", json={"version": good}, headers=auth)
        assert rolled.status_code == 200, rolled.get_json()
        assert api.get(f"/api/v1/predict/{SYMBOL}").status_code == 200
    finally:
        if reg.current_version(SYMBOL) != good:
            assert good is not None
            reg.publish(SYMBOL, good)


def test_values_edited_in_redis_are_recomputed_skipped_or_named(
    api: FlaskClient, auth: dict[str, str], worker_settings: Settings, first_version: str
) -> None:
    client = connect(worker_settings)
    version = registry(worker_settings).current_version(SYMBOL)
    as_of = DailyCache(DataTree.from_settings(worker_settings).daily_cache).as_of(SYMBOL)
    assert version is not None and as_of is not None
    client.set(cache_key(SYMBOL, 2, version, as_of), "not json", ex=60)
    recomputed = api.get(f"/api/v1/predict/{SYMBOL}?horizon=2")
    assert recomputed.status_code == 200 and recomputed.get_json()["cached"] is False
    assert api.get(f"/api/v1/predict/{SYMBOL}?horizon=2").get_json()["cached"] is True
    client.set(LOADED_PREFIX + "edited-by-hand", "{nope", ex=60)
    stats = api.get("/api/v1/stats")
    assert stats.status_code == 200 and "edited-by-hand" not in stats.get_json()["model"]["loaded"]
    store = JobStore(client, timedelta(minutes=1))
    job_id = store.create(
        kind="predict", task_name="inference.predict", queue="inference", params={}
    ).id
    client.hset(store.key(job_id), "progress", "{half a record")
    damaged = api.get(f"/api/v1/tasks/{job_id}", headers=auth)  # the cause: for the operator
    assert damaged.status_code == 500
    assert_conforms("/api/v1/tasks/{task_id}", "get", 500, damaged.get_json())
    assert damaged.get_json()["error"] == "job record damaged"
    assert job_id in damaged.get_json()["detail"]
    client.close()


def _training_pool_child() -> psutil.Process:
    matching = [  # this checkout's workers only: other checkouts may run tests at the same time
        p
        for p in psutil.process_iter(["cmdline"])
        if "training@test" in (p.info["cmdline"] or [])
        and p.info["cmdline"][0].startswith(str(BIN))
    ]
    pids = {p.pid for p in matching}
    mains = [p for p in matching if p.ppid() not in pids]
    assert len(mains) == 1
    children = mains[0].children()
    assert len(children) == 1
    return children[0]


def test_a_killed_training_leaves_the_published_model_and_the_redelivered_run_completes(
    api: FlaskClient, auth: dict[str, str], worker_settings: Settings, first_version: str
) -> None:
    reg = registry(worker_settings)
    published = reg.current_version(SYMBOL)
    versions = reg.versions(SYMBOL)
    task_id = train(api, auth, epochs=30, force=True)
    wait_for(
        lambda: (job(api, task_id)["progress"] or {}).get("epoch", 0) >= 1,
        120,
        what="the first epoch",
    )
    child = _training_pool_child()
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert reg.current_version(SYMBOL) == published
    assert reg.versions(SYMBOL) == versions
    done = finish(api, task_id, timeout=240)
    assert done["state"] == "succeeded", done
    assert reg.current_version(SYMBOL) == done["result"]["version"] != published


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("get", "/api/v1/predict/ZZZZZZ", None, 404),
        ("get", "/api/v1/predict/TSLA?horizon=0", None, 400),
        ("get", "/api/v1/predict/TSLA?horizon=31", None, 400),
        ("get", "/api/v1/predict/TSLA?horizon=%C2%B2", None, 400),  # '²': str.isdigit says yes
        ("get", "/api/v1/predict/TSLA?days=%C2%B9", None, 400),
        ("get", "/api/v1/predict/BAD!!", None, 400),
        ("post", "/api/v1/train/TSLA", {"epochs": 0}, 400),
        ("post", "/api/v1/train/TSLA", {"epochs": "x"}, 400),
        ("post", "/api/v1/train/TSLA", {"force": "perhaps"}, 400),
        ("post", "/api/v1/models/ZZZZZZ/rollback", {}, 404),
        ("post", "/api/v1/tasks/nope-1/cancel", None, 404),
    ],
)
def test_bad_requests_get_clear_errors(
    api: FlaskClient,
    auth: dict[str, str],
    first_version: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
) -> None:
    response = getattr(api, method)(path, json=body, headers=auth)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]
    template = re.sub(r"/(ZZZZZZ|TSLA|BAD!!)(\?.*)?(?=/|$)", "/{symbol}", path)
    template = template.replace("/nope-1", "/{task_id}")
    assert_conforms(template, method, status, response.get_json())


def test_training_without_a_token_is_refused(api: FlaskClient) -> None:
    assert api.post(f"/api/v1/train/{SYMBOL}", json={}).status_code == 401


def test_stats_and_cache_clear_keep_the_original_shapes(
    api: FlaskClient, auth: dict[str, str], first_version: str
) -> None:
    api.get(f"/api/v1/predict/{SYMBOL}")
    stats = api.get("/api/v1/stats").get_json()
    assert_conforms("/api/v1/stats", "get", 200, stats)
    assert {"cache", "model", "system"} <= set(stats)
    assert {"hits", "misses", "hit_ratio", "size"} <= set(stats["cache"])
    assert SYMBOL in stats["model"]["models"]
    assert set(stats["system"]["queue_depths"]) == {"inference", "training", "maintenance"}
    cleared = api.post("/api/v1/cache/clear", json={"symbol": SYMBOL}, headers=auth).get_json()
    assert_conforms("/api/v1/cache/clear", "post", 200, cleared)
    assert {"message", "time"} <= set(cleared) and cleared["deleted"] >= 1
    assert api.get(f"/api/v1/predict/{SYMBOL}").get_json()["cached"] is False


def test_the_weekly_policy_queues_training_for_a_stale_model(
    api: FlaskClient, celery_workers: Celery, worker_settings: Settings, first_version: str
) -> None:
    reg = registry(worker_settings)
    current = reg.current(SYMBOL)
    assert current is not None
    stale = {**current.metadata, "trained_at": "2020-01-01T00:00:00+00:00"}
    (current.model_path.parent / "metadata.json").write_text(__import__("json").dumps(stale))
    outcome = celery_workers.send_task("maintenance.queue_stale_retraining").get(timeout=60)
    queued = {q["symbol"]: q for q in outcome["queued"]}
    assert SYMBOL in queued and "days ago" in queued[SYMBOL]["reason"]
    done = finish(api, queued[SYMBOL]["job_id"])
    assert done["state"] == "succeeded" and done["kind"] == "train"


def test_auto_train_answers_an_authenticated_request_with_a_training_job(
    celery_workers: Celery, worker_settings: Settings, auth: dict[str, str]
) -> None:

    app = create_app(
        {"STOCKPRED_SETTINGS": worker_settings.model_copy(update={"auto_train": True})}
    )
    client = app.test_client()
    try:
        response = client.get("/api/v1/predict/AAPL", headers=auth)
        assert response.status_code == 202, response.get_json()
        task_id = response.get_json()["task_id"]
        assert job(client, task_id)["kind"] == "train"
        client.post(f"/api/v1/tasks/{task_id}/cancel", headers=auth)
        assert finish(client, task_id)["state"] == "cancelled"
    finally:
        app.extensions["stockpred"].close()
