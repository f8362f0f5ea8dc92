"""`/api/v1/historical` end to end through a real maintenance worker, offline (embedded data)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from celery import Celery
from flask import Flask

from stockpred.infra.counters import HitCounter
from stockpred.market.embedded import EmbeddedSource
from stockpred.settings import Settings
from tests.contract import assert_conforms
from tests.support import wait_for
from web import create_app


@pytest.fixture
def client_for(celery_workers: Celery) -> Iterator[Callable[[Settings], object]]:
    made: list[Flask] = []

    def build(settings: Settings) -> object:
        made.append(create_app({"STOCKPRED_SETTINGS": settings, "TESTING": True}))
        return made[-1].test_client()

    yield build
    for app in made:
        app.extensions["stockpred"].close()


@pytest.mark.parametrize("symbol", ["NVDA", "TSLA", "AAPL"])
def test_the_seed_tickers_answer_real_embedded_rows(
    client_for: Callable[[Settings], object], worker_settings: Settings, symbol: str
) -> None:
    client = client_for(worker_settings)
    response = client.get(f"/api/v1/historical/{symbol.lower()}?days=5")  # type: ignore[attr-defined]
    body = response.get_json()
    assert response.status_code == 200, body
    assert_conforms("/api/v1/historical/{symbol}", "get", 200, body)
    expected = EmbeddedSource().fetch(symbol).frame.tail(5)
    assert body["symbol"] == symbol and body["days"] == 5 and body["count"] == 5
    assert body["source"] == "embedded"
    assert body["as_of"] == expected.index[-1].strftime("%Y-%m-%d")
    assert [row["close"] for row in body["data"]] == pytest.approx(list(expected["close"]))
    row = body["data"][0]
    assert set(row) >= {"symbol", "timestamp", "open", "high", "low", "close", "volume"}


def test_a_repeated_request_is_a_cache_hit_answered_by_the_web(
    client_for: Callable[[Settings], object], worker_settings: Settings, redis_client: object
) -> None:
    client = client_for(worker_settings)
    client.get("/api/v1/historical/NVDA?days=3")  # type: ignore[attr-defined]
    counter = HitCounter(redis_client, "market_cache")  # type: ignore[arg-type]
    before = counter.counts()
    second = client.get("/api/v1/historical/NVDA?days=3").get_json()  # type: ignore[attr-defined]
    assert second["cached"] is True
    after = counter.counts()
    assert after["hits"] == before["hits"] + 1 and after["misses"] == before["misses"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/historical/INVALID!!", 400),
        ("/api/v1/historical/NVDA?days=0", 400),
        ("/api/v1/historical/NVDA?days=abc", 400),
        ("/api/v1/historical/NVDA?days=731", 400),
        ("/api/v1/historical/NVDA?days=-3", 400),
        ("/api/v1/historical/ZZZZZZ", 404),
    ],
)
def test_bad_input_gets_a_clear_error(
    client_for: Callable[[Settings], object], worker_settings: Settings, path: str, status: int
) -> None:
    response = client_for(worker_settings).get(path)  # type: ignore[attr-defined]
    body = response.get_json()
    assert response.status_code == status, body
    assert body["error"] and body["detail"]


def test_past_the_bounded_wait_the_answer_is_202_with_a_location_to_poll(
    client_for: Callable[[Settings], object], worker_settings: Settings
) -> None:
    client = client_for(worker_settings.model_copy(update={"historical_wait": 0.0}))
    # A symbol no other test of the session asks for: its history is not cached yet.
    response = client.get("/api/v1/historical/^IXIC?days=2")  # type: ignore[attr-defined]
    assert response.status_code == 202, response.get_json()  # type: ignore[attr-defined]
    location = response.headers["Location"]
    assert location == response.get_json()["status_url"]
    done = wait_for(lambda: client.get(location).get_json()["state"] == "succeeded", 30)  # type: ignore[attr-defined]
    assert done
    assert client.get("/api/v1/historical/^IXIC?days=2").status_code == 200  # type: ignore[attr-defined]
