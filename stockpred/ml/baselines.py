"""Naive and drift forecasters: cumulative log returns 1..horizon days ahead, like the LSTM's.

naive: tomorrow = today (a cumulative log return of 0 at every horizon). drift: the last close
moved by h times the mean daily log change over the `window` bars up to the origin. Both use
only bars up to the origin.
"""

from __future__ import annotations

import numpy as np

DRIFT_WINDOW = 250
BASELINES = ("naive", "drift")


def naive_log_returns(origins: np.ndarray, horizon: int) -> np.ndarray:
    """(len(origins), horizon) zeros: the last close at every horizon."""
    return np.zeros((len(origins), horizon))


def drift_log_returns(
    close: np.ndarray, origins: np.ndarray, horizon: int, window: int = DRIFT_WINDOW
) -> np.ndarray:
    """(len(origins), horizon): h · mean daily log change over the `window` bars to each origin."""
    log_close = np.log(np.asarray(close, dtype="float64"))
    starts = np.maximum(np.asarray(origins) - window, 0)
    spans = np.asarray(origins) - starts
    mean_change = np.where(
        spans > 0, (log_close[origins] - log_close[starts]) / np.maximum(spans, 1), 0.0
    )
    return mean_change[:, np.newaxis] * np.arange(1, horizon + 1)[np.newaxis, :]


def baseline_log_returns(
    name: str, close: np.ndarray, origins: np.ndarray, horizon: int
) -> np.ndarray:
    """The named baseline's forecasts at `origins` (row positions in `close`)."""
    if name == "naive":
        return naive_log_returns(origins, horizon)
    if name == "drift":
        return drift_log_returns(close, origins, horizon)
    raise ValueError(f"unknown baseline {name!r}; baselines: {', '.join(BASELINES)}")
