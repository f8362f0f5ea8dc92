"""`POST /api/v1/cache/clear` and `GET /api/v1/stats`, in the original's shapes."""

from __future__ import annotations

import json
import resource
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request

from stockpred.infra.clock import utcnow_iso
from stockpred.ml.prediction_store import KEY_PREFIX, PredictionCache
from stockpred.ml.registry import ModelRegistry
from stockpred.paths import DataTree
from stockpred.telemetry.queue_facts import queue_depths
from stockpred.telemetry.redis_facts import read_cache_facts
from web.metrics import CACHE_COUNTERS, MARKET_COUNTER
from web.params import json_body, parse_symbol
from web.prediction_lookup import COUNTER_NAME
from web.services import services

bp = Blueprint("stats", __name__, url_prefix="/api/v1")
LOADED_PREFIX = "stockpred:loaded:"


@bp.post("/cache/clear")
def clear_cache() -> Response:
    """Drop cached predictions (all, or ?symbol= / body {"symbol"})."""
    # A symbol given, even empty, names one symbol: only its absence means every symbol.
    raw = request.args.get("symbol", json_body().get("symbol"))
    symbol = None if raw is None else parse_symbol(str(raw))
    return jsonify(clear_predictions(symbol))


def clear_predictions(symbol: str | None) -> dict[str, Any]:
    """Drop the cached predictions of `symbol` (None: every symbol); what was done."""
    svc = services()
    deleted = PredictionCache(svc.redis, svc.settings.ml_prediction_ttl).clear(symbol)
    scope = f"for {symbol}" if symbol else "for all symbols"
    return {
        "message": f"prediction cache cleared {scope}",
        "time": utcnow_iso(),
        "deleted": deleted,
        "symbol": symbol,
    }


@bp.get("/stats")
def stats() -> Response:
    """Cache hits/misses/size, models and loaded versions, uptime, memory and queue depths."""
    svc = services()
    client = svc.redis
    caches = read_cache_facts(client, counters=CACHE_COUNTERS, key_prefix=KEY_PREFIX)
    tree = DataTree.from_settings(svc.settings)
    registry = ModelRegistry(tree.ml_models, tree.scalers)
    loaded: dict[str, Any] = {}
    for key in client.scan_iter(match=f"{LOADED_PREFIX}*", count=200):
        try:
            value = json.loads(client.get(key) or "null")
        except ValueError:  # not what a worker writes: skipped rather than failing the stats
            continue
        if value is not None:
            loaded[str(key)[len(LOADED_PREFIX) :]] = value
    return jsonify(
        {
            "cache": {
                **caches.summary(COUNTER_NAME),
                "size": caches.size,
                "market_data": caches.summary(MARKET_COUNTER),
            },
            "model": {
                "models": registry.symbols(),
                "versions": {s: registry.current_version(s) for s in registry.symbols()},
                "loaded": loaded,
            },
            "system": {
                "uptime_seconds": round(time.time() - svc.started_at, 1),
                "memory_max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "queue_depths": queue_depths(client),
                "redis_used_memory": int(client.info("memory").get("used_memory", 0)),
                "time": utcnow_iso(),
            },
        }
    )
