"""Hit and miss counters kept in Redis, shared by every process (read by stats and metrics).

Lookups and misses are counted (hits = lookups - misses) so that a cache hit costs no extra
round trip: `read_counted` sends the GET and the lookup's HINCRBY together, and counts a miss
in a second trip only when the key is absent (the slow path, which queues work anyway). When
Redis is full (maxmemory, noeviction) it refuses the counting but still answers the GET: the
read is served and the lost count logged, at most once a minute per process.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

log = logging.getLogger(__name__)
PREFIX = "stockpred:stats:"
_LOG_EVERY_SECONDS = 60.0
_last_logged = [0.0]


def _not_counted(name: str, exc: redis.exceptions.OutOfMemoryError) -> None:
    """Log a count Redis refused (it is full), at most once a minute."""
    now = time.monotonic()
    if now - _last_logged[0] >= _LOG_EVERY_SECONDS:
        _last_logged[0] = now
        log.warning("hit counter %s not counted: Redis is at maxmemory (%s)", name, exc)


class HitCounter:
    """Counts lookups and misses of one cache."""

    def __init__(self, client: redis.Redis, name: str) -> None:
        self._redis = client
        self.key = PREFIX + name

    def read_counted(self, key: str) -> Any:
        """GET `key`, counting a lookup and, if the key is absent, a miss."""
        value = self._get_and_count(key)
        if value is None:
            try:
                self._redis.hincrby(self.key, "misses", 1)
            except redis.exceptions.OutOfMemoryError as exc:
                _not_counted(self.key, exc)
        return value

    def _get_and_count(self, key: str) -> Any:
        """GET and HINCRBY in one round trip (not a transaction: the two need not be atomic)."""
        # The hottest read of the web: redis-py's pipeline object and command wrapper are a
        # large share of it, so both commands go out on a pooled connection directly. A
        # dropped connection goes through an ordinary pipeline, which reconnects.
        pool = self._redis.connection_pool
        connection: Any = pool.get_connection()
        try:
            connection.send_packed_command(
                connection.pack_commands([("GET", key), ("HINCRBY", self.key, "lookups", 1)])
            )
            value = connection.read_response()
            try:
                connection.read_response()
            except redis.exceptions.OutOfMemoryError as exc:
                _not_counted(self.key, exc)  # both replies were read: the connection is clean
            return value
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            connection.disconnect()
        except BaseException:
            # An error reply (e.g. a key of another type) leaves the HINCRBY reply unread: the
            # connection must not go back to the pool with it.
            connection.disconnect()
            raise
        finally:
            pool.release(connection)
        # If the drop came after the server ran HINCRBY, this lookup is counted twice: a hit
        # ratio one request off, never a wrong answer.
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(key)
        pipe.hincrby(self.key, "lookups", 1)
        value, counted = pipe.execute(raise_on_error=False)
        if isinstance(value, Exception):
            raise value
        if isinstance(counted, redis.exceptions.OutOfMemoryError):
            _not_counted(self.key, counted)
        return value

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
