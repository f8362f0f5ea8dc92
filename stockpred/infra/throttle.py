"""A request-rate limit shared by every process through Redis (GCRA: evenly spaced slots)."""

from __future__ import annotations

import time
from typing import Protocol

import redis

# Reserve the next slot atomically: the theoretical arrival time advances by one interval per
# request; the caller sleeps until its slot. Returns the wait in microseconds.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(tat, now)
redis.call('SET', KEYS[1], slot + interval, 'PX', math.ceil((slot + interval - now) / 1000) + 1000)
return slot - now
"""


class Throttle(Protocol):
    """Blocks until the caller may make one request."""

    def wait(self) -> float:
        """Block; return the seconds waited."""
        ...


class RedisThrottle:
    """At most `rate` requests per second across all processes sharing the Redis key."""

    def __init__(self, client: redis.Redis, key: str, rate: float) -> None:
        self._reserve = client.register_script(_RESERVE)
        self._key = key
        self._interval_us = max(1, int(1_000_000 / rate))

    def wait(self) -> float:
        delay = int(self._reserve(keys=[self._key], args=[self._interval_us])) / 1_000_000
        if delay > 0:
            time.sleep(delay)
        return max(0.0, delay)


class NoThrottle:
    """No limit (unit tests, single local runs without Redis)."""

    def wait(self) -> float:
        return 0.0
