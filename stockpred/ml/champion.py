"""Which forecaster answers: the champion of the backtest, never a model that does not beat naive.

Rule (one champion for every horizon, chosen at h = 1): naive unless another forecaster has a
lower backtest MASE at h = 1 than naive AND a one-sided Diebold-Mariano p-value below
`MAX_P` (absolute loss, HLN correction) for being better; among those, the lowest MASE wins.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from stockpred.ml.backtest import Backtest

MAX_P = 0.05
RULE = (
    "naive unless a forecaster's backtest MASE at h=1 is below naive's with a one-sided "
    f"Diebold-Mariano p < {MAX_P} (absolute loss, HLN); then the lowest MASE"
)


@dataclass(frozen=True)
class Champion:
    """The chosen forecaster and why, in a sentence a user can read."""

    forecaster: str
    why: str
    rule: str = RULE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_champion(backtest: Backtest) -> Champion:
    """Apply the rule to a backtest's h=1 figures."""
    naive = backtest.forecasters["naive"].at(1)
    winners = []
    reasons = []
    for name, result in backtest.forecasters.items():
        if name == "naive":
            continue
        f = result.at(1)
        label = name.upper() if name == "lstm" else name
        if f.mase >= naive.mase:
            reasons.append(f"{label} backtest MASE {f.mase:.3f} ≥ naive {naive.mase:.3f}")
        elif f.dm_p_better >= MAX_P:
            reasons.append(
                f"{label} backtest MASE {f.mase:.3f} < naive {naive.mase:.3f} but not "
                f"significantly (DM p={f.dm_p_better:.2f})"
            )
        else:
            winners.append((f.mase, name, f))
    if not winners:
        return Champion("naive", "; ".join(reasons) + "; serving naive")
    _, name, f = min(winners)
    return Champion(
        name,
        f"{name.upper() if name == 'lstm' else name} backtest MASE {f.mase:.3f} < naive "
        f"{naive.mase:.3f} (DM p={f.dm_p_better:.3f}); serving {name}",
    )
