"""The daily run through the HTTP API and real workers: every tracked symbol with a model gets a
next-session forecast in the ledger, and running again never changes a stored forecast."""

from __future__ import annotations

import time
from typing import Any

from flask.testing import FlaskClient

from stockpred.ledger.database import engine_from_settings
from stockpred.ledger.store import ForecastLedger
from stockpred.ledger.tracking import default_symbols
from stockpred.settings import Settings
from tests.contract import assert_conforms
from tests.integration.test_ledger_recording import SYMBOL, finish, forget, model_version
from tests.support import wait_for

__all__ = ["model_version"]  # the fixture, shared with the recording tests
# The ledger is written on the inference worker's background thread just after it answers.
WRITE_GRACE_SECONDS = 2.0


def run_daily(api: FlaskClient, auth: dict[str, str]) -> dict[str, Any]:
    response = api.post("/api/v1/predictions/daily-run", headers=auth)
    assert response.status_code == 202, response.get_json()
    assert_conforms("/api/v1/predictions/daily-run", "post", 202, response.get_json())
    done = finish(api, response.get_json()["task_id"])
    assert done["state"] == "succeeded", done
    return dict(done["result"])


def status(api: FlaskClient) -> dict[str, Any]:
    response = api.get("/api/v1/predictions/daily-status")
    assert response.status_code == 200, response.get_json()
    assert_conforms("/api/v1/predictions/daily-status", "get", 200, response.get_json())
    return dict(response.get_json())


def test_the_daily_run_needs_the_token(api: FlaskClient) -> None:
    response = api.post("/api/v1/predictions/daily-run")
    assert response.status_code == 401
    assert_conforms("/api/v1/predictions/daily-run", "post", 401, response.get_json())


def test_a_daily_run_forecasts_every_tracked_symbol_once_and_a_rerun_changes_nothing(
    api: FlaskClient, auth: dict[str, str], model_version: str, worker_settings: Settings
) -> None:
    engine = engine_from_settings(worker_settings)
    ledger = ForecastLedger(engine)
    forget(engine, SYMBOL)
    run = run_daily(api, auth)
    tracked = set(default_symbols(worker_settings))
    assert set(run["queued"]) | set(run["skipped"]) == tracked
    assert SYMBOL in run["queued"] and not set(run["queued"]) & set(run["skipped"])
    predicted = finish(api, run["queued"][SYMBOL])
    assert predicted["state"] == "succeeded", predicted
    answer = predicted["result"]
    assert answer["horizon"] == 1

    def stored() -> list[Any]:
        return [
            entry.stored
            for entry in ledger.history(SYMBOL, horizon=1)
            if entry.stored.forecast.as_of.isoformat() == answer["as_of"]
            and entry.stored.forecast.model_version == model_version
        ]

    (first,) = wait_for(lambda: stored() or None, 20, what="the daily forecast in the ledger")
    assert first.forecast.target_date.isoformat() == answer["predictions"][0]["date"]
    assert first.forecast.origin == "daily"
    shown = status(api)["run"]
    assert shown["run_id"] == run["run_id"]
    assert {"symbol": SYMBOL, "job_id": run["queued"][SYMBOL], "state": "succeeded"} in shown[
        "jobs"
    ]
    assert {entry["symbol"] for entry in shown["skipped"]} == set(run["skipped"])

    again = run_daily(api, auth)
    assert again["run_id"] != run["run_id"]
    repeated = finish(api, again["queued"][SYMBOL])
    assert repeated["state"] == "succeeded", repeated
    assert repeated["result"]["prediction_time"] >= answer["prediction_time"]
    time.sleep(WRITE_GRACE_SECONDS)
    assert stored() == [first]  # same row, same values: the first forecast is kept
    engine.dispose()
