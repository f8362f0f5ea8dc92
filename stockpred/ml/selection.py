"""At training: backtest the LSTM beside the baselines, choose the champion, calibrate its band.

The LSTM's forecasts come from the caller (trained once before the first origin, applied at
every origin); the baselines are computed here from bars up to each origin. The interval is
calibrated on the champion's backtest residuals, standardised by the volatility at each origin.
The champion's `confidence` at horizon h is the share of its backtest forecasts at h whose price
error was within the signal band (the hold-out evaluation's definition, for whoever answers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stockpred.ml.backtest import Backtest, run_backtest
from stockpred.ml.baselines import BASELINES, baseline_log_returns
from stockpred.ml.champion import Champion, choose_champion
from stockpred.ml.intervals import IntervalModel, calibrate, ewma_volatility


@dataclass(frozen=True)
class Selection:
    """The backtest, the champion and the champion's interval model."""

    backtest: Backtest
    champion: Champion
    intervals: IntervalModel
    band: float
    confidence_by_horizon: list[float]

    def metadata(self) -> dict[str, Any]:
        """What a model version stores about it (the API reports it)."""
        return {
            "backtest": self.backtest.to_dict(),
            "champion": {
                **self.champion.to_dict(),
                "band": self.band,
                "confidence_by_horizon": self.confidence_by_horizon,
            },
            "intervals": self.intervals.to_dict(),
        }


def select(
    features: pd.DataFrame,
    origins: np.ndarray,
    lstm_log_returns: np.ndarray,
    horizon: int,
    *,
    band: float,
) -> Selection:
    """Backtest naive, drift and the LSTM at `origins` (row positions in `features`)."""
    close = features["close"].to_numpy(dtype="float64")
    forecasts = {name: baseline_log_returns(name, close, origins, horizon) for name in BASELINES}
    forecasts["lstm"] = np.asarray(lstm_log_returns, dtype="float64")[:, :horizon]
    backtest = run_backtest(close, features.index, origins, forecasts, horizon)
    champion = choose_champion(backtest)
    sigma = ewma_volatility(features["log_return"].to_numpy(dtype="float64"))[origins]
    errors = backtest.forecasters[champion.forecaster].log_errors
    intervals = calibrate(errors, sigma)
    # A log error e (actual minus forecast) is a price error of |exp(-e) - 1| of the actual.
    within = np.abs(np.expm1(-errors)) <= band
    confidence = [float(v) for v in within.mean(axis=0)]
    return Selection(backtest, champion, intervals, band, confidence)
