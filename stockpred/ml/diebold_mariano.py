"""The Diebold-Mariano test of equal forecast accuracy, with the Harvey-Leybourne-Newbold fix.

d_t = loss(e1_t) - loss(e2_t); DM = mean(d) / sqrt(V / n) with V the long-run variance from
autocovariances at lags 0..h-1 (an h-step forecast's errors are MA(h-1)). HLN (1997) multiply
DM by sqrt((n + 1 - 2h + h(h-1)/n) / n) and compare with Student's t with n-1 degrees of freedom.
Pure Python (Student's t from the regularized incomplete beta function): the web, which has no
numpy or scipy, reports it for the ledger's scores, and training uses it to choose a champion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

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
    """The DM test of equal loss, first forecast against second (HLN-corrected).

    A negative statistic means the first forecast's loss is lower; `p_value` is two-sided.
    """

    statistic: float
    p_value: float
    n: int
    horizon: int
    loss: str

    @property
    def p_first_better(self) -> float:
        """One-sided p-value of "the first forecast's loss is lower": P(T <= statistic)."""
        half = self.p_value / 2.0
        return half if self.statistic < 0 else 1.0 - half

    def to_dict(self) -> dict[str, Any]:
        """The figures for JSON (statistic, two-sided p-value, n, horizon, loss)."""
        return asdict(self)


def diebold_mariano(
    differences: Sequence[float], horizon: int = 1, loss: str = "squared error"
) -> DieboldMariano | None:
    """DM on loss differences d_t (first loss minus second) in time order; None when the
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
    return DieboldMariano(statistic, student_t_two_sided_p(statistic, n - 1), n, horizon, loss)


def compare_errors(
    errors_1: Sequence[float], errors_2: Sequence[float], horizon: int = 1, loss: str = "absolute"
) -> DieboldMariano | None:
    """DM of two forecasts' errors on the same targets, in time order, under `loss`."""
    if len(errors_1) != len(errors_2):
        raise ValueError("the two error series must be of equal length")
    if loss == "absolute":
        differences = [abs(a) - abs(b) for a, b in zip(errors_1, errors_2, strict=True)]
    elif loss == "squared":
        differences = [a * a - b * b for a, b in zip(errors_1, errors_2, strict=True)]
    else:
        raise ValueError(f"loss must be 'absolute' or 'squared', not {loss!r}")
    return diebold_mariano(differences, horizon, loss=f"{loss} error")
