"""Recording computed forecasts: through the real inference worker into the ledger, and never
failing a prediction (a failed write on a real SQLite file is logged, counted and deferred; the
deferred forecasts land once the database is ready)."""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Engine, delete, select

from stockpred.ledger import migrate
from stockpred.ledger.database import (
    create_ledger_engine,
    engine_from_settings,
    write_transaction,
)
from stockpred.ledger.entries import LedgerEntry
from stockpred.ledger.recorder import ForecastRecorder
from stockpred.ledger.recording import forecast_from_dict, forecasts_of
from stockpred.ledger.schema import forecasts, scores
from stockpred.ledger.store import ForecastLedger
from stockpred.ml.registry import ModelRegistry
from stockpred.settings import Settings
from tests.support import wait_for
from tests.unit.ledger.test_recording import result

SYMBOL = "TSLA"


def counter() -> Counter:
    return Counter("forecasts", "test", ["outcome"], registry=CollectorRegistry())


def count(outcomes: Counter, outcome: str) -> float:
    return outcomes.labels(outcome)._value.get()


def test_a_result_lands_in_the_ledger_once_per_horizon_row(tmp_path: Path) -> None:
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'forecasts.db'}")
    migrate.upgrade(engine)
    outcomes = counter()
    recorder = ForecastRecorder(lambda: ForecastLedger(engine), lambda _: None, outcomes)
    assert recorder.record_result(result()) == 2
    assert recorder.record_result(result()) == 2  # the same forecasts: stored once
    rows = ForecastLedger(engine).history("AAPL")
    assert [row.stored.forecast.horizon for row in rows] == [2, 1]
    assert count(outcomes, "recorded") == 4
    engine.dispose()


def test_a_failed_write_is_logged_counted_and_deferred_then_lands(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'forecasts.db'}")  # not migrated
    deferred: list[list[dict[str, Any]]] = []
    outcomes = counter()
    recorder = ForecastRecorder(lambda: ForecastLedger(engine), deferred.append, outcomes)
    with caplog.at_level(logging.WARNING, "stockpred.ledger.recorder"):
        assert recorder.record_result(result()) == 0
    assert "2 forecasts of AAPL as of 2024-03-04 failed, deferred" in caplog.text
    assert count(outcomes, "failed") == count(outcomes, "deferred") == 2
    (batch,) = deferred
    migrate.upgrade(engine)  # the database is back: the follow-up task's work
    ledger = ForecastLedger(engine)
    for values in batch:
        ledger.record(forecast_from_dict(values))
    assert ledger.counts().forecasts == 2
    engine.dispose()


def test_forecasts_that_cannot_be_deferred_are_counted_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'forecasts.db'}")

    def broker_down(_: list[dict[str, Any]]) -> None:
        raise ConnectionError("broker down")

    outcomes = counter()
    recorder = ForecastRecorder(lambda: ForecastLedger(engine), broker_down, outcomes)
    with caplog.at_level(logging.WARNING, "stockpred.ledger.recorder"):
        recorder.record_result(result())
    assert "could not defer 2 forecasts of AAPL" in caplog.text
    assert count(outcomes, "lost") == 2 and count(outcomes, "deferred") == 0
    engine.dispose()


def test_a_malformed_result_is_counted_refused_and_never_deferred(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deferred: list[Any] = []
    outcomes = counter()

    def no_ledger() -> ForecastLedger:
        raise AssertionError("a refused result needs no database")

    recorder = ForecastRecorder(no_ledger, deferred.append, outcomes)
    with caplog.at_level(logging.ERROR, "stockpred.ledger.recorder"):
        assert recorder.record_result(result(as_of="yesterday")) == 0
    assert "not recorded in the ledger" in caplog.text
    assert count(outcomes, "refused") == 1 and not deferred


def finish(api: FlaskClient, task_id: str, timeout: float = 180) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"/api/v1/tasks/{task_id}").get_json()
        return job if job["state"] in {"succeeded", "failed", "cancelled"} else None

    return wait_for(done, timeout, interval=0.2, what=f"job {task_id}")


def forget(engine: Engine, symbol: str) -> None:
    """Remove a symbol's rows from the session's ledger (the service itself never deletes).

    Earlier tests of the session predicted it with the same model: the ledger keeps their rows
    (same natural key), so a test that must see its own rows starts the symbol afresh.
    """
    with write_transaction(engine) as connection:
        rows = select(forecasts.c.id).where(forecasts.c.symbol == symbol)
        connection.execute(delete(scores).where(scores.c.forecast_id.in_(rows)))
        connection.execute(delete(forecasts).where(forecasts.c.symbol == symbol))


@pytest.fixture(scope="module")
def model_version(api: FlaskClient, auth: dict[str, str], worker_settings: Settings) -> str:
    """TSLA has a published model (trained through the worker if no earlier test made one)."""
    registry = ModelRegistry(worker_settings.ml_model_path, worker_settings.scalers_path)
    if registry.current_version(SYMBOL) is None:
        response = api.post(f"/api/v1/train/{SYMBOL}", json={}, headers=auth)
        assert response.status_code == 202, response.get_json()
        done = finish(api, response.get_json()["task_id"])
        assert done["state"] == "succeeded", done
    version = registry.current_version(SYMBOL)
    assert version is not None
    return version


def test_a_prediction_through_the_real_inference_worker_lands_in_the_ledger(
    api: FlaskClient, model_version: str, worker_settings: Settings
) -> None:
    engine = engine_from_settings(worker_settings)
    ledger = ForecastLedger(engine)
    forget(engine, SYMBOL)
    accepted = api.get(f"/api/v1/predict/{SYMBOL}?horizon=2&async=true")
    assert accepted.status_code == 202, accepted.get_json()
    done = finish(api, accepted.get_json()["task_id"])
    assert done["state"] == "succeeded", done
    answer = done["result"]

    def recorded() -> list[LedgerEntry] | None:  # written just after the answer
        made_at = datetime.fromisoformat(answer["prediction_time"])
        rows = [
            entry
            for entry in ledger.history(SYMBOL)
            if entry.stored.forecast.requested_at == made_at
        ]
        return rows if len(rows) == 2 else None

    rows = wait_for(recorded, 20, what="the prediction's forecasts in the ledger")
    by_horizon = {entry.stored.forecast.horizon: entry.stored.forecast for entry in rows}
    for row in answer["predictions"]:
        stored = by_horizon[row["horizon"]]
        assert stored.target_date.isoformat() == row["date"]
        assert stored.point == row["price"]
        assert [stored.lower, stored.upper] == row["interval"]
        assert stored.level == answer["interval_level"]
        assert stored.as_of.isoformat() == answer["as_of"]
        assert stored.naive == answer["current_price"] == row["naive"]
        assert stored.model_version == model_version
        # the champion of the version's backtest answered, and the ledger says which
        assert (stored.forecaster, stored.origin) == (answer["forecaster"], "request")
    engine.dispose()


def test_deferred_forecasts_are_recorded_by_the_real_maintenance_worker_once(
    celery_workers: Celery, worker_settings: Settings
) -> None:
    made = forecasts_of(result(symbol="MSFT", as_of="2024-02-27"))
    sent = [forecast.to_dict() for forecast in made]
    first = celery_workers.send_task("maintenance.record_forecasts", kwargs={"forecasts": sent})
    again = celery_workers.send_task("maintenance.record_forecasts", kwargs={"forecasts": sent})
    ids = first.get(timeout=60)["ids"]
    assert again.get(timeout=60)["ids"] == ids  # safe twice: the ledger's natural key
    engine = engine_from_settings(worker_settings)
    stored = ForecastLedger(engine).history("MSFT", start=date(2024, 2, 28), end=date(2024, 3, 6))
    assert sorted(entry.stored.id for entry in stored) == sorted(ids)
    assert {entry.stored.forecast for entry in stored} == set(made)
    engine.dispose()
