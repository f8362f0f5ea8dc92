"""Named locks in Redis with an owner (a job id), so a refusal can say who holds the lock."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import redis

PREFIX = "stockpred:lock:"
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class OwnedLock:
    """A lock that expires after `ttl_seconds` unless released by its owner first."""

    def __init__(self, client: redis.Redis, name: str, ttl_seconds: int) -> None:
        self._redis = client
        self.key = PREFIX + name
        self.ttl = ttl_seconds
        self._release = client.register_script(_RELEASE)

    def acquire(self, owner: str) -> bool:
        """Take the lock for `owner`; True also when `owner` already holds it (a redelivery)."""
        if self._redis.set(self.key, owner, nx=True, ex=self.ttl):
            return True
        return self.owner() == owner

    def owner(self) -> str | None:
        value = self._redis.get(self.key)
        return None if value is None else str(value)

    def release(self, owner: str) -> bool:
        """Release if `owner` holds it."""
        return bool(self._release(keys=[self.key], args=[owner]))


def training_lock(client: redis.Redis, symbol: str, training_limit_seconds: int) -> OwnedLock:
    """The per-symbol training lock; it outlives the task's hard time limit by ten minutes."""
    return OwnedLock(client, f"train:{symbol}", training_limit_seconds + 600)


def claim(lock: OwnedLock, job_id: str, running: Callable[[str], bool]) -> str | None:
    """Take `lock` for `job_id`; return the holder's job id instead when that job is running.

    A holder whose job finished or vanished without releasing (a killed worker) is replaced.
    """
    if lock.acquire(job_id):
        return None
    owner = lock.owner()
    if owner is not None and running(owner):
        return owner
    if owner is not None:
        lock.release(owner)
    if lock.acquire(job_id):
        return None
    return lock.owner() or owner or "unknown"


def pointer_lock(client: redis.Redis) -> Callable[[str], AbstractContextManager[object]]:
    """Per-symbol locks around a model pointer's read-and-write (redis-py's Lock).

    Held for milliseconds; a caller waits up to half a minute for it, then gets LockError.
    """

    def lock(symbol: str) -> AbstractContextManager[object]:
        found: AbstractContextManager[object] = client.lock(
            f"{PREFIX}pointer:{symbol}", timeout=60, blocking_timeout=30
        )
        return found

    return lock
