"""A prediction result as ledger forecasts: one per horizon row, the naive forecast beside it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from stockpred.ledger.entries import InvalidForecast
from stockpred.ledger.recording import forecast_from_dict, forecasts_of


def result(**change: Any) -> dict[str, Any]:
    """The shape `InferenceService.predict` returns today (no per-row naive, no forecaster)."""
    values: dict[str, Any] = {
        "symbol": "AAPL",
        "current_price": 175.1,
        "predicted_price": 176.2,
        "prediction_time": "2024-03-04T22:15:30Z",
        "model_version": "20240301T120000Z",
        "horizon": 2,
        "as_of": "2024-03-04",
        "predictions": [
            {"horizon": 1, "date": "2024-03-05", "price": 175.9, "interval": [171.5, 178.75]},
            {"horizon": 2, "date": "2024-03-06", "price": 176.2, "interval": [170.0, 181.0]},
        ],
        "interval_level": 0.8,
        "cached": False,
    }
    values.update(change)
    return values


def test_each_horizon_row_is_a_forecast_with_the_as_of_close_as_naive() -> None:
    first, second = forecasts_of(result(), origin="daily")
    assert first.symbol == second.symbol == "AAPL"
    assert first.as_of == second.as_of == date(2024, 3, 4)
    assert (first.target_date, first.horizon) == (date(2024, 3, 5), 1)
    assert (second.target_date, second.horizon) == (date(2024, 3, 6), 2)
    assert (first.point, first.lower, first.upper, first.level) == (175.9, 171.5, 178.75, 0.8)
    assert first.naive == second.naive == 175.1
    assert first.forecaster == "lstm" and first.model_version == "20240301T120000Z"
    assert first.requested_at == datetime(2024, 3, 4, 22, 15, 30, tzinfo=UTC)
    assert first.origin == second.origin == "daily"


def test_a_per_row_naive_and_a_named_forecaster_win_over_the_defaults() -> None:
    rows = [{"horizon": 1, "date": "2024-03-05", "price": 175.9, "naive": 175.3}]
    (only,) = forecasts_of(result(predictions=rows, forecaster="naive", model_version=""))
    assert (only.naive, only.forecaster, only.model_version) == (175.3, "naive", "")
    assert only.lower is only.upper is only.level is None
    assert only.origin == "request"


def test_a_forecast_survives_its_dict_form() -> None:
    for made in forecasts_of(result()):
        assert forecast_from_dict(made.to_dict()) == made


@pytest.mark.parametrize(
    "broken",
    [
        {"as_of": None},
        {"predictions": [{"horizon": 1, "price": 175.9}]},
        {"predictions": [{"horizon": 1, "date": "2024-03-04", "price": 175.9}]},
        {"current_price": "n/a"},
    ],
)
def test_a_malformed_result_is_refused_with_a_reason(broken: dict[str, Any]) -> None:
    with pytest.raises(InvalidForecast):
        forecasts_of(result(**broken))
