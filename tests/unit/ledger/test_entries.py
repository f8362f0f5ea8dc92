"""A forecast the ledger would store wrongly is refused with a message naming the field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from stockpred.ledger.entries import Forecast, InvalidForecast

VALID: dict[str, Any] = {
    "symbol": "^GSPC",
    "as_of": date(2024, 3, 1),
    "target_date": date(2024, 3, 4),
    "horizon": 1,
    "forecaster": "naive",
    "model_version": "",
    "point": 5137.08,
    "naive": 5137.08,
    "requested_at": datetime(2024, 3, 2, tzinfo=UTC),
    "lower": 5080.0,
    "upper": 5190.5,
    "level": 0.8,
}


def test_a_valid_forecast_keeps_its_values_and_key() -> None:
    forecast = Forecast(**VALID)
    assert forecast.key == ("^GSPC", date(2024, 3, 1), date(2024, 3, 4), 1, "naive", "")
    assert forecast.to_dict()["as_of"] == "2024-03-01"
    assert forecast.origin == "request"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"symbol": "nvda"}, "not normalised"),
        ({"symbol": "NV DA"}, "not a ticker"),
        ({"target_date": date(2024, 3, 1)}, "must come after as_of"),
        ({"as_of": datetime(2024, 3, 1, 16, 0)}, "as_of must be a date"),
        ({"horizon": 0}, "horizon"),
        ({"horizon": True}, "horizon"),
        ({"forecaster": ""}, "forecaster"),
        ({"model_version": "v" * 65}, "model_version"),
        ({"point": float("nan")}, "point must be a positive finite price"),
        ({"naive": -1.0}, "naive must be a positive finite price"),
        ({"level": None}, "given together"),
        ({"lower": 5200.0}, "above upper"),
        ({"level": 80.0}, "between 0 and 1"),
        ({"requested_at": datetime(2024, 3, 2)}, "timezone-aware"),
        ({"origin": "guess"}, "origin must be one of"),
    ],
)
def test_an_invalid_forecast_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidForecast, match=message):
        Forecast(**{**VALID, **change})


def test_a_forecast_without_an_interval_is_valid() -> None:
    forecast = Forecast(**{**VALID, "lower": None, "upper": None, "level": None})
    assert forecast.lower is None
