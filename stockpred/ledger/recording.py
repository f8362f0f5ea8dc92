"""A computed prediction (the inference result) as the ledger's forecasts, one per horizon row.

Reads only what the result holds: per row `horizon`, `date`, `price`, optional `interval` and
`naive`; top level `symbol`, `as_of`, `model_version`, `interval_level`, `prediction_time` and
optional `forecaster`. Without a per-row `naive`, the naive forecast of every target is the close
at `as_of` (`current_price`: the last bar the forecast used).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from stockpred.ledger.entries import Forecast, InvalidForecast

DEFAULT_FORECASTER = "lstm"


def _interval(row: Mapping[str, Any], level: Any) -> tuple[float | None, ...]:
    bounds = row.get("interval")
    if not bounds or level is None:
        return (None, None, None)
    low, high = bounds
    return (float(low), float(high), float(level))


def forecasts_of(result: Mapping[str, Any], *, origin: str = "request") -> list[Forecast]:
    """Every horizon row of a prediction result as a Forecast (InvalidForecast if malformed)."""
    try:
        as_of = date.fromisoformat(result["as_of"])
        requested_at = datetime.fromisoformat(result["prediction_time"])
        naive_default = float(result["current_price"])
        rows: Sequence[Mapping[str, Any]] = result["predictions"]
        forecaster = str(result.get("forecaster") or DEFAULT_FORECASTER)
        level = result.get("interval_level")
        made = []
        for row in rows:
            lower, upper, row_level = _interval(row, level)
            made.append(
                Forecast(
                    symbol=str(result["symbol"]),
                    as_of=as_of,
                    target_date=date.fromisoformat(row["date"]),
                    horizon=int(row["horizon"]),
                    forecaster=forecaster,
                    model_version=str(result.get("model_version") or ""),
                    point=float(row["price"]),
                    naive=float(row.get("naive", naive_default)),
                    requested_at=requested_at,
                    lower=lower,
                    upper=upper,
                    level=row_level,
                    origin=origin,
                )
            )
    except InvalidForecast:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidForecast(f"a prediction result without a usable {exc!s}") from exc
    return made


def forecast_from_dict(values: Mapping[str, Any]) -> Forecast:
    """The Forecast that `Forecast.to_dict` gave (a follow-up task's argument)."""
    try:
        return Forecast(
            **{
                **values,
                "as_of": date.fromisoformat(values["as_of"]),
                "target_date": date.fromisoformat(values["target_date"]),
                "requested_at": datetime.fromisoformat(values["requested_at"]),
            }
        )
    except InvalidForecast:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidForecast(f"not a forecast: {exc}") from exc
