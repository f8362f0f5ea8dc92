"""Scoring one forecast against the realised close: pure functions, no database, no prices."""

from __future__ import annotations

from datetime import datetime

from stockpred.ledger.entries import Score, StoredForecast


def direction(change: float) -> int:
    """The sign of a move: 1 up, -1 down, 0 none."""
    return (change > 0) - (change < 0)


def direction_hit(predicted: float, previous_close: float, actual: float) -> bool:
    """True when the predicted move from the previous close has the realised move's sign."""
    return direction(predicted - previous_close) == direction(actual - previous_close)


def abs_error(predicted: float, actual: float) -> float:
    """The absolute error in price units."""
    return abs(predicted - actual)


def pct_error(predicted: float, actual: float) -> float:
    """The absolute error in percent of the realised close."""
    return abs(predicted - actual) / actual * 100.0


def inside(lower: float | None, upper: float | None, actual: float) -> bool | None:
    """Whether the close fell inside the interval (bounds included); None without one."""
    if lower is None or upper is None:
        return None
    return lower <= actual <= upper


def score(
    stored: StoredForecast, *, actual: float, previous_close: float, scored_at: datetime
) -> Score:
    """Score a stored forecast and its naive forecast against the realised close."""
    forecast = stored.forecast
    return Score(
        forecast_id=stored.id,
        actual=actual,
        previous_close=previous_close,
        abs_error=abs_error(forecast.point, actual),
        pct_error=pct_error(forecast.point, actual),
        direction_hit=direction_hit(forecast.point, previous_close, actual),
        inside=inside(forecast.lower, forecast.upper, actual),
        naive_abs_error=abs_error(forecast.naive, actual),
        naive_pct_error=pct_error(forecast.naive, actual),
        naive_direction_hit=direction_hit(forecast.naive, previous_close, actual),
        scored_at=scored_at,
    )
