"""Rolling-origin (walk-forward) backtest of point forecasters over the last part of a series.

Each origin t is a row position in `close`; a forecaster's row for t holds its cumulative log
returns 1..H days ahead made from bars up to t only (the caller guarantees it: baselines look
back from t, the LSTM is trained once before the first origin and applied at each one). Errors
are measured per horizon h against close[t+h]:

- `mae`, `rmse` in price units; `log_errors` (actual minus predicted log price) are the
  residual series;
- `mase` = mean |log error| / mean |one-day log change| over the bars before the first origin
  (in-sample one-step naive errors, seasonality 1; below 1 beats an in-sample naive);
- `relative_mae` = mean |log error| / the naive forecast's over the same origins;
- `direction_accuracy`: share of origins whose forecast move has the sign of the actual move
  (the naive forecast, which predicts no move, is given the origin day's own direction) beside
  `up_share`, the share of actual up moves;
- a Diebold-Mariano test (HLN, absolute loss) of the forecaster against naive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stockpred.ml.diebold_mariano import compare_errors


@dataclass(frozen=True)
class HorizonFigures:
    """One forecaster's backtest figures at one horizon."""

    horizon: int
    n: int
    mae: float
    rmse: float
    mase: float
    relative_mae: float
    direction_accuracy: float
    up_share: float
    dm_statistic: float
    dm_p_value: float
    dm_p_better: float


@dataclass(frozen=True)
class ForecasterBacktest:
    """A forecaster's figures per horizon and its residual series (origins x horizons)."""

    name: str
    figures: list[HorizonFigures]
    log_errors: np.ndarray

    def at(self, horizon: int) -> HorizonFigures:
        return self.figures[horizon - 1]


@dataclass(frozen=True)
class Backtest:
    """Every forecaster's backtest over the same origins."""

    origin_dates: pd.DatetimeIndex
    scale: float
    forecasters: dict[str, ForecasterBacktest]

    def to_dict(self) -> dict[str, Any]:
        """The figures (not the residuals) as plain JSON for a version's metadata."""
        return {
            "origins": len(self.origin_dates),
            "first_origin": self.origin_dates[0].strftime("%Y-%m-%d"),
            "last_origin": self.origin_dates[-1].strftime("%Y-%m-%d"),
            "mase_scale": self.scale,
            "loss": "absolute log-price error (MASE, DM)",
            "forecasters": {
                name: [vars(f) for f in result.figures] for name, result in self.forecasters.items()
            },
        }


def actual_log_returns(close: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """(n, H) realised cumulative log returns after each origin; every target must be known."""
    log_close = np.log(np.asarray(close, dtype="float64"))
    if len(origins) == 0 or origins.max() + horizon >= len(log_close) or origins.min() < 1:
        raise ValueError(f"every origin needs a bar before it and {horizon} bars after it")
    steps = np.arange(1, horizon + 1)[np.newaxis, :]
    return np.asarray(log_close[origins[:, np.newaxis] + steps] - log_close[origins][:, np.newaxis])


def naive_scale(close: np.ndarray, first_origin: int) -> float:
    """Mean absolute one-day log change over the bars up to the first origin."""
    log_close = np.log(np.asarray(close[: first_origin + 1], dtype="float64"))
    changes = np.abs(np.diff(log_close))
    if len(changes) == 0 or not np.isfinite(changes.mean()) or changes.mean() <= 0:
        raise ValueError("no in-sample one-day changes before the first origin to scale MASE by")
    return float(changes.mean())


def run_backtest(
    close: np.ndarray,
    dates: pd.DatetimeIndex,
    origins: np.ndarray,
    forecasts: dict[str, np.ndarray],
    horizon: int,
) -> Backtest:
    """Score each forecaster's (n, H) forecasts at `origins`; `forecasts` must hold "naive"."""
    if "naive" not in forecasts:
        raise ValueError("the backtest needs the naive forecast to compare with")
    close = np.asarray(close, dtype="float64")
    actual = actual_log_returns(close, origins, horizon)
    scale = naive_scale(close, int(origins[0]))
    anchor = close[origins][:, np.newaxis]
    previous_move = np.sign(np.log(close[origins] / close[origins - 1]))
    errors = {name: actual - f[:, :horizon] for name, f in forecasts.items()}
    naive_abs = np.abs(errors["naive"]).mean(axis=0)
    results = {}
    for name, predicted in forecasts.items():
        e = errors[name]
        price_error = anchor * np.exp(predicted[:, :horizon]) - anchor * np.exp(actual)
        direction = np.sign(predicted[:, :horizon])
        direction = np.where(direction == 0, previous_move[:, np.newaxis], direction)
        figures = []
        for h in range(horizon):
            dm = compare_errors(e[:, h].tolist(), errors["naive"][:, h].tolist(), h + 1)
            mean_abs = float(np.abs(e[:, h]).mean())
            figures.append(
                HorizonFigures(
                    horizon=h + 1,
                    n=len(origins),
                    mae=float(np.abs(price_error[:, h]).mean()),
                    rmse=float(np.sqrt((price_error[:, h] ** 2).mean())),
                    mase=mean_abs / scale,
                    relative_mae=mean_abs / naive_abs[h] if naive_abs[h] > 0 else 1.0,
                    direction_accuracy=float((direction[:, h] == np.sign(actual[:, h])).mean()),
                    up_share=float((actual[:, h] > 0).mean()),
                    # Undefined (identical losses, as naive against itself): no evidence either way.
                    dm_statistic=0.0 if dm is None else dm.statistic,
                    dm_p_value=1.0 if dm is None else dm.p_value,
                    dm_p_better=0.5 if dm is None else dm.p_first_better,
                )
            )
        results[name] = ForecasterBacktest(name, figures, e)
    return Backtest(dates[origins], scale, results)
