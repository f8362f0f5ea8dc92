"""Accuracy of scored forecasts beside the naive forecast: pure functions on plain numbers.

No numpy or scipy (the web image has neither): MAE, RMSE, MAPE, MASE against the naive
forecast of the same targets (its MAE is the scale, so the naive forecast's own MASE is 1),
direction accuracy beside the naive forecast's and the up-day share, interval coverage, and a
Diebold-Mariano test of squared-error loss, model against naive, with the Harvey-Leybourne-
Newbold small-sample correction and Student's t with n-1 degrees of freedom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from stockpred.ledger.entries import LedgerEntry

_BETA_EPS = 1e-14
_BETA_MAX_ITER = 300


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, _BETA_MAX_ITER + 1):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < _BETA_EPS:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return regularized_beta(df / 2.0, 0.5, df / (df + t * t))


@dataclass(frozen=True)
class DieboldMariano:
    """The DM test of equal squared-error loss, model against naive (HLN-corrected).

    A negative statistic means the model's loss is lower; `p_value` is two-sided.
    """

    statistic: float
    p_value: float
    n: int
    horizon: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "loss": "squared error"}


def diebold_mariano(differences: Sequence[float], horizon: int = 1) -> DieboldMariano | None:
    """DM on loss differences d_t (model loss minus naive loss) in time order; None when the
    test is undefined (fewer than 2 values, or no variance)."""
    n = len(differences)
    if n < 2 or horizon < 1:
        return None
    mean = sum(differences) / n
    centred = [d - mean for d in differences]

    def autocovariance(lag: int) -> float:
        return sum(centred[i] * centred[i - lag] for i in range(lag, n)) / n

    variance = autocovariance(0) + 2 * sum(autocovariance(k) for k in range(1, min(horizon, n)))
    if not variance > 0:
        return None
    statistic = mean / math.sqrt(variance / n)
    correction = (n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n
    if not correction > 0:
        return None
    statistic *= math.sqrt(correction)
    return DieboldMariano(statistic, student_t_two_sided_p(statistic, n - 1), n, horizon)


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
