"""Hold-out metrics of a model and of the naive baseline (tomorrow = today), and what they imply.

Errors are measured on prices: the model's close for day t+h is close_t · exp(predicted
cumulative log return). The naive forecast is close_t for every horizon. Direction accuracy
counts days whose predicted move has the sign of the actual move; the naive baseline, which
predicts no move, is given the sign of the anchor day's own move (yesterday's direction
persists). skill = 1 - RMSE_model / RMSE_naive (> 0: better than naive).

`confidence` at horizon h = the share of hold-out forecasts at h whose price error was within
the signal band (|predicted - actual| / actual ≤ STOCK_BUY_THRESHOLD - 1, 1 % by default).
Prediction intervals at h are the 10th and 90th percentiles of hold-out log-return residuals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Errors:
    """Point-forecast errors at one horizon."""

    rmse: float
    mae: float
    mape: float
    direction_accuracy: float


def _errors(predicted: np.ndarray, actual: np.ndarray, direction_hits: np.ndarray) -> Errors:
    diff = predicted - actual
    return Errors(
        rmse=float(np.sqrt(np.mean(diff**2))),
        mae=float(np.mean(np.abs(diff))),
        mape=float(np.mean(np.abs(diff) / actual) * 100),
        direction_accuracy=float(np.mean(direction_hits)),
    )


@dataclass(frozen=True)
class Evaluation:
    """Everything stored with a model version about its hold-out performance."""

    samples: int
    model: Errors
    naive: Errors
    skill: float
    band: float
    confidence_by_horizon: list[float]
    interval_by_horizon: list[tuple[float, float]]
    rmse_by_horizon: list[float]
    naive_rmse_by_horizon: list[float]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval_by_horizon"] = [list(pair) for pair in self.interval_by_horizon]
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Evaluation:
        return cls(
            samples=int(raw["samples"]),
            model=Errors(**raw["model"]),
            naive=Errors(**raw["naive"]),
            skill=float(raw["skill"]),
            band=float(raw["band"]),
            confidence_by_horizon=[float(v) for v in raw["confidence_by_horizon"]],
            interval_by_horizon=[(float(a), float(b)) for a, b in raw["interval_by_horizon"]],
            rmse_by_horizon=[float(v) for v in raw["rmse_by_horizon"]],
            naive_rmse_by_horizon=[float(v) for v in raw["naive_rmse_by_horizon"]],
        )

    def summary(self) -> dict[str, Any]:
        """The figures the API shows with every prediction."""
        return {
            "holdout_samples": self.samples,
            "rmse": self.model.rmse,
            "mae": self.model.mae,
            "mape": self.model.mape,
            "direction_accuracy": self.model.direction_accuracy,
            "naive_rmse": self.naive.rmse,
            "naive_mae": self.naive.mae,
            "naive_mape": self.naive.mape,
            "naive_direction_accuracy": self.naive.direction_accuracy,
            "skill": self.skill,
        }


def evaluate(
    predicted_log_returns: np.ndarray,
    actual_log_returns: np.ndarray,
    anchor_close: np.ndarray,
    previous_return: np.ndarray,
    band: float,
) -> Evaluation:
    """Compare forecasts (n, H) with what happened, for the model and the naive baseline."""
    anchor = anchor_close[:, np.newaxis]
    predicted = anchor * np.exp(predicted_log_returns)
    actual = anchor * np.exp(actual_log_returns)
    naive = np.repeat(anchor, actual.shape[1], axis=1)
    model_1 = _errors(
        predicted[:, 0],
        actual[:, 0],
        np.sign(predicted_log_returns[:, 0]) == np.sign(actual_log_returns[:, 0]),
    )
    naive_1 = _errors(
        naive[:, 0], actual[:, 0], np.sign(previous_return) == np.sign(actual_log_returns[:, 0])
    )
    within = np.abs(predicted - actual) / actual <= band
    residuals = actual_log_returns - predicted_log_returns
    low, high = np.percentile(residuals, 10, axis=0), np.percentile(residuals, 90, axis=0)
    rmse_h = np.sqrt(np.mean((predicted - actual) ** 2, axis=0))
    naive_h = np.sqrt(np.mean((naive - actual) ** 2, axis=0))
    return Evaluation(
        samples=int(actual.shape[0]),
        model=model_1,
        naive=naive_1,
        skill=float(1 - model_1.rmse / naive_1.rmse) if naive_1.rmse > 0 else 0.0,
        band=band,
        confidence_by_horizon=[float(v) for v in within.mean(axis=0)],
        interval_by_horizon=[(float(a), float(b)) for a, b in zip(low, high, strict=True)],
        rmse_by_horizon=[float(v) for v in rmse_h],
        naive_rmse_by_horizon=[float(v) for v in naive_h],
    )
