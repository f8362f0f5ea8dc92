"""Where predictions are kept: a Redis cache keyed by model version and last bar, and a daily log.

Cache key: `stockpred:prediction:<SYMBOL>:h<horizon>:<model version>:<date of the last bar>`, so a
new model or new data is never answered from an old entry; entries expire after
ML_PREDICTION_TTL and survive restarts with Redis's AOF. Every computed prediction is also
appended as one JSON line to `stock_data/predictions/daily/<YYYY-MM-DD>.jsonl` (one O_APPEND
write per line, so concurrent writers never interleave). No TensorFlow here.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import redis

from stockpred.infra.clock import utcnow
from stockpred.infra.deferred_writes import DeferredWrites

KEY_PREFIX = "stockpred:prediction:"


def cache_key(symbol: str, horizon: int, version: str, as_of: str) -> str:
    return f"{KEY_PREFIX}{symbol}:h{horizon}:{version}:{as_of}"


class PredictionCache:
    """Prediction results in Redis."""

    def __init__(
        self, client: redis.Redis, ttl: timedelta, writes: DeferredWrites | None = None
    ) -> None:
        self._redis = client
        self._ttl = int(ttl.total_seconds())
        self._writes = writes or DeferredWrites(client)

    def put(self, key: str, encoded: str) -> None:
        """Store a result already encoded as a JSON object string (the reply is read later)."""
        self._writes.send("SET", key, encoded, "EX", self._ttl)

    def flush(self) -> None:
        """Wait for the replies of earlier puts."""
        self._writes.flush()

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


class PredictionJournal:
    """Appends predictions to `<directory>/<UTC date>.jsonl`, one `write()` per line.

    The day's file stays open between predictions; it is reopened on a new day, in a forked
    child, or when the file on disk is no longer the one held (a restore or cleanup replaced it).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fd = -1
        self._day = ""
        self._path = directory
        self._pid = -1
        self._inode = -1

    def append(self, line: str) -> Path:
        """Append one JSON document (without its newline) to today's file."""
        day = utcnow().date().isoformat()
        if day != self._day or not self._holds():
            self._open(day)
        view = memoryview((line + "\n").encode())
        while view:
            view = view[os.write(self._fd, view) :]
        return self._path

    def _holds(self) -> bool:
        """Whether the held descriptor is still today's file in this process."""
        if self._fd < 0 or self._pid != os.getpid():
            return False
        try:
            return os.stat(self._path).st_ino == self._inode
        except FileNotFoundError:
            return False

    def _open(self, day: str) -> None:
        self.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._path = self.directory / f"{day}.jsonl"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._day, self._pid, self._inode = day, os.getpid(), os.fstat(self._fd).st_ino

    def close(self) -> None:
        """Close the held file (only ever this process's own descriptor)."""
        if self._fd >= 0 and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = -1
