"""The one lookup of a cached prediction, made once per request by the WSGI fast path.

`parse_query` applies the route's rules to the symbol and the query; `PredictionLookup.find`
then reads the current model version and the date of the last bar (files memoised by `stat`)
and, for a synchronous request, the cache key in one Redis round trip that also counts the
lookup and a miss. A cached value is served only once `stockpred.ml.cached_prediction` has
checked it; one that fails is logged, counted, deleted and treated as a miss. The fast path
answers a hit itself; anything else reaches the Flask route with the `Lookup` (or the error
that stopped it) in the WSGI environ, so the route never looks again (`recorded_lookup`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from stockpred.infra.counters import HitCounter
from stockpred.market.daily_cache import DailyCache
from stockpred.ml.cached_prediction import CacheIdentity, InvalidCachedPrediction, parse_cached
from stockpred.ml.prediction_store import cache_key
from stockpred.ml.registry import CurrentVersions
from stockpred.paths import DataTree
from web.params import parse_bool, parse_int, parse_symbol

COUNTER_NAME = "prediction_cache"
LOOKUP_ENVIRON_KEY = "stockpred.prediction_lookup"
MAX_HORIZON = 30
MAX_DAYS = 365  # the original's lookback parameter: accepted and validated, unused
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictQuery:
    """A prediction request's parameters, validated."""

    symbol: str
    horizon: int
    run_async: bool


def parse_query(raw_symbol: str, args: Mapping[str, str]) -> PredictQuery:
    """The symbol and ?horizon, ?days, ?async of a request, or the ApiError (400) answering it."""
    symbol = parse_symbol(raw_symbol)
    horizon = parse_int("horizon", args.get("horizon"), 1, MAX_HORIZON, 1) or 1
    parse_int("days", args.get("days"), 1, MAX_DAYS, None)
    run_async = parse_bool("async", args.get("async"))
    return PredictQuery(symbol=symbol, horizon=horizon, run_async=run_async)


@dataclass(frozen=True)
class Lookup:
    """What one request found: model version, last bar, and the cached answer if any."""

    version: str | None
    as_of: str | None
    body: bytes | None
    counted: bool  # the lookup (and its miss) are already counted in Redis


class PredictionLookup:
    """The cache key of a symbol's current prediction and the read of it; built once per app."""

    def __init__(self, tree: DataTree, client: Any) -> None:
        self.tree = tree
        self.redis = client
        self.counter = HitCounter(client, COUNTER_NAME)
        self._daily = DailyCache(tree.daily_cache)
        self._versions = CurrentVersions(tree.ml_models)

    def find(self, query: PredictQuery) -> Lookup:
        """The current version, last bar and (unless async) the cached answer, counted."""
        version = self._versions.get(query.symbol)
        if version is None:
            return Lookup(version=None, as_of=None, body=None, counted=False)
        as_of = self._daily.as_of(query.symbol)
        if as_of is None or query.run_async:
            return Lookup(version=version, as_of=as_of, body=None, counted=False)
        key = cache_key(query.symbol, query.horizon, version, as_of)
        raw = self.counter.read_counted(key)
        body = None
        if raw is not None:
            identity = CacheIdentity(query.symbol, query.horizon, version, as_of)
            try:
                body = answer_from_cache(parse_cached(str(raw), identity))
            except InvalidCachedPrediction as exc:
                self._refuse(key, exc)
        return Lookup(version=version, as_of=as_of, body=body, counted=True)

    def _refuse(self, key: str, problem: InvalidCachedPrediction) -> None:
        """Log, count and delete a cached value that must not be served; count the miss."""
        # Deferred: web.metrics imports this module.
        from web.metrics import web_metrics

        log.warning("cached prediction %s refused and deleted: %s", key, problem)
        web_metrics().invalid_cached.inc()
        try:
            self.redis.delete(key)
        except redis.RedisError as exc:  # it expires with its TTL; recomputing replaces it
            log.warning("cached prediction %s could not be deleted: %s", key, exc)
        self.counter.miss(looked_up=True)  # read_counted counted the lookup already

    def count_miss(self, found: Lookup) -> None:
        """Count the miss of a request that did not read the cache (no data yet, or async)."""
        if not found.counted:
            self.counter.miss()


def recorded_lookup(environ: Mapping[str, Any]) -> Lookup:
    """The fast path's lookup of this request; the error that stopped it is raised here."""
    found = environ.get(LOOKUP_ENVIRON_KEY)
    if isinstance(found, Exception):
        raise found
    if not isinstance(found, Lookup):
        raise RuntimeError("a prediction request reached the route without the fast path's lookup")
    return found


def answer_from_cache(document: Mapping[str, Any]) -> bytes:
    """The checked cached document, with `"cached": true`, as the answer's bytes.

    Encoded again rather than sent as stored: what is served is exactly what was checked.
    """
    return json.dumps({**document, "cached": True}, separators=(",", ":")).encode()
