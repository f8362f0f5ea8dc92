"""The composition root of market data: which source, which stores, from the settings."""

from __future__ import annotations

import redis

from stockpred.infra.throttle import NoThrottle, RedisThrottle, Throttle
from stockpred.jobs.locks import refresh_lock
from stockpred.market.csv_source import CsvSource
from stockpred.market.daily_cache import DailyCache
from stockpred.market.embedded import EmbeddedSource
from stockpred.market.history import HistoryStore
from stockpred.market.no_data import NoDataMemo
from stockpred.market.retry import RetryPolicy
from stockpred.market.service import MarketData, in_process_lock
from stockpred.market.sources import AutoSource, PriceSource
from stockpred.market.symbols import InvalidSymbol, normalize_symbol
from stockpred.market.yahoo import YahooSource
from stockpred.paths import DataTree
from stockpred.settings import Settings

THROTTLE_KEY = "stockpred:throttle:yahoo"


def build_source(settings: Settings, client: redis.Redis | None = None) -> PriceSource:
    """The source STOCK_DATA_SOURCE names."""
    tree = DataTree.from_settings(settings)
    throttle: Throttle = (
        RedisThrottle(client, THROTTLE_KEY, settings.yahoo_rate_limit) if client else NoThrottle()
    )
    csv = CsvSource(tree.stock_historical)
    choice = settings.stock_data_source
    if choice == "csv":
        return csv
    if choice == "embedded":
        return EmbeddedSource()
    yahoo_cache = tree.stock_cache / "yfinance"
    if choice == "yahoo":
        return YahooSource(
            cache_root=yahoo_cache, timeout=settings.yahoo_timeout, throttle=throttle
        )
    # auto: decide quickly that Yahoo is unreachable; rate limits still back off.
    quick = YahooSource(
        cache_root=yahoo_cache,
        timeout=min(settings.yahoo_timeout, 5.0),
        throttle=throttle,
        retry=RetryPolicy(attempts=2, base=0.25, cap=1.0),
    )
    return AutoSource(csv, quick, EmbeddedSource())


def build_market_data(settings: Settings, client: redis.Redis | None = None) -> MarketData:
    """Market data wired from the settings; without Redis, locks hold in this process only."""
    tree = DataTree.from_settings(settings)
    return MarketData(
        source=build_source(settings, client),
        history=HistoryStore(tree.stock_historical),
        cache=DailyCache(tree.daily_cache),
        intraday_ttl=settings.stock_data_ttl,
        locks=in_process_lock if client is None else refresh_lock(client),
        no_data=None if client is None else NoDataMemo(client, settings.no_data_ttl),
    )


def tracked_symbols(settings: Settings) -> list[str]:
    """Symbols with stored prices, a cache entry or a model folder."""
    tree = DataTree.from_settings(settings)
    names = set(HistoryStore(tree.stock_historical).symbols())
    names |= set(DailyCache(tree.daily_cache).symbols())
    if tree.ml_models.is_dir():
        names |= {p.name for p in tree.ml_models.iterdir() if p.is_dir()}
    valid = set()
    for name in names:
        try:
            valid.add(normalize_symbol(name))
        except InvalidSymbol:
            continue
    return sorted(valid)
