"""The Diebold-Mariano test of equal forecast accuracy, with the Harvey-Leybourne-Newbold fix.

d_t = loss(e1_t) - loss(e2_t); DM = mean(d) / sqrt(V / n) with V the long-run variance from
autocovariances at lags 0..h-1 (an h-step forecast's errors are MA(h-1)). HLN (1997) multiply
DM by sqrt((n + 1 - 2h + h(h-1)/n) / n) and compare with Student's t with n-1 degrees of freedom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class DMResult:
    """The HLN-corrected statistic, its two-sided p-value, and the one-sided p of "1 beats 2"."""

    statistic: float
    p_value: float
    p_first_better: float
    n: int


def diebold_mariano(
    errors_1: np.ndarray, errors_2: np.ndarray, horizon: int = 1, loss: str = "absolute"
) -> DMResult:
    """Test forecast 1 against forecast 2 from their errors (same targets, same order)."""
    e1, e2 = np.asarray(errors_1, dtype="float64"), np.asarray(errors_2, dtype="float64")
    if e1.shape != e2.shape or e1.ndim != 1:
        raise ValueError("the two error series must be 1-D and of equal length")
    if loss == "absolute":
        d = np.abs(e1) - np.abs(e2)
    elif loss == "squared":
        d = e1**2 - e2**2
    else:
        raise ValueError(f"loss must be 'absolute' or 'squared', not {loss!r}")
    n = len(d)
    if n < 2 * horizon + 1:
        raise ValueError(f"{n} loss differentials are too few for a horizon of {horizon}")
    centred = d - d.mean()
    autocov = [float(np.dot(centred[k:], centred[: n - k]) / n) for k in range(horizon)]
    variance = autocov[0] + 2 * sum(autocov[1:])
    if variance <= 0:
        # identical losses (or a degenerate long-run variance): no evidence either way
        return DMResult(0.0, 1.0, 0.5, n)
    dm = d.mean() / np.sqrt(variance / n)
    hln = dm * np.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    return DMResult(
        statistic=float(hln),
        p_value=float(2 * stats.t.sf(abs(hln), df=n - 1)),
        p_first_better=float(stats.t.cdf(hln, df=n - 1)),
        n=n,
    )
