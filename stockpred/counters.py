"""Hit and miss counters kept in Redis, shared by every process (read by stats and metrics)."""

from __future__ import annotations

import redis

PREFIX = "stockpred:stats:"


class HitCounter:
    """Counts hits and misses of one cache."""

    def __init__(self, client: redis.Redis, name: str) -> None:
        self._redis = client
        self._key = PREFIX + name

    def hit(self) -> None:
        self._redis.hincrby(self._key, "hits", 1)

    def miss(self) -> None:
        self._redis.hincrby(self._key, "misses", 1)

    def counts(self) -> dict[str, int]:
        raw = self._redis.hgetall(self._key)
        return {"hits": int(raw.get("hits", 0)), "misses": int(raw.get("misses", 0))}
