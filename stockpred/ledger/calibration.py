"""Nominal against realised interval coverage, by symbol, month of the target date and level."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from stockpred.ledger.entries import LedgerEntry


def calibration(entries: Sequence[LedgerEntry]) -> list[dict[str, Any]]:
    """One row per (symbol, month, nominal level) of scored forecasts with an interval."""
    groups: dict[tuple[str, str, float], list[bool]] = defaultdict(list)
    for entry in entries:
        forecast, score = entry.stored.forecast, entry.score
        if score is None or score.inside is None or forecast.level is None:
            continue
        month = forecast.target_date.strftime("%Y-%m")
        groups[(forecast.symbol, month, forecast.level)].append(score.inside)
    return [
        {
            "symbol": symbol,
            "month": month,
            "level": level,
            "n": len(inside),
            "coverage": sum(inside) / len(inside),
        }
        for (symbol, month, level), inside in sorted(groups.items())
    ]
