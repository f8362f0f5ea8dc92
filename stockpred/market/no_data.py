"""Symbols found to have no data, remembered in Redis for NO_DATA_TTL (a negative cache).

Written by the worker whose refresh found nothing at all (no stored history, and the source
called the symbol unknown or without data); read by the web before it queues a refresh and by
a worker before it fetches. A symbol without data thus costs one look-up per TTL and leaves no
file, folder or lock behind. Light on purpose (no pandas): the web imports it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import redis

from stockpred.infra.clock import utcnow

log = logging.getLogger(__name__)
KEY_PREFIX = "stockpred:nodata:"


@dataclass(frozen=True)
class Remembered:
    """A symbol found without data: why, when, and until when that answer stands."""

    symbol: str
    kind: str
    message: str
    found_at: str
    until: str

    def explain(self) -> str:
        """The message with how long it is remembered (for the 404 and the job's error)."""
        return (
            f"{self.message}; remembered until {self.until} (NO_DATA_TTL): "
            "not looked up again before then"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NoDataMemo:
    """Remembers symbols without data for `ttl`; a Redis key per symbol, expiring by itself."""

    def __init__(self, client: redis.Redis, ttl: timedelta) -> None:
        self._redis = client
        self.ttl = ttl

    def remember(
        self, symbol: str, *, kind: str, message: str, now: datetime | None = None
    ) -> Remembered | None:
        """Remember `symbol` as without data; None (nothing kept) when the TTL is zero."""
        seconds = int(self.ttl.total_seconds())
        if seconds <= 0:
            return None
        found = now or utcnow()
        entry = Remembered(
            symbol,
            kind,
            message,
            found.isoformat(timespec="seconds"),
            (found + timedelta(seconds=seconds)).isoformat(timespec="seconds"),
        )
        self._redis.set(KEY_PREFIX + symbol, json.dumps(entry.to_dict()), ex=seconds)
        return entry

    def recall(self, symbol: str) -> Remembered | None:
        """The remembered answer for `symbol`, or None (never seen, expired, or unreadable)."""
        raw = self._redis.get(KEY_PREFIX + symbol)
        if raw is None:
            return None
        try:
            return Remembered(**json.loads(raw))
        except (TypeError, ValueError) as exc:
            log.warning("ignored an unreadable no-data entry for %s: %s", symbol, exc)
            return None

    def forget(self, symbol: str) -> None:
        """Look `symbol` up again at its next request (data for it was found or added)."""
        self._redis.delete(KEY_PREFIX + symbol)
