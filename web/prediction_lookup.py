"""How the web finds a cached prediction: current model version, last bar, then one Redis read.

Shared by the Flask route and the WSGI fast path so that both build the same key and count
lookups and misses the same way. Built once per app; file reads are memoised by `stat`.
"""

from __future__ import annotations

from typing import Any

from stockpred.infra.counters import HitCounter
from stockpred.market.daily_cache import DailyCache
from stockpred.ml.prediction_store import cache_key
from stockpred.ml.registry import CurrentVersions
from stockpred.paths import DataTree

COUNTER_NAME = "prediction_cache"
# Set in the WSGI environ by the fast path when it already looked the key up and missed.
LOOKED_UP_ENVIRON_KEY = "stockpred.prediction_lookup_missed"


class PredictionLookup:
    """The cache key of a symbol's current prediction and the read of it."""

    def __init__(self, tree: DataTree, client: Any) -> None:
        self.tree = tree
        self.redis = client
        self.counter = HitCounter(client, COUNTER_NAME)
        self._daily = DailyCache(tree.daily_cache)
        self._versions = CurrentVersions(tree.ml_models)

    def version(self, symbol: str) -> str | None:
        """The published model version, re-read only when the pointer file changes."""
        return self._versions.get(symbol)

    def as_of(self, symbol: str) -> str | None:
        """The date of the symbol's last cached bar (the sidecar is memoised by DailyCache)."""
        return self._daily.as_of(symbol)

    def read(self, symbol: str, horizon: int, version: str, as_of: str) -> str | None:
        """The cached result as stored; the lookup (and a miss) are counted in the same trip."""
        raw = self.counter.read_counted(cache_key(symbol, horizon, version, as_of))
        if raw is None:
            return None
        text = str(raw)
        if text[:1] != "{" or text[-1:] != "}":
            # Not what a worker writes (a JSON object): recompute rather than serve it.
            self.counter.miss(looked_up=True)  # the script counted the lookup already
            return None
        return text

    def count_miss(self) -> None:
        """Count a miss that `read` did not see (no data yet, or an async request)."""
        self.counter.miss()


def answer_from_cache(raw: str) -> bytes:
    """The stored JSON object with `"cached": true` added, without parsing it."""
    return (raw[:-1] + ',"cached":true}').encode()
