"""Yahoo Finance through yfinance's `Ticker.history`, with errors told apart and time bounded.

yfinance runs with its exceptions enabled. Unknown or delisted symbols, rate limits, network
failures and empty or NaN-ridden frames map to UnknownSymbol, RateLimited, SourceUnavailable
and BadData. Each attempt runs in a helper thread with a hard deadline (yfinance's own timeout
applies per HTTP request, and one history call makes several). Rate limits and network errors
are retried with exponential backoff and jitter; requests are spaced by a shared throttle.
Prices are split-adjusted, not dividend-adjusted (`auto_adjust=False`), like the embedded data.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import threading
import warnings
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from stockpred.infra.throttle import NoThrottle, Throttle
from stockpred.market.bars import normalize_frame
from stockpred.market.errors import (
    BadData,
    MarketDataError,
    RateLimited,
    SourceUnavailable,
    UnknownSymbol,
)
from stockpred.market.retry import RetryPolicy
from stockpred.market.sources import SourceFrame

log = logging.getLogger(__name__)
FIRST_FETCH_YEARS = 10
_setup_lock = threading.Lock()
_configured: dict[int, ModuleType] = {}
_executor: concurrent.futures.ThreadPoolExecutor | None = None


def yfinance_module(cache_root: Path) -> ModuleType:
    """Import yfinance once per process: exceptions on, its sqlite caches in a per-process dir."""
    global _executor
    pid = os.getpid()
    with _setup_lock:
        if pid not in _configured:
            # Deferred: yfinance (and its HTTP stack) loads only in a process that fetches.
            import yfinance as yf

            # yfinance's sqlite caches lock under many processes (yfinance#1274).
            cache_dir = cache_root / f"pid-{pid}"
            cache_dir.mkdir(parents=True, exist_ok=True)
            yf.set_tz_cache_location(str(cache_dir))
            yf.config.debug.hide_exceptions = False
            # yfinance itself still calls pandas APIs pandas 4 will drop: not ours to fix.
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"yfinance\b")
            with contextlib.suppress(ImportError, AttributeError):
                # Deferred: only where pandas is new enough to have it.
                from pandas.errors import Pandas4Warning

                warnings.filterwarnings("ignore", category=Pandas4Warning, module=r"yfinance\b")
            _configured[pid] = yf
            _executor = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="yahoo")
        return _configured[pid]


def classify(exc: BaseException, symbol: str) -> MarketDataError:  # noqa: PLR0911 (one return per kind)
    """Map a yfinance or transport exception to the market-data error it means."""
    from yfinance import exceptions as yfe

    if isinstance(exc, MarketDataError):
        return exc
    # curl_cffi's HTTPError is an OSError too: decide by the status it carries first.
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 404:
        return UnknownSymbol(f"Yahoo has no data for {symbol} (unknown or delisted symbol)")
    if status == 429:
        return RateLimited(f"Yahoo rate-limited the request for {symbol}")
    if isinstance(status, int) and status >= 400:
        return SourceUnavailable(f"Yahoo answered HTTP {status} for {symbol}")
    if isinstance(exc, yfe.YFRateLimitError):
        return RateLimited(f"Yahoo rate-limited the request for {symbol}")
    if isinstance(exc, yfe.YFTickerMissingError):
        return UnknownSymbol(f"Yahoo has no data for {symbol} (unknown or delisted symbol)")
    name = type(exc).__name__
    if isinstance(exc, OSError | TimeoutError) or "Timeout" in name or "Connection" in name:
        return SourceUnavailable(f"Yahoo unreachable: {name}: {str(exc)[:200]}")
    if isinstance(exc, yfe.YFDataException):
        return SourceUnavailable(f"Yahoo answered unusably: {str(exc)[:200]}")
    return BadData(f"Yahoo data for {symbol} could not be read: {name}: {str(exc)[:200]}")


class YahooSource:
    """Daily bars from Yahoo Finance."""

    name = "yahoo"

    def __init__(
        self,
        *,
        cache_root: Path,
        timeout: float = 10.0,
        throttle: Throttle | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.cache_root = cache_root
        self.timeout = timeout
        self.throttle = throttle or NoThrottle()
        self.retry = retry or RetryPolicy()

    def fetch(self, symbol: str, start: date | None = None) -> SourceFrame:
        """Bars from `start` (default: the last 10 years), retried on transient errors."""
        first = start or date.today() - timedelta(days=365 * FIRST_FETCH_YEARS)
        return self.retry.run(lambda: self._attempt(symbol, first))

    def _attempt(self, symbol: str, start: date) -> SourceFrame:
        yf = yfinance_module(self.cache_root)
        self.throttle.wait()
        assert _executor is not None
        future = _executor.submit(self._history, yf, symbol, start)
        try:
            raw = future.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise SourceUnavailable(
                f"Yahoo did not answer for {symbol} within {self.timeout:g}s"
            ) from None
        except Exception as exc:
            raise classify(exc, symbol) from exc
        if raw is None or raw.empty:
            raise BadData(f"Yahoo returned no rows for {symbol} since {start}")
        return SourceFrame(self.name, normalize_frame(raw, what=f"Yahoo {symbol}"))

    def _history(self, yf: ModuleType, symbol: str, start: date) -> Any:
        ticker = yf.Ticker(symbol)
        return ticker.history(
            start=start.isoformat(),
            interval="1d",
            auto_adjust=False,
            actions=False,
            timeout=max(1.0, self.timeout / 2),
        )
