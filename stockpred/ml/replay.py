"""Walk-forward replay: the forecast the service would have served at each past trading day.

At each origin t (a row of the feature frame), every choice uses only bars up to t:

- the choice window is the `choose` origins whose targets all fall on or before t
  (t-H-choose+1 .. t-H); naive, drift and (when given) the LSTM are backtested there and the
  champion is chosen with the training rule (`stockpred.ml.champion`);
- the champion's 80 % band is calibrated on its residuals in that window, standardised by the
  EWMA volatility at each of their origins (`stockpred.ml.intervals`), and scaled by sigma at t;
- the point forecast is the champion's at t: baselines look back from t, and the LSTM's
  forecasts come from the caller, made by a model trained on bars before the first choice
  window (`stockpred.ml.replay_lstm`).

No TensorFlow here; the champion is chosen anew at every origin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from stockpred.ml.backtest import run_backtest
from stockpred.ml.baselines import BASELINES, baseline_log_returns
from stockpred.ml.champion import choose_champion
from stockpred.ml.intervals import LEVEL, calibrate, ewma_volatility

CHOOSE = 250


class NotEnoughHistory(ValueError):
    """The series is too short for a choice window before the first day asked for."""


@dataclass(frozen=True)
class ReplayedForecast:
    """The served forecast as of one past day: 1..H days ahead, with its band."""

    as_of: date
    forecaster: str
    why: str
    close: float  # the close at as_of: the naive forecast of every horizon
    points: tuple[float, ...]  # price forecasts for horizons 1..H
    bands: tuple[tuple[float, float], ...]  # (lower, upper) prices for horizons 1..H
    level: float


def first_origin(horizon: int, choose: int = CHOOSE) -> int:
    """The earliest row that has a full choice window before it (one bar before that window)."""
    return horizon + choose


def origins_between(
    index: pd.DatetimeIndex,
    start: date | None,
    end: date | None,
    horizon: int,
    *,
    days: int | None = None,
    choose: int = CHOOSE,
) -> np.ndarray:
    """Row positions of the trading days in [start, end] that can be replayed.

    Without `start`: the last `days` of them up to `end` (all of them when `days` is None),
    as many as have a full choice window before them.
    """
    all_days = index.date
    last = end or all_days[-1]
    earliest = first_origin(horizon, choose)
    if len(index) <= earliest:
        raise NotEnoughHistory(
            f"{len(index)} usable bars: a replay needs more than {earliest} "
            f"({choose} backtest origins of horizon {horizon} before its first day)"
        )
    rows = np.flatnonzero((all_days >= (start or all_days[0])) & (all_days <= last))
    if start is None:
        rows = rows[rows >= earliest]
        rows = rows if days is None else rows[-days:]
    if len(rows) == 0:
        raise NotEnoughHistory(f"no trading day to replay between {start} and {last}")
    if rows[0] < earliest:
        raise NotEnoughHistory(
            f"the first day that can be replayed is {all_days[earliest]}: each day needs "
            f"{choose} backtest origins before it; ask for --from {all_days[earliest]} or later"
        )
    return rows


def replay(
    features: pd.DataFrame,
    origins: np.ndarray,
    horizon: int,
    *,
    lstm: Mapping[int, np.ndarray] | None = None,
    choose: int = CHOOSE,
) -> list[ReplayedForecast]:
    """The served forecast at each of `origins` (rows of `features`), from bars up to it only.

    `lstm` maps each row from the first choice window on to the LSTM's cumulative log returns
    (at least `horizon` of them), made without bars after that row; None leaves it out.
    """
    close = features["close"].to_numpy(dtype="float64")
    sigma = ewma_volatility(features["log_return"].to_numpy(dtype="float64"))
    every = np.arange(len(close))
    forecasts = {name: baseline_log_returns(name, close, every, horizon) for name in BASELINES}
    if lstm is not None:
        table = np.full((len(close), horizon), np.nan)
        for row, values in lstm.items():
            table[row] = np.asarray(values, dtype="float64")[:horizon]
        forecasts["lstm"] = table
    made = []
    for t in np.asarray(origins, dtype=int):
        window = np.arange(t - horizon - choose + 1, t - horizon + 1)
        if window[0] < 1:
            raise NotEnoughHistory(f"row {t} has no full choice window of {choose} origins")
        chosen = {name: f[window] for name, f in forecasts.items()}
        if lstm is not None and np.isnan(forecasts["lstm"][np.append(window, t)]).any():
            raise ValueError(f"the LSTM has no forecast for every row from {window[0]} to {t}")
        backtest = run_backtest(close, features.index, window, chosen, horizon)
        champion = choose_champion(backtest)
        band = calibrate(backtest.forecasters[champion.forecaster].log_errors, sigma[window])
        anchor = float(close[t])
        log_returns = forecasts[champion.forecaster][t]
        made.append(
            ReplayedForecast(
                as_of=features.index[t].date(),
                forecaster=champion.forecaster,
                why=champion.why,
                close=anchor,
                points=tuple(anchor * math.exp(float(v)) for v in log_returns),
                bands=tuple(
                    band.price_band(anchor, float(log_returns[h - 1]), float(sigma[t]), h)
                    for h in range(1, horizon + 1)
                ),
                level=LEVEL,
            )
        )
    return made
