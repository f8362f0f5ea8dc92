"""Where predictions are kept: a Redis cache keyed by model version and last bar, and a daily log.

Cache key: `stockpred:prediction:<SYMBOL>:h<horizon>:<model version>:<date of the last bar>`, so a
new model or new data is never answered from an old entry; entries expire after
ML_PREDICTION_TTL and survive restarts with Redis's AOF. Every computed prediction is also
appended as one JSON line to `stock_data/predictions/daily/<YYYY-MM-DD>.jsonl` (one O_APPEND
write per line, so concurrent writers never interleave). No TensorFlow here.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

KEY_PREFIX = "stockpred:prediction:"


def cache_key(symbol: str, horizon: int, version: str, as_of: str) -> str:
    return f"{KEY_PREFIX}{symbol}:h{horizon}:{version}:{as_of}"


class PredictionCache:
    """Prediction results in Redis."""

    def __init__(self, client: redis.Redis, ttl: timedelta) -> None:
        self._redis = client
        self._ttl = int(ttl.total_seconds())

    def get_raw(self, key: str) -> str | None:
        """The cached result as stored (a JSON object string)."""
        raw = self._redis.get(key)
        return None if raw is None else str(raw)

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self._redis.get(key)
        return None if raw is None else json.loads(raw)

    def put(self, key: str, result: dict[str, Any]) -> None:
        self._redis.set(key, json.dumps(result, separators=(",", ":")), ex=self._ttl)

    def clear(self, symbol: str | None = None) -> int:
        """Delete cached predictions (of one symbol, or all); return how many."""
        pattern = f"{KEY_PREFIX}{symbol}:*" if symbol else f"{KEY_PREFIX}*"
        deleted = 0
        batch: list[str] = []
        for key in self._redis.scan_iter(match=pattern, count=500):
            batch.append(str(key))
            if len(batch) >= 500:
                deleted += int(self._redis.delete(*batch))
                batch = []
        if batch:
            deleted += int(self._redis.delete(*batch))
        return deleted

    def size(self) -> int:
        """How many predictions are cached."""
        return sum(1 for _ in self._redis.scan_iter(match=f"{KEY_PREFIX}*", count=500))


def append_prediction(directory: Path, result: dict[str, Any]) -> Path:
    """Append one prediction to today's JSON-lines file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{datetime.now(UTC):%Y-%m-%d}.jsonl"
    line = (json.dumps(result, separators=(",", ":"), default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return path
