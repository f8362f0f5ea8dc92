"""Named locks in Redis: owned ones (a job id) that a refusal can name, renewed while work runs,
and redis-py's own Lock for short critical sections (a model pointer, a symbol's price refresh).

The per-symbol training lock has two lives. Queued, it is held by the job id the submitter chose,
with a long TTL (JOB_TTL, the life of the job record that vouches for it): `claim` replaces a
holder whose job finished or vanished, so a long TTL never blocks a symbol behind a dead claim,
and a job may wait in the queue as long as it must without losing it. Running, the worker
re-claims it and `Renewal` cuts its TTL to TRAINING_LOCK_TTL and extends it every third of that
while the training runs, then releases it: a worker killed mid-training frees the symbol within
one TRAINING_LOCK_TTL, and a training longer than any fixed TTL keeps it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType

import redis

log = logging.getLogger(__name__)
PREFIX = "stockpred:lock:"
# How long a price refresh may hold its symbol's lock, and how long another refresh of that
# symbol waits for it. Shorter than the wait, so a killed holder (a pool child SIGKILLed
# mid-refresh) never makes its redelivered task give up; a refresh that outlives it only risks
# a second fetch, its writes being atomic.
REFRESH_LOCK_SECONDS = 30
REFRESH_WAIT_SECONDS = 60
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Extend the owner's claim; take it again when it vanished (Redis lost it, or it expired while
# Redis was unreachable); 0 when another owner holds it.
_RENEW = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not held then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""


class OwnedLock:
    """A lock that expires after `ttl_seconds` unless released by its owner first."""

    def __init__(self, client: redis.Redis, name: str, ttl_seconds: int) -> None:
        self._redis = client
        self.key = PREFIX + name
        self.ttl = ttl_seconds
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)

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

    def renew(self, owner: str) -> int:
        """Give `owner`'s claim `ttl` seconds more: 1 renewed, 2 taken again, 0 held by another."""
        return int(self._renew(keys=[self.key], args=[owner, int(self.ttl * 1000)]))


def training_lock(client: redis.Redis, symbol: str, ttl_seconds: int) -> OwnedLock:
    """The per-symbol training lock with a TTL: JOB_TTL while queued, TRAINING_LOCK_TTL running."""
    return OwnedLock(client, f"train:{symbol}", ttl_seconds)


class Renewal:
    """Keeps `owner`'s claim on `lock` alive while a block runs; releases it when the block ends.

    Renews at once (a queued claim's long TTL becomes the lock's own), then every third of the
    TTL from a daemon thread. A Redis error is logged and the next renewal tried; a claim found
    held by another owner sets `lost`, which the work polls to stop before it publishes.
    """

    def __init__(
        self,
        lock: OwnedLock,
        owner: str,
        *,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.lock = lock
        self.owner = owner
        self.interval = max(lock.ttl / 3, 0.05)
        self.renewals = 0
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._thread = threading.Thread(target=self.run, name=f"renew-{lock.key}", daemon=True)

    @property
    def lost(self) -> bool:
        """True once another owner was found holding the lock."""
        return self._lost.is_set()

    def renew_once(self) -> bool:
        """One renewal; False when the claim is lost or Redis did not answer."""
        try:
            outcome = self.lock.renew(self.owner)
        except redis.RedisError as exc:
            log.warning("could not renew %s for job %s: %s", self.lock.key, self.owner, exc)
            return False
        if outcome == 0:
            log.error(
                "%s is held by job %s, no longer by job %s",
                self.lock.key,
                self.lock.owner(),
                self.owner,
            )
            self._lost.set()
            return False
        if outcome == 2:
            log.warning("%s had vanished; taken again for job %s", self.lock.key, self.owner)
        self.renewals += 1
        return True

    def run(self) -> None:
        """Renew every `interval` until stopped or the claim is lost."""
        while not self._wait(self.interval):
            self.renew_once()
            if self.lost:
                return

    def __enter__(self) -> Renewal:
        self.renew_once()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self.lock.release(self.owner)
        except redis.RedisError as error:
            log.warning(
                "could not release %s held by job %s (it expires within %ss): %s",
                self.lock.key,
                self.owner,
                self.lock.ttl,
                error,
            )


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
    A lock that a restarted Redis lost while it was held only logs on release: the pointer
    was written by then, and failing would report a published model as not published.
    """

    def lock(symbol: str) -> AbstractContextManager[object]:
        found: AbstractContextManager[object] = client.lock(
            f"{PREFIX}pointer:{symbol}",
            timeout=60,
            blocking_timeout=30,
            raise_on_release_error=False,
        )
        return found

    return lock


def refresh_lock(client: redis.Redis) -> Callable[[str], AbstractContextManager[object]]:
    """Per-symbol locks around a price refresh (redis-py's Lock, so no lock files anywhere).

    A holder that dies frees it after REFRESH_LOCK_SECONDS; a waiter gives up after
    REFRESH_WAIT_SECONDS with LockError. A refresh that outlives its lock only logs on release:
    its writes are atomic, so the worst case is a second fetch.
    """

    def lock(symbol: str) -> AbstractContextManager[object]:
        found: AbstractContextManager[object] = client.lock(
            f"{PREFIX}refresh:{symbol}",
            timeout=REFRESH_LOCK_SECONDS,
            blocking_timeout=REFRESH_WAIT_SECONDS,
            raise_on_release_error=False,
        )
        return found

    return lock
