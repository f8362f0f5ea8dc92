"""The one lookup of a cached prediction, made once per request by the WSGI fast path.

`parse_query` applies the route's rules to the symbol and the query; `PredictionLookup.find`
then reads the current model version and the date of the last bar (files memoised by `stat`)
and, for a synchronous request, the cache key in one Redis round trip that also counts the
lookup and a miss. The fast path answers a hit itself; anything else reaches the Flask route
with the `Lookup` (or the error that stopped it) in the WSGI environ, so the route never looks
again (`recorded_lookup`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stockpred.infra.counters import HitCounter
from stockpred.market.daily_cache import DailyCache
from stockpred.ml.prediction_store import cache_key
from stockpred.ml.registry import CurrentVersions
from stockpred.paths import DataTree
from web.params import parse_bool, parse_int, parse_symbol

COUNTER_NAME = "prediction_cache"
LOOKUP_ENVIRON_KEY = "stockpred.prediction_lookup"
MAX_HORIZON = 30
MAX_DAYS = 365  # the original's lookback parameter: accepted and validated, unused


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
        text = None if raw is None else str(raw)
        if text is not None and (text[:1] != "{" or text[-1:] != "}"):
            # Not what a worker writes (a JSON object): recompute rather than serve it.
            self.counter.miss(looked_up=True)  # read_counted counted the lookup already
            text = None
        body = None if text is None else answer_from_cache(text)
        return Lookup(version=version, as_of=as_of, body=body, counted=True)

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


def answer_from_cache(raw: str) -> bytes:
    """The stored JSON object with `"cached": true` added, without parsing it."""
    return (raw[:-1] + ',"cached":true}').encode()
