"""A value planted in the prediction cache is served only if it is what a worker would write."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from stockpred.infra.counters import HitCounter
from stockpred.ml.cached_prediction import (
    CacheIdentity,
    InvalidCachedPrediction,
    parse_cached,
)
from stockpred.ml.prediction_store import cache_key
from stockpred.ml.registry import pointer_path
from stockpred.paths import DataTree
from stockpred.settings import Settings
from tests.support import RedisServer
from web import create_app
from web.metrics import web_metrics
from web.prediction_lookup import COUNTER_NAME

SYMBOL, HORIZON, VERSION, AS_OF = "NVDA", 2, "20260101T000000Z-ab12", "2026-01-02"
IDENTITY = CacheIdentity(SYMBOL, HORIZON, VERSION, AS_OF)


def worker_answer() -> dict[str, Any]:
    """A prediction in the shape stockpred.ml.predict writes to the cache."""
    return {
        "symbol": SYMBOL,
        "current_price": 100.0,
        "predicted_price": 102.5,
        "trading_signal": "BUY",
        "confidence": 0.61,
        "prediction_time": "2026-01-02T21:00:00Z",
        "model_version": VERSION,
        "horizon": HORIZON,
        "as_of": AS_OF,
        "data_source": "embedded",
        "predictions": [
            {"horizon": 1, "date": "2026-01-05", "price": 101.0, "interval": [99.0, 103.0]},
            {"horizon": 2, "date": "2026-01-06", "price": 102.5, "confidence": 0.61},
        ],
        "evaluation": {"rmse": 1.5, "skill": 0.1, "holdout_samples": 120},
        "interval_level": 0.8,
    }


def changed(path: tuple[Any, ...], value: Any) -> str:
    """The worker's answer, JSON-encoded, with the field at `path` set to `value`."""
    document = worker_answer()
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return json.dumps(document)


def without(field: str) -> str:
    document = worker_answer()
    del document[field]
    return json.dumps(document)


PLANTED = {
    "not json": "<script>alert(1)</script>",
    "not an object": json.dumps([worker_answer()]),
    "another symbol": changed(("symbol",), "TSLA"),
    "another horizon": changed(("horizon",), 1),
    "a bool horizon": changed(("horizon",), True),
    "another model version": changed(("model_version",), "v-planted"),
    "another last bar": changed(("as_of",), "2025-01-01"),
    "a price as text": changed(("predicted_price",), "102.5"),
    "NaN": json.dumps(worker_answer()).replace("102.5", "NaN", 1),
    "Infinity": json.dumps(worker_answer()).replace("100.0", "Infinity", 1),
    "a huge number": json.dumps(worker_answer()).replace("102.5", "1e999", 1),
    "an unknown signal": changed(("trading_signal",), "SELL EVERYTHING"),
    "confidence above 1": changed(("confidence",), 7),
    "a negative price": changed(("current_price",), -1),
    "no predictions": changed(("predictions",), []),
    "too many predictions": changed(("predictions",), worker_answer()["predictions"] * 2),
    "a bad forecast day": changed(("predictions", 0, "price"), None),
    "a bad interval": changed(("predictions", 0, "interval"), [1]),
    "a bad evaluation": changed(("evaluation", "rmse"), "low"),
    "a missing field": without("trading_signal"),
    "nested too deep": "[" * 50_000 + "]" * 50_000,
    "too long": json.dumps({**worker_answer(), "padding": "x" * 70_000}),
}


def test_what_a_worker_writes_passes() -> None:
    assert parse_cached(json.dumps(worker_answer()), IDENTITY) == worker_answer()
    assert parse_cached(json.dumps({**worker_answer(), "evaluation": None}), IDENTITY)


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_a_planted_value_is_refused(name: str) -> None:
    with pytest.raises(InvalidCachedPrediction):
        parse_cached(PLANTED[name], IDENTITY)


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    """A real redis-server no worker consumes from (a miss queues work nobody runs)."""
    with tempfile.TemporaryDirectory(prefix="sp-planted-") as directory:
        server = RedisServer(Path(directory))
        server.start()
        yield server
        server.stop()


@pytest.fixture
def app(settings: Settings, own_redis: RedisServer) -> Iterator[Flask]:
    """The web app on that Redis, with a published NVDA version and a last bar on disk."""
    tree = DataTree.from_settings(settings)
    pointer = pointer_path(tree.ml_models, SYMBOL)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.write_text(VERSION)
    tree.daily_cache.mkdir(parents=True, exist_ok=True)
    meta = {
        "symbol": SYMBOL,
        "source": "embedded",
        "fetched_at": "2026-01-02T22:00:00+00:00",
        "as_of": AS_OF,
        "first_date": "2020-01-02",
        "total_rows": 1500,
    }
    (tree.daily_cache / f"{SYMBOL}.meta.json").write_text(json.dumps(meta))
    on_redis = settings.model_copy(update={"redis_url": own_redis.url, "predict_wait": 0.2})
    flask_app = create_app({"STOCKPRED_SETTINGS": on_redis, "TESTING": True})
    yield flask_app
    flask_app.extensions["stockpred"].close()


def test_a_valid_cached_prediction_is_served_as_a_hit(app: Flask, own_redis: RedisServer) -> None:
    """The planting itself works: a worker's answer under the key is served from the cache."""
    key = cache_key(SYMBOL, HORIZON, VERSION, AS_OF)
    client = own_redis.client()
    client.set(key, json.dumps(worker_answer()), ex=60)
    client.close()
    answer = app.test_client().get(f"/api/v1/predict/{SYMBOL}?horizon={HORIZON}")
    assert answer.status_code == 200 and answer.headers["X-Cache"] == "hit"
    assert answer.get_json() == {**worker_answer(), "cached": True}


@pytest.mark.parametrize(
    "name", ["another symbol", "NaN", "not json", "a missing field", "another model version"]
)
def test_a_planted_cached_prediction_is_logged_counted_deleted_and_not_served(
    app: Flask, own_redis: RedisServer, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = cache_key(SYMBOL, HORIZON, VERSION, AS_OF)
    client = own_redis.client()
    client.set(key, PLANTED[name], ex=60)
    misses = HitCounter(client, COUNTER_NAME).counts()["misses"]
    refused = web_metrics().invalid_cached._value.get()
    with caplog.at_level(logging.WARNING, logger="web.prediction_lookup"):
        answer = app.test_client().get(f"/api/v1/predict/{SYMBOL}?horizon={HORIZON}")
    assert answer.status_code != 200, answer.get_data(as_text=True)
    assert answer.headers.get("X-Cache") != "hit"
    assert PLANTED[name][:40] not in answer.get_data(as_text=True)
    assert client.get(key) is None  # deleted: the next request recomputes
    assert HitCounter(client, COUNTER_NAME).counts()["misses"] == misses + 1
    assert web_metrics().invalid_cached._value.get() == refused + 1
    assert any(key in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)
    client.close()
