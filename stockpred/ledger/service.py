"""Scoring every due forecast: the realised closes come from one read of each symbol's bars.

Due means unscored with a target date on or before the last completed session (so a bar of a
session still trading is never taken as its close). A forecast is scored once its target date
and its `as_of` both have a bar; the close at `as_of` is the previous close for direction.
Running twice changes nothing: a score, once stored, is never rewritten.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from stockpred.infra.clock import utcnow
from stockpred.ledger import scoring
from stockpred.ledger.entries import Score, StoredForecast
from stockpred.ledger.store import ForecastLedger
from stockpred.market.calendar import last_close
from stockpred.market.errors import MarketDataError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class DailyBars(Protocol):
    """Where the closes come from: `stockpred.market.service.MarketData` in the service."""

    def bars(self, symbol: str) -> pd.DataFrame:
        """The symbol's daily bars (a `close` column on a date index), refreshed when stale."""
        ...


@dataclass(frozen=True)
class ScoringReport:
    """What one scoring run did.

    `waiting`: due forecasts whose target date has no bar yet (the source lags); `no_bar`:
    forecasts that cannot be scored from the bars read (the target date passed the last bar
    without one, or `as_of` has none); `failed_symbols`: symbols whose bars could not be read.
    """

    through: date
    scored: int
    already_scored: int
    waiting: int
    no_bar: int
    failed_symbols: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["through"] = self.through.isoformat()
        values["failed_symbols"] = list(self.failed_symbols)
        return values


def closes_by_day(frame: pd.DataFrame) -> dict[date, float]:
    """A bar frame's closes keyed by trading day."""
    return {
        stamp.date(): float(close) for stamp, close in zip(frame.index, frame["close"], strict=True)
    }


def score_due(
    *,
    ledger: ForecastLedger,
    market: DailyBars,
    clock: Callable[[], datetime] = utcnow,
) -> ScoringReport:
    """Score every due forecast in the ledger; read each symbol's bars once."""
    now = clock()
    through = last_close(now).date()  # the session's day in New York
    by_symbol: dict[str, list[StoredForecast]] = defaultdict(list)
    for stored in ledger.unscored(through=through):
        by_symbol[stored.forecast.symbol].append(stored)
    new_scores: list[Score] = []
    waiting = no_bar = 0
    failed: list[str] = []
    for symbol, due in sorted(by_symbol.items()):
        try:
            closes = closes_by_day(market.bars(symbol))
        except MarketDataError as exc:
            log.warning("cannot score %d forecasts of %s: no bars (%s)", len(due), symbol, exc)
            failed.append(symbol)
            continue
        scored, late, missing = _score_symbol(due, closes, now)
        new_scores += scored
        waiting += late
        no_bar += missing
    written = ledger.record_scores(new_scores)
    report = ScoringReport(
        through=through,
        scored=written,
        already_scored=len(new_scores) - written,
        waiting=waiting,
        no_bar=no_bar,
        failed_symbols=tuple(failed),
    )
    log.info("scored forecasts through %s: %s", through, report.to_dict())
    return report


def _score_symbol(
    due: list[StoredForecast], closes: Mapping[date, float], now: datetime
) -> tuple[list[Score], int, int]:
    """Scores of one symbol's due forecasts, and how many wait for a bar or will get none."""
    last_bar = max(closes, default=None)
    scored: list[Score] = []
    waiting = no_bar = 0
    for stored in due:
        forecast = stored.forecast
        actual = closes.get(forecast.target_date)
        previous = closes.get(forecast.as_of)
        if actual is not None and previous is not None:
            scored.append(
                scoring.score(stored, actual=actual, previous_close=previous, scored_at=now)
            )
        elif actual is None and (last_bar is None or forecast.target_date > last_bar):
            waiting += 1
        else:
            no_bar += 1
            log.warning(
                "forecast %d of %s cannot be scored: no bar on %s",
                stored.id,
                forecast.symbol,
                forecast.as_of if actual is not None else forecast.target_date,
            )
    return scored, waiting, no_bar
