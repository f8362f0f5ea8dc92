"""Windows of features → targets, the chronological split, and scalers fitted on training only.

A window is `sequence_length` consecutive feature rows ending at an anchor day t; its target is
the cumulative log return ln(close[t+h] / close[t]) for h = 1..max_horizon (a direct
multi-horizon forecast). Inside each window the `close` feature is expressed relative to the
anchor's close, so the inputs do not depend on the price level. Between the training part and
the hold-out a gap of `max_horizon` windows is purged: no training target ever reaches into the
hold-out period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler


class NotEnoughData(ValueError):
    """Too few rows to build windows, a hold-out and a validation part."""


@dataclass(frozen=True)
class Windows:
    """Inputs, targets and what evaluation needs about each window's anchor day."""

    x: np.ndarray  # (n, sequence_length, n_features)
    y: np.ndarray  # (n, max_horizon) cumulative log returns; empty for inference windows
    anchor_close: np.ndarray  # (n,)
    anchor_dates: pd.DatetimeIndex
    previous_return: np.ndarray  # (n,) the anchor day's own log return (naive direction)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, rows: slice) -> Windows:
        return Windows(
            self.x[rows],
            self.y[rows],
            self.anchor_close[rows],
            self.anchor_dates[rows],
            self.previous_return[rows],
        )


def _window_inputs(values: np.ndarray, end: int, length: int, close_col: int) -> np.ndarray:
    window = values[end - length + 1 : end + 1].copy()
    window[:, close_col] = window[:, close_col] / window[-1, close_col] - 1.0
    return window


def windows_at(
    features: pd.DataFrame, columns: tuple[str, ...], length: int, horizon: int, anchors: np.ndarray
) -> Windows:
    """Windows ending at the given row positions; targets where the horizon is known."""
    values = features[list(columns)].to_numpy(dtype="float64")
    close = features["close"].to_numpy(dtype="float64")
    close_col = list(columns).index("close") if "close" in columns else -1
    if len(anchors) and (anchors.min() < length - 1 or anchors.max() >= len(features)):
        raise NotEnoughData(f"a window of {length} rows does not fit at every anchor")
    x = np.stack(
        [
            _window_inputs(values, a, length, close_col)
            if close_col >= 0
            else values[a - length + 1 : a + 1]
            for a in anchors
        ]
    )
    known = bool(len(anchors)) and anchors.max() + horizon < len(features)
    y = (
        np.stack([np.log(close[a + 1 : a + 1 + horizon] / close[a]) for a in anchors])
        if known and horizon > 0
        else np.empty((len(anchors), 0))
    )
    return Windows(
        x.astype("float32"),
        y.astype("float32"),
        close[anchors],
        features.index[anchors],
        features["log_return"].to_numpy()[anchors],
    )


def make_windows(
    features: pd.DataFrame, columns: tuple[str, ...], length: int, horizon: int
) -> Windows:
    """Every window whose full target horizon is known."""
    anchors = np.arange(length - 1, len(features) - horizon)
    if len(anchors) <= 0:
        raise NotEnoughData(f"{len(features)} usable rows; need more than {length + horizon}")
    return windows_at(features, columns, length, horizon, anchors)


def latest_window(features: pd.DataFrame, columns: tuple[str, ...], length: int) -> Windows:
    """The window ending at the last row (for inference; no targets)."""
    if len(features) < length:
        raise NotEnoughData(f"{len(features)} usable rows; a window needs {length}")
    return windows_at(features, columns, length, 0, np.array([len(features) - 1]))


@dataclass(frozen=True)
class Split:
    """Chronological parts: train, validation (early stopping) and hold-out (evaluation)."""

    train: Windows
    validation: Windows
    holdout: Windows


def chronological_split(
    windows: Windows, holdout_fraction: float, validation_fraction: float, purge: int
) -> Split:
    """Train < validation < hold-out in time, with `purge` windows dropped before each cut."""
    n = len(windows)
    holdout = max(1, math.ceil(n * holdout_fraction))
    rest = n - holdout - purge
    validation = max(1, math.ceil(rest * validation_fraction))
    train = rest - validation - purge
    if train < 20:
        raise NotEnoughData(f"{n} windows leave only {max(train, 0)} for training; need 20")
    return Split(
        train=windows.take(slice(0, train)),
        validation=windows.take(slice(train + purge, rest)),
        holdout=windows.take(slice(n - holdout, n)),
    )


@dataclass
class Scalers:
    """StandardScalers for inputs (per feature) and targets (per horizon), fitted on train."""

    features: StandardScaler
    target: StandardScaler
    columns: tuple[str, ...]

    @classmethod
    def fit(cls, train: Windows, columns: tuple[str, ...]) -> Scalers:
        n_features = train.x.shape[2]
        return cls(
            StandardScaler().fit(train.x.reshape(-1, n_features)),
            StandardScaler().fit(train.y),
            columns,
        )

    # Plain arithmetic on the fitted mean and scale: identical to StandardScaler's transform,
    # without its per-call input validation, which costs more than the inference path can afford.
    def transform_x(self, x: np.ndarray) -> np.ndarray:
        scaled = (x - self.features.mean_) / self.features.scale_
        return np.asarray(scaled, dtype="float32")

    def transform_y(self, y: np.ndarray) -> np.ndarray:
        return np.asarray((y - self.target.mean_) / self.target.scale_, dtype="float32")

    def inverse_y(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y * self.target.scale_ + self.target.mean_, dtype="float64")

    def to_joblib_payload(self) -> dict[str, object]:
        """A plain dict (portable across code moves) for joblib."""
        return {"features": self.features, "target": self.target, "columns": list(self.columns)}

    @classmethod
    def from_joblib_payload(cls, payload: dict[str, Any]) -> Scalers:
        return cls(payload["features"], payload["target"], tuple(payload["columns"]))
