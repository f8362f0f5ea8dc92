"""Backfill: replay a symbol's history day by day into the ledger (origin "backfill"), scored.

Each past trading day gets the forecast the service would have served that day, made from bars
up to it only (`stockpred.ml.replay`); target dates come from the exchange calendar, as served
forecasts' do. Forecasts are stored append-only, so a second backfill over the same days adds
nothing; scoring then fills in every target that has a close. The LSTM, when asked for, is
trained once before the first choice window by `lstm` (the caller's: it needs TensorFlow).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from stockpred.infra.clock import utcnow
from stockpred.ledger.entries import Forecast
from stockpred.ledger.service import DailyBars, ScoringReport, score_due
from stockpred.ledger.store import ForecastLedger
from stockpred.market.calendar import trading_days_after
from stockpred.ml.features import compute_features
from stockpred.ml.replay import CHOOSE, ReplayedForecast, origins_between, replay

log = logging.getLogger(__name__)
# (features, rows) → (model version label, forecasts by row): the LSTM trained before rows[0].
LstmReplay = Callable[[pd.DataFrame, np.ndarray], tuple[str, dict[int, np.ndarray]]]


@dataclass(frozen=True)
class BackfillReport:
    """What one backfill stored and how it was scored."""

    symbol: str
    first: str
    last: str
    days: int
    horizon: int
    stored: int
    already_stored: int
    lstm_version: str | None
    served_by: dict[str, int]
    scoring: ScoringReport | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["scoring"] = None if self.scoring is None else self.scoring.to_dict()
        return values


def ledger_forecasts(
    symbol: str,
    replayed: list[ReplayedForecast],
    *,
    lstm_version: str,
    requested_at: datetime,
) -> list[Forecast]:
    """The ledger's forecasts (one per horizon) of the replayed days."""
    made = []
    for day in replayed:
        targets = trading_days_after(day.as_of, len(day.points))
        version = lstm_version if day.forecaster == "lstm" else ""
        for h, (target, point, (lower, upper)) in enumerate(
            zip(targets, day.points, day.bands, strict=True), start=1
        ):
            made.append(
                Forecast(
                    symbol=symbol,
                    as_of=day.as_of,
                    target_date=target,
                    horizon=h,
                    forecaster=day.forecaster,
                    model_version=version,
                    point=round(point, 4),
                    naive=round(day.close, 4),
                    requested_at=requested_at,
                    lower=round(lower, 4),
                    upper=round(upper, 4),
                    level=day.level,
                    origin="backfill",
                )
            )
    return made


def backfill(
    symbol: str,
    bars: pd.DataFrame,
    *,
    start: date | None,
    end: date | None,
    horizon: int,
    days: int | None = None,
    ledger: ForecastLedger,
    market: DailyBars,
    lstm: LstmReplay | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> BackfillReport:
    """Replay `symbol` from `start` (default: the last `days` that can be) to `end` (default:
    its last bar), store the forecasts, then score every due one."""
    features = compute_features(bars)
    rows = origins_between(features.index, start, end, horizon, days=days)
    lstm_version = ""
    lstm_forecasts = None
    if lstm is not None:
        first_choice = int(rows[0]) - horizon - CHOOSE + 1
        lstm_version, lstm_forecasts = lstm(features, np.arange(first_choice, int(rows[-1]) + 1))
    replayed = replay(features, rows, horizon, lstm=lstm_forecasts)
    made = ledger_forecasts(symbol, replayed, lstm_version=lstm_version, requested_at=clock())
    stored = ledger.record_many(made)
    scoring = score_due(ledger=ledger, market=market, clock=clock)
    report = BackfillReport(
        symbol=symbol,
        first=replayed[0].as_of.isoformat(),
        last=replayed[-1].as_of.isoformat(),
        days=len(replayed),
        horizon=horizon,
        stored=stored,
        already_stored=len(made) - stored,
        lstm_version=lstm_version or None,
        served_by=dict(Counter(day.forecaster for day in replayed)),
        scoring=scoring,
    )
    log.info("backfilled %s: %s", symbol, report.to_dict())
    return report
