"""`/api/v1/historical/{symbol}`: daily bars from the cache, refreshed through the queue."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from stockpred.infra.clock import utcnow
from stockpred.infra.counters import HitCounter
from stockpred.jobs.errors import ErrorKind
from stockpred.market.daily_cache import MAX_DAYS, CachedPrices, DailyCache
from stockpred.market.no_data import NoDataMemo
from stockpred.paths import DataTree
from web.dispatch import accepted, submit, wait_for_job
from web.errors import ApiError
from web.metrics import MARKET_COUNTER
from web.params import parse_int, parse_symbol
from web.services import services

bp = Blueprint("historical", __name__, url_prefix="/api/v1/historical")
DEFAULT_DAYS = 30
NOT_FOUND_ERRORS = {ErrorKind.UNKNOWN_SYMBOL, ErrorKind.NO_DATA, ErrorKind.INVALID_SYMBOL}


def _answer(entry: CachedPrices, days: int, *, cached: bool, stale: bool = False) -> Response:
    rows = entry.records(days)
    for row in rows:
        row["date"] = row["timestamp"]
        row["timestamp"] = f"{row['timestamp']}T00:00:00Z"
    body: dict[str, Any] = {
        "symbol": entry.symbol,
        "days": days,
        "data": rows,
        "count": len(rows),
        "source": entry.source,
        "as_of": entry.as_of,
        "first_date": entry.first_date,
        "fetched_at": entry.fetched_at.isoformat(),
        "cached": cached,
    }
    if stale:
        body["stale"] = True
    return jsonify(body)


def refuse_if_remembered(symbol: str) -> None:
    """404 at once for a symbol remembered without data (NO_DATA_TTL): no job is queued."""
    svc = services()
    remembered = NoDataMemo(svc.redis, svc.settings.no_data_ttl).recall(symbol)
    if remembered is not None:
        raise ApiError(404, "no data for symbol", remembered.explain())


@bp.get("/<path:symbol>")
def historical(symbol: str) -> Response:
    """Daily OHLCV bars of a symbol: ?days=1..730 (default 30), with source and as_of."""
    sym = parse_symbol(symbol)
    days = parse_int("days", request.args.get("days"), 1, MAX_DAYS, DEFAULT_DAYS)
    assert days is not None
    svc = services()
    settings = svc.settings
    cache = DailyCache(DataTree.from_settings(settings).daily_cache)
    counter = HitCounter(svc.redis, MARKET_COUNTER)
    entry = cache.load(sym)
    if entry is not None and entry.is_fresh(utcnow(), settings.stock_data_ttl):
        counter.hit()
        return _answer(entry, days, cached=True)
    counter.miss()
    refuse_if_remembered(sym)
    job = submit(
        kind="refresh_prices",
        task_name="maintenance.refresh_prices",
        kwargs={"symbol": sym},
        symbol=sym,
        dedupe_key=f"refresh_prices:{sym}",
    )
    finished = wait_for_job(job.id, settings.historical_wait)
    if finished is None:
        return accepted(job)
    if finished.state == "succeeded":
        fresh = cache.load(sym)
        if fresh is not None:
            return _answer(fresh, days, cached=False)
    error = finished.error or {}
    if error.get("kind") in NOT_FOUND_ERRORS:
        raise ApiError(404, "no data for symbol", error.get("message"))
    if entry is not None:
        return _answer(entry, days, cached=True, stale=True)
    raise ApiError(503, "market data unavailable", error.get("message") or finished.state)
