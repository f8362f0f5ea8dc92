"""Refreshing a symbol's prices: fetch what is new, merge into the history, rewrite the cache.

One refresh per symbol at a time across processes (the history lock); a refresh that finds the
daily cache still fresh does nothing, so two concurrent requests cost one fetch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from stockpred.infra.clock import utcnow
from stockpred.market.bars import merge_frames
from stockpred.market.daily_cache import MAX_DAYS, DailyCache
from stockpred.market.errors import MarketDataError
from stockpred.market.history import DamagedHistory, HistoryStore
from stockpred.market.sources import PriceSource

log = logging.getLogger(__name__)
OVERLAP = timedelta(days=10)  # refetch a little of what we have, so a fetch never starts empty


@dataclass(frozen=True)
class RefreshResult:
    """What a refresh did."""

    symbol: str
    source: str
    refreshed: bool
    rows: int
    new_rows: int
    first_date: str
    as_of: str
    fetched_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def to_rows(frame: pd.DataFrame) -> list[list[Any]]:
    """Frame rows as JSON-ready [date, open, high, low, close, volume] lists."""
    return [
        [
            ts.strftime("%Y-%m-%d"),
            round(float(o), 6),
            round(float(h), 6),
            round(float(lo), 6),
            round(float(c), 6),
            int(v),
        ]
        for ts, o, h, lo, c, v in zip(
            frame.index,
            frame["open"],
            frame["high"],
            frame["low"],
            frame["close"],
            frame["volume"],
            strict=True,
        )
    ]


class MarketData:
    """Keeps the history and the daily cache of each symbol up to date from a source."""

    def __init__(
        self,
        *,
        source: PriceSource,
        history: HistoryStore,
        cache: DailyCache,
        intraday_ttl: timedelta,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.source = source
        self.history = history
        self.cache = cache
        self.intraday_ttl = intraday_ttl
        self.clock = clock

    def refresh(self, symbol: str, *, force: bool = False) -> RefreshResult:
        """Fetch new bars unless the cache is fresh (or `force`); merge and store them."""
        if not force and (unchanged := self._fresh(symbol)) is not None:
            return unchanged  # fast path: no lock, so readers never wait behind a slow fetch
        with self.history.lock(symbol):
            if not force and (unchanged := self._fresh(symbol)) is not None:
                return unchanged
            stored = self._stored(symbol)
            start = None if stored is None or stored.empty else (stored.index[-1] - OVERLAP).date()
            fetched = self._fetch(symbol, start)
            merged = merge_frames(stored, fetched.frame)
            new_rows = len(merged) - (0 if stored is None else len(stored))
            self.history.save(symbol, merged)
            entry = self.cache.store(
                symbol=symbol,
                source=fetched.source,
                bars=to_rows(merged.tail(MAX_DAYS)),
                first_date=merged.index[0].strftime("%Y-%m-%d"),
                total_rows=len(merged),
                fetched_at=self.clock(),
            )
        log.info(
            "refreshed %s from %s: %d rows (%d new), last bar %s",
            symbol,
            fetched.source,
            len(merged),
            new_rows,
            entry.as_of,
        )
        return RefreshResult(
            symbol,
            fetched.source,
            True,
            len(merged),
            new_rows,
            entry.first_date,
            entry.as_of,
            entry.fetched_at.isoformat(),
        )

    def _fetch(self, symbol: str, start: Any) -> Any:
        """Fetch from the source, counting fetches, failures and latency."""
        # Deferred: prometheus_client must not load before a worker has set its metrics folder.
        from stockpred.telemetry.worker_metrics import worker_metrics

        metrics = worker_metrics()
        started = time.perf_counter()
        try:
            fetched = self.source.fetch(symbol, start)
        except MarketDataError as exc:
            metrics.data_errors.labels(type(exc).__name__).inc()
            raise
        metrics.data_fetches.labels(fetched.source).inc()
        metrics.data_latency.labels(fetched.source).observe(time.perf_counter() - started)
        return fetched

    def _fresh(self, symbol: str) -> RefreshResult | None:
        meta = self.cache.meta(symbol)
        if meta is None or not meta.is_fresh(self.clock(), self.intraday_ttl):
            return None
        return RefreshResult(
            symbol,
            meta.source,
            False,
            meta.total_rows,
            0,
            meta.first_date,
            meta.as_of,
            meta.fetched_at.isoformat(),
        )

    def _stored(self, symbol: str) -> pd.DataFrame | None:
        """The stored history for a refresh to extend; a damaged file is fetched again whole."""
        try:
            return self.history.load(symbol)
        except DamagedHistory as exc:
            log.error("%s; fetching the whole history again", exc)
            return None

    def history_frame(self, symbol: str) -> pd.DataFrame | None:
        """The stored history; a damaged file is replaced by a forced refresh first."""
        try:
            return self.history.load(symbol)
        except DamagedHistory as exc:
            log.error("%s; refreshing %s", exc, symbol)
            self.refresh(symbol, force=True)
            return self.history.load(symbol)

    def bars(self, symbol: str) -> pd.DataFrame:
        """The full daily history of `symbol`, refreshed first when stale."""
        self.refresh(symbol)
        frame = self.history_frame(symbol)
        assert frame is not None
        return frame
