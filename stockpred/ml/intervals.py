"""Prediction intervals that widen with volatility, calibrated on out-of-sample residuals.

sigma_t is an EWMA of squared one-day log returns up to and including day t (RiskMetrics,
lambda 0.94): known at the close of t, so usable at an origin t. A backtest residual (actual
minus predicted cumulative log return at horizon h) is standardised by sigma_t·sqrt(h); the
interval's bounds are the empirical (1-level)/2 and (1+level)/2 quantiles of those standardised
residuals (split-conformal), and at serve time they are scaled back by the current sigma. A
band so built widens the day volatility rises instead of keeping a calm period's width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

EWMA_LAMBDA = 0.94
LEVEL = 0.8


def ewma_volatility(log_returns: np.ndarray, lam: float = EWMA_LAMBDA) -> np.ndarray:
    """sigma_t for each t from returns up to t only (NaN returns are skipped)."""
    returns = np.nan_to_num(np.asarray(log_returns, dtype="float64"), nan=0.0)
    squared = returns**2
    out = np.empty_like(squared)
    # The first weeks have no EWMA history: a running mean of what has been seen stands in.
    seed = min(20, len(squared))
    running = np.cumsum(squared[:seed]) / np.arange(1, seed + 1)
    out[:seed] = running
    variance = running[-1] if seed else 0.0
    for t in range(seed, len(squared)):
        variance = lam * variance + (1 - lam) * squared[t]
        out[t] = variance
    return np.asarray(np.sqrt(np.maximum(out, 1e-12)))


@dataclass(frozen=True)
class IntervalModel:
    """Quantiles of standardised residuals per horizon, and the level they make."""

    level: float
    quantiles: list[tuple[float, float]]  # (low, high) in units of sigma·sqrt(h), h = 1..H
    samples: int
    lam: float = EWMA_LAMBDA

    def bounds(self, point: float, sigma: float, horizon: int) -> tuple[float, float]:
        """Cumulative log-return bounds around `point` at `horizon`, given today's sigma."""
        low, high = self.quantiles[horizon - 1]
        width = sigma * math.sqrt(horizon)
        return point + low * width, point + high * width

    def price_band(
        self, anchor: float, point: float, sigma: float, horizon: int
    ) -> tuple[float, float]:
        """(lower, upper) prices around a cumulative log-return `point` from close `anchor`."""
        low, high = self.bounds(point, sigma, horizon)
        return anchor * math.exp(low), anchor * math.exp(high)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "split-conformal on EWMA-volatility-scaled backtest residuals",
            "level": self.level,
            "lambda": self.lam,
            "samples": self.samples,
            "quantiles": [list(pair) for pair in self.quantiles],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> IntervalModel:
        return cls(
            level=float(raw["level"]),
            quantiles=[(float(a), float(b)) for a, b in raw["quantiles"]],
            samples=int(raw["samples"]),
            lam=float(raw.get("lambda", EWMA_LAMBDA)),
        )


def standardise(residuals: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Residuals (n, H) divided by sigma at each origin (n,) times sqrt(h)."""
    horizons = np.sqrt(np.arange(1, residuals.shape[1] + 1))[np.newaxis, :]
    return np.asarray(residuals / (sigma[:, np.newaxis] * horizons))


def calibrate(residuals: np.ndarray, sigma: np.ndarray, level: float = LEVEL) -> IntervalModel:
    """The interval model from backtest residuals (n, H) and sigma at their origins (n,)."""
    z = standardise(np.asarray(residuals, dtype="float64"), np.asarray(sigma, dtype="float64"))
    tail = (1 - level) / 2
    low, high = np.quantile(z, tail, axis=0), np.quantile(z, 1 - tail, axis=0)
    return IntervalModel(
        level=level,
        quantiles=[(float(a), float(b)) for a, b in zip(low, high, strict=True)],
        samples=int(z.shape[0]),
    )


def covered(residuals: np.ndarray, sigma: np.ndarray, model: IntervalModel) -> np.ndarray:
    """(n, H) booleans: whether each residual fell inside the model's band at its origin."""
    z = standardise(np.asarray(residuals, dtype="float64"), np.asarray(sigma, dtype="float64"))
    low = np.array([q[0] for q in model.quantiles[: z.shape[1]]])
    high = np.array([q[1] for q in model.quantiles[: z.shape[1]]])
    return np.asarray((z >= low) & (z <= high))
