"""Issue 12, finding 4: no anonymous request starts a training, AUTO_TRAIN or not.

An uncached prediction for a symbol without a model answers 404 saying how to train; with
AUTO_TRAIN=true only a request carrying the API token starts the training. On a real Redis
(a database of its own: no session worker takes the job) and real files.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from flask import Flask

from stockpred.jobs.locks import training_lock
from stockpred.settings import Settings
from tests.contract import assert_conforms
from tests.support import RedisServer
from tests.unit.test_web import TOKEN
from web import create_app

SYMBOL = "AAPL"  # embedded data, no model in a fresh data root
FUZZ_DB = 7  # no worker consumes this database


@pytest.fixture
def auto_train_app(settings: Settings, redis_server: RedisServer) -> Iterator[Flask]:
    """The real app with AUTO_TRAIN on, a token, and its own Redis database."""
    if redis_server.proc is None:
        redis_server.start()
    url = redis_server.url.rsplit("/", 1)[0] + f"/{FUZZ_DB}"
    configured = settings.model_copy(
        update={"auto_train": True, "api_token": TOKEN, "redis_url": url}
    )
    app = create_app({"STOCKPRED_SETTINGS": configured, "TESTING": True})
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield app
    client.flushdb()
    client.close()
    app.extensions["stockpred"].close()


def _training_jobs(app: Flask) -> list[str]:
    """Ids of the training jobs recorded in the app's Redis."""
    svc = app.extensions["stockpred"]
    prefix = svc.jobs.key("")
    ids = [str(key)[len(prefix) :] for key in svc.redis.scan_iter(match=prefix + "*")]
    jobs = [svc.jobs.get(job_id) for job_id in ids]
    return [job.id for job in jobs if job is not None and job.kind == "train"]


def test_an_anonymous_prediction_never_starts_a_training(auto_train_app: Flask) -> None:
    response = auto_train_app.test_client().get(f"/api/v1/predict/{SYMBOL}")
    body = response.get_json()
    assert response.status_code == 404, body
    assert_conforms("/api/v1/predict/{symbol}", "get", 404, body)
    assert "Authorization: Bearer" in body["detail"]
    assert f"POST /api/v1/train/{SYMBOL}" in body["detail"]
    assert _training_jobs(auto_train_app) == []
    svc = auto_train_app.extensions["stockpred"]
    assert training_lock(svc.redis, SYMBOL, 60).owner() is None


def test_a_wrong_token_is_anonymous_too(auto_train_app: Flask) -> None:
    response = auto_train_app.test_client().get(
        f"/api/v1/predict/{SYMBOL}", headers={"Authorization": f"Bearer {TOKEN}x"}
    )
    assert response.status_code == 404
    assert _training_jobs(auto_train_app) == []


def test_an_authenticated_prediction_may_start_the_training(auto_train_app: Flask) -> None:
    client = auto_train_app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = client.get(f"/api/v1/predict/{SYMBOL}", headers=auth)
    body = response.get_json()
    assert response.status_code == 202, body
    assert_conforms("/api/v1/predict/{symbol}", "get", 202, body)
    assert body["kind"] == "train"
    assert _training_jobs(auto_train_app) == [body["task_id"]]
    cancelled = client.post(f"/api/v1/tasks/{body['task_id']}/cancel", headers=auth)
    assert cancelled.status_code == 200, cancelled.get_json()


def test_an_authenticated_prediction_during_a_training_answers_the_documented_409(
    auto_train_app: Flask,
) -> None:
    client = auto_train_app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    first = client.get(f"/api/v1/predict/{SYMBOL}", headers=auth).get_json()
    response = client.get(f"/api/v1/predict/{SYMBOL}", headers=auth)
    body = response.get_json()
    assert response.status_code == 409, body
    assert_conforms("/api/v1/predict/{symbol}", "get", 409, body)
    assert body["task_id"] == first["task_id"]
    client.post(f"/api/v1/tasks/{first['task_id']}/cancel", headers=auth)
