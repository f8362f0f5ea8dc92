"""Hit and miss counters kept in Redis, shared by every process (read by stats and metrics).

Lookups and misses are counted (hits = lookups - misses) so that a cache hit costs no extra
round trip: the lookup count rides in the same pipeline as the cache read.
"""

from __future__ import annotations

from typing import Any

import redis

PREFIX = "stockpred:stats:"


class HitCounter:
    """Counts lookups and misses of one cache."""

    def __init__(self, client: redis.Redis, name: str) -> None:
        self._redis = client
        self.key = PREFIX + name

    def count_lookup(self, pipe: Any) -> None:
        """Add one lookup to a pipeline the caller executes."""
        pipe.hincrby(self.key, "lookups", 1)

    def hit(self) -> None:
        self._redis.hincrby(self.key, "lookups", 1)

    def miss(self, looked_up: bool = False) -> None:
        """Count a miss (and its lookup unless already counted)."""
        pipe = self._redis.pipeline()
        if not looked_up:
            pipe.hincrby(self.key, "lookups", 1)
        pipe.hincrby(self.key, "misses", 1)
        pipe.execute()

    def counts(self) -> dict[str, int]:
        raw = self._redis.hgetall(self.key)
        lookups, misses = int(raw.get("lookups", 0)), int(raw.get("misses", 0))
        return {"hits": lookups - misses, "misses": misses}
