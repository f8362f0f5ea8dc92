"""The accuracy API over a real ledger, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from stockpred.ledger.database import create_ledger_engine
from stockpred.ledger.entries import Forecast
from stockpred.ledger.migrate import upgrade_database
from stockpred.ledger.scoring import score
from stockpred.ledger.store import ForecastLedger
from stockpred.settings import load_settings
from tests.contract import assert_conforms
from tests.postgres import PostgresServer
from web import create_app

SCORED_AT = datetime(2024, 4, 1, tzinfo=UTC)
# (as_of, point, naive = previous close, actual, interval): model errors 1, 2, 1; naive 2, 1, 2.
AAPL = [
    (date(2024, 1, 30), 101.0, 100.0, 102.0, (99.0, 103.0)),
    (date(2024, 1, 31), 103.0, 102.0, 101.0, (101.5, 104.0)),
    (date(2024, 2, 1), 100.0, 101.0, 99.0, (98.0, 101.0)),
]


def forecast(
    symbol: str, as_of: date, point: float, naive: float, interval: Any, **more: Any
) -> Forecast:
    lower, upper = interval
    return Forecast(
        symbol=symbol,
        as_of=as_of,
        target_date=as_of + timedelta(days=1),
        horizon=1,
        forecaster="lstm",
        model_version="v1",
        point=point,
        naive=naive,
        requested_at=datetime.combine(as_of, datetime.min.time(), UTC),
        lower=lower,
        upper=upper,
        level=0.8,
        **more,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def client(
    request: pytest.FixtureRequest, worker_env: dict[str, str], tmp_path: Path
) -> Iterator[FlaskClient]:
    """An app on a migrated ledger holding three scored AAPL forecasts and an unscored MSFT."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger' / 'forecasts.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(f"accuracy_{uuid.uuid4().hex[:12]}")
    settings = load_settings({**worker_env, "DATABASE_URL": url})
    upgrade_database(settings)
    engine = create_ledger_engine(url)
    ledger = ForecastLedger(engine)
    for as_of, point, naive, actual, interval in AAPL:
        stored = ledger.record(forecast("AAPL", as_of, point, naive, interval))
        ledger.record_scores(
            [score(stored, actual=actual, previous_close=naive, scored_at=SCORED_AT)]
        )
    ledger.record(forecast("MSFT", date(2024, 2, 1), 400.0, 401.0, (390.0, 410.0)))
    replayed = ledger.record(
        forecast("AAPL", date(2024, 1, 29), 99.0, 100.0, (98.0, 100.5), origin="backfill")
    )
    ledger.record_scores([score(replayed, actual=100.0, previous_close=100.0, scored_at=SCORED_AT)])
    engine.dispose()
    app: Flask = create_app({"STOCKPRED_SETTINGS": settings, "TESTING": True})
    yield app.test_client()
    app.extensions["stockpred"].close()


def get(client: FlaskClient, path: str, rule: str, status: int = 200) -> Any:
    response = client.get(path)
    body = response.get_json()
    assert response.status_code == status, body
    assert_conforms(rule, "get", status, body)
    return body


def test_accuracy_of_a_symbol_stands_beside_the_naive_forecast(client: FlaskClient) -> None:
    body = get(
        client,
        "/api/v1/predictions/accuracy/aapl?origin=live",
        "/api/v1/predictions/accuracy/{symbol}",
    )
    assert body["origin"] == "live"
    assert (body["symbol"], body["n"], body["horizon"]) == ("AAPL", 3, 1)
    assert body["model"]["mae"] == pytest.approx(4 / 3)
    assert body["naive"]["mae"] == pytest.approx(5 / 3)
    assert body["model"]["mase"] == pytest.approx(4 / 5) and body["naive"]["mase"] == 1.0
    assert body["model"]["direction_accuracy"] == pytest.approx(2 / 3)
    assert body["up_share"] == pytest.approx(1 / 3)
    assert (body["coverage"], body["coverage_n"]) == (pytest.approx(2 / 3), 3)
    assert body["diebold_mariano"]["n"] == 3 and 0 < body["diebold_mariano"]["p_value"] < 1
    assert body["forecasters"] == ["lstm"]
    windowed = get(
        client,
        "/api/v1/predictions/accuracy/AAPL?from=2024-02-02&to=2024-02-03",
        "/api/v1/predictions/accuracy/{symbol}",
    )
    assert windowed["n"] == 1 and windowed["window"] == {"from": "2024-02-02", "to": "2024-02-03"}
    assert windowed["diebold_mariano"] is None  # one day: undefined
    unscored = get(
        client, "/api/v1/predictions/accuracy/MSFT", "/api/v1/predictions/accuracy/{symbol}"
    )
    assert unscored["n"] == 0 and unscored["model"]["mae"] is None


def test_summary_pools_every_symbol_and_calibration_counts_by_month(client: FlaskClient) -> None:
    body = get(
        client,
        "/api/v1/predictions/accuracy/summary?origin=request",
        "/api/v1/predictions/accuracy/summary",
    )
    assert body["pooled"]["n"] == 3
    assert [row["symbol"] for row in body["symbols"]] == ["AAPL"]
    rows = get(
        client, "/api/v1/predictions/calibration?origin=live", "/api/v1/predictions/calibration"
    )["rows"]
    assert rows == [
        {"symbol": "AAPL", "month": "2024-01", "level": 0.8, "n": 1, "coverage": 1.0},
        {"symbol": "AAPL", "month": "2024-02", "level": 0.8, "n": 2, "coverage": 0.5},
    ]


def test_history_pages_newest_first_with_scores(client: FlaskClient) -> None:
    rule = "/api/v1/predictions/history/{symbol}"
    first = get(client, "/api/v1/predictions/history/AAPL?limit=2", rule)
    second = get(client, "/api/v1/predictions/history/AAPL?limit=2&offset=2", rule)
    days = [row["target_date"] for row in first["forecasts"] + second["forecasts"]]
    assert days == ["2024-02-02", "2024-02-01", "2024-01-31", "2024-01-30"]
    assert all(row["score"] is not None for row in first["forecasts"])
    msft = get(client, "/api/v1/predictions/history/MSFT", rule)["forecasts"]
    assert [row["score"] for row in msft] == [None]
    assert get(client, "/api/v1/predictions/history/AAPL?forecaster=drift", rule)["count"] == 0
    assert get(client, "/api/v1/predictions/history/AAPL", rule)["count"] == 4


def test_replayed_history_is_reported_apart_from_live_forecasts(client: FlaskClient) -> None:
    rule = "/api/v1/predictions/accuracy/{symbol}"
    everything = get(client, "/api/v1/predictions/accuracy/AAPL", rule)
    replayed = get(client, "/api/v1/predictions/accuracy/AAPL?origin=backfill", rule)
    live = get(client, "/api/v1/predictions/accuracy/AAPL?origin=live", rule)
    assert (everything["n"], replayed["n"], live["n"]) == (4, 1, 3)
    assert replayed["model"]["mae"] == pytest.approx(1.0) and replayed["origin"] == "backfill"
    history = get(
        client,
        "/api/v1/predictions/history/AAPL?origin=backfill",
        "/api/v1/predictions/history/{symbol}",
    )
    assert [row["origin"] for row in history["forecasts"]] == ["backfill"]
    refused = client.get("/api/v1/predictions/accuracy/AAPL?origin=replayed")
    assert refused.status_code == 400
    assert "origin must be one of backfill, daily, live, request" in refused.get_json()["detail"]


@pytest.mark.parametrize(
    "query",
    [
        "days=7&from=2024-01-01",
        "from=2024-02-02&to=2024-01-01",
        "from=yesterday",
        "horizon=0",
        "forecaster=LSTM!",
        "days=0",
    ],
)
def test_a_bad_window_or_filter_is_a_json_400(client: FlaskClient, query: str) -> None:
    get(
        client,
        f"/api/v1/predictions/accuracy/AAPL?{query}",
        "/api/v1/predictions/accuracy/{symbol}",
        400,
    )
