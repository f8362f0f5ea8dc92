"""Hit and miss counters kept in Redis, shared by every process (read by stats and metrics).

Lookups and misses are counted (hits = lookups - misses) so that a cache hit costs no extra
round trip: `read_counted` reads a key and counts its lookup (and, when absent, its miss) in
one server-side script.
"""

from __future__ import annotations

from typing import Any

import redis

PREFIX = "stockpred:stats:"
_READ_COUNTED = """
local value = redis.call('GET', KEYS[1])
redis.call('HINCRBY', KEYS[2], 'lookups', 1)
if not value then redis.call('HINCRBY', KEYS[2], 'misses', 1) end
return value
"""


class HitCounter:
    """Counts lookups and misses of one cache."""

    def __init__(self, client: redis.Redis, name: str) -> None:
        self._redis = client
        self.key = PREFIX + name
        self._read_counted = client.register_script(_READ_COUNTED)

    def read_counted(self, key: str) -> Any:
        """GET `key`, counting a lookup and, if the key is absent, a miss (one round trip)."""
        # The hottest read of the web: redis-py's command wrapper (retries, observability
        # hooks) is a large share of it, so the script is sent on a pooled connection directly.
        # Anything unusual (script not loaded yet, a dropped connection) goes through the
        # wrapper, which loads the script, reconnects and retries.
        pool = self._redis.connection_pool
        connection: Any = pool.get_connection()
        try:
            connection.send_command("EVALSHA", self._read_counted.sha, 2, key, self.key)
            return connection.read_response()
        except redis.exceptions.NoScriptError:
            pass
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            connection.disconnect()
        finally:
            pool.release(connection)
        return self._read_counted(keys=[key, self.key])

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
