"""Accuracy of scored forecasts beside the naive forecast: pure functions on plain numbers.

No numpy or scipy (the web image has neither): MAE, RMSE, MAPE, MASE against the naive
forecast of the same targets (its MAE is the scale, so the naive forecast's own MASE is 1),
direction accuracy beside the naive forecast's and the up-day share, interval coverage, and a
Diebold-Mariano test of squared-error loss, model against naive, with the Harvey-Leybourne-
Newbold small-sample correction and Student's t with n-1 degrees of freedom
(stockpred.ml.diebold_mariano).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from stockpred.ledger.entries import LedgerEntry
from stockpred.ml.diebold_mariano import DieboldMariano, diebold_mariano


@dataclass(frozen=True)
class Figures:
    """Error figures of one forecaster (the model, or the naive forecast) over `n` targets."""

    mae: float | None
    rmse: float | None
    mape: float | None
    mase: float | None
    direction_accuracy: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Accuracy:
    """Every figure of a set of scored forecasts, the model's beside the naive forecast's."""

    n: int
    model: Figures
    naive: Figures
    up_share: float | None
    majority_share: float | None
    coverage: float | None
    coverage_n: int
    level: float | None
    diebold_mariano: DieboldMariano | None

    def to_dict(self) -> dict[str, Any]:
        dm = self.diebold_mariano
        return {
            "n": self.n,
            "model": self.model.to_dict(),
            "naive": self.naive.to_dict(),
            "up_share": self.up_share,
            "majority_share": self.majority_share,
            "coverage": self.coverage,
            "coverage_n": self.coverage_n,
            "level": self.level,
            "diebold_mariano": None if dm is None else dm.to_dict(),
        }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _figures(
    abs_errors: list[float], pct_errors: list[float], hits: list[bool], scale: float | None
) -> Figures:
    mae = _mean(abs_errors)
    mean_square = _mean([e * e for e in abs_errors])
    return Figures(
        mae=mae,
        rmse=None if mean_square is None else math.sqrt(mean_square),
        mape=_mean(pct_errors),
        mase=None if mae is None or not scale else mae / scale,
        direction_accuracy=_mean([float(h) for h in hits]),
    )


def accuracy(entries: Sequence[LedgerEntry], horizon: int = 1) -> Accuracy:
    """The figures of the scored entries (unscored ones are left out), in target-date order.

    `horizon` sets the DM test's autocovariance lags (h-1); the daily differences are averaged
    across symbols first, so pooled figures test one series of trading days.
    """
    scored = sorted(
        (e for e in entries if e.score is not None),
        key=lambda e: (e.stored.forecast.target_date, e.stored.id),
    )
    scores = [e.score for e in scored if e.score is not None]
    model_abs = [s.abs_error for s in scores]
    naive_abs = [s.naive_abs_error for s in scores]
    naive_mae = _mean(naive_abs)
    ups = [s.actual > s.previous_close for s in scores]
    up_share = _mean([float(u) for u in ups])
    inside = [s.inside for s in scores if s.inside is not None]
    levels = [e.stored.forecast.level for e in scored if e.stored.forecast.level is not None]
    by_day: dict[Any, list[float]] = {}
    for entry, score in zip(scored, scores, strict=True):
        by_day.setdefault(entry.stored.forecast.target_date, []).append(
            score.abs_error**2 - score.naive_abs_error**2
        )
    daily = [sum(values) / len(values) for _, values in sorted(by_day.items())]
    return Accuracy(
        n=len(scores),
        model=_figures(
            model_abs, [s.pct_error for s in scores], [s.direction_hit for s in scores], naive_mae
        ),
        naive=_figures(
            naive_abs,
            [s.naive_pct_error for s in scores],
            [s.naive_direction_hit for s in scores],
            naive_mae,
        ),
        up_share=up_share,
        majority_share=None if up_share is None else max(up_share, 1 - up_share),
        coverage=_mean([float(i) for i in inside]),
        coverage_n=len(inside),
        level=_mean(levels),
        diebold_mariano=diebold_mariano(daily, horizon),
    )
