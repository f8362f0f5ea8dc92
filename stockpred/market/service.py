"""Refreshing a symbol's prices: fetch what is new, merge into the history, rewrite the cache.

One refresh per symbol at a time across processes and hosts (a Redis lock per symbol); a
refresh that finds the daily cache still fresh does nothing, so two concurrent requests cost
one fetch. A symbol the source has no data for, and that has no stored history, is remembered
(`NoDataMemo`) and answered from that memory until NO_DATA_TTL passes: no fetch, no file, no
folder, no lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from redis.exceptions import LockError

from stockpred.infra.clock import utcnow
from stockpred.market.bars import merge_frames
from stockpred.market.daily_cache import KEEP_BARS, DailyCache
from stockpred.market.errors import (
    MarketDataError,
    NoData,
    RefreshBusy,
    RememberedNoData,
    UnknownSymbol,
)
from stockpred.market.history import DamagedHistory, HistoryStore
from stockpred.market.no_data import NoDataMemo
from stockpred.market.sources import PriceSource

log = logging.getLogger(__name__)
OVERLAP = timedelta(days=10)  # refetch a little of what we have, so a fetch never starts empty
SymbolLock = Callable[[str], AbstractContextManager[object]]
_IN_PROCESS = threading.Lock()


def in_process_lock(symbol: str) -> AbstractContextManager[object]:
    """One refresh at a time in this process: for a process without Redis (the CLI, tests)."""
    return _IN_PROCESS


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
        locks: SymbolLock = in_process_lock,
        no_data: NoDataMemo | None = None,
    ) -> None:
        self.source = source
        self.history = history
        self.cache = cache
        self.intraday_ttl = intraday_ttl
        self.clock = clock
        self.locks = locks
        self.no_data = no_data

    def refresh(self, symbol: str, *, force: bool = False) -> RefreshResult:
        """Fetch new bars unless the cache is fresh (or `force`); merge and store them.

        A symbol remembered without data raises RememberedNoData unless `force`.
        """
        if not force and (unchanged := self._fresh(symbol)) is not None:
            return unchanged  # fast path: no lock, so readers never wait behind a slow fetch
        if not force:
            self._raise_if_remembered(symbol)
        try:
            with self.locks(symbol):
                return self._refresh_locked(symbol, force)
        except LockError:
            raise RefreshBusy(f"another refresh of {symbol} held its lock too long") from None

    def _raise_if_remembered(self, symbol: str) -> None:
        remembered = None if self.no_data is None else self.no_data.recall(symbol)
        if remembered is not None:
            kind = UnknownSymbol.kind if remembered.kind == UnknownSymbol.kind else NoData.kind
            raise RememberedNoData(remembered.explain(), kind)

    def _refresh_locked(self, symbol: str, force: bool) -> RefreshResult:
        if not force and (unchanged := self._fresh(symbol)) is not None:
            return unchanged
        stored = self._stored(symbol)
        start = None if stored is None or stored.empty else (stored.index[-1] - OVERLAP).date()
        try:
            fetched = self._fetch(symbol, start)
        except (UnknownSymbol, NoData) as exc:
            if stored is None:
                self._remember(symbol, exc)
            raise
        if self.no_data is not None and force:
            self.no_data.forget(symbol)
        return self._store(symbol, stored, fetched)

    def _remember(self, symbol: str, exc: UnknownSymbol | NoData) -> None:
        """Remember a symbol without data; a Redis failure here only costs a later look-up."""
        if self.no_data is None:
            return
        try:
            entry = self.no_data.remember(symbol, kind=str(exc.kind), message=str(exc))
        except Exception:
            log.warning("could not remember that %s has no data", symbol, exc_info=True)
            return
        if entry is not None:
            log.info("%s has no data (%s); remembered until %s", symbol, exc, entry.until)

    def _store(self, symbol: str, stored: pd.DataFrame | None, fetched: Any) -> RefreshResult:
        """Merge fetched bars into the history and rewrite the daily cache (lock held)."""
        merged = merge_frames(stored, fetched.frame)
        new_rows = len(merged) - (0 if stored is None else len(stored))
        self.history.save(symbol, merged)
        entry = self.cache.store(
            symbol=symbol,
            source=fetched.source,
            bars=to_rows(merged.tail(KEEP_BARS)),
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
