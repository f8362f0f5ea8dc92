"""The ledger's jobs through the HTTP API and the real maintenance worker: scoring on demand."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from stockpred.ledger.database import engine_from_settings
from stockpred.ledger.entries import Forecast
from stockpred.ledger.store import ForecastLedger
from stockpred.market.factory import build_market_data
from stockpred.settings import Settings, load_settings
from tests.contract import assert_conforms
from tests.support import wait_for


def finish(api: FlaskClient, task_id: str, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"/api/v1/tasks/{task_id}").get_json()
        return job if job["state"] in {"succeeded", "failed", "cancelled"} else None

    return wait_for(done, timeout, interval=0.2, what=f"job {task_id}")


def test_scoring_is_refused_without_the_token(api: FlaskClient) -> None:
    response = api.post("/api/v1/predictions/score")
    assert response.status_code == 401
    assert_conforms("/api/v1/predictions/score", "post", 401, response.get_json())


def test_scoring_on_demand_scores_due_forecasts_once_through_the_worker(
    api: FlaskClient, auth: dict[str, str], worker_settings: Settings, tmp_path: Path
) -> None:
    embedded = load_settings(
        {"STOCKPRED_DATA_DIR": str(tmp_path / "data"), "STOCK_DATA_SOURCE": "embedded"}
    )
    closes = build_market_data(embedded).bars("MSFT")["close"]
    as_of, target = date(2013, 1, 14), date(2013, 1, 15)
    previous, actual = float(closes["2013-01-14"]), float(closes["2013-01-15"])
    engine = engine_from_settings(worker_settings)
    ledger = ForecastLedger(engine)
    stored = ledger.record(
        Forecast(
            symbol="MSFT",
            as_of=as_of,
            target_date=target,
            horizon=1,
            forecaster="lstm",
            model_version="scoring-test",
            point=previous * 1.02,
            naive=previous,
            requested_at=datetime(2013, 1, 14, 22, 0, tzinfo=UTC),
            lower=previous * 0.9,
            upper=previous * 1.1,
            level=0.8,
        )
    )
    response = api.post("/api/v1/predictions/score", headers=auth)
    assert response.status_code == 202, response.get_json()
    assert_conforms("/api/v1/predictions/score", "post", 202, response.get_json())
    done = finish(api, response.get_json()["task_id"])
    assert done["state"] == "succeeded", done
    assert done["queue"] == "maintenance"
    assert done["result"]["scored"] >= 1
    entry = ledger.get(stored.id)
    assert entry is not None and entry.score is not None
    assert (entry.score.actual, entry.score.previous_close) == (actual, previous)
    assert entry.score.abs_error == abs(previous * 1.02 - actual)
    assert entry.score.naive_abs_error == abs(previous - actual)
    assert entry.score.inside is (previous * 0.9 <= actual <= previous * 1.1)

    again = finish(api, api.post("/api/v1/predictions/score", headers=auth).get_json()["task_id"])
    assert again["state"] == "succeeded", again
    assert ledger.get(stored.id) == entry  # a score is written once
    engine.dispose()
