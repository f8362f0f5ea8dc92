"""The storage lock: one backup, restore or cleanup at a time, across every host of the set.

It lives in Redis (`stockpred.jobs.locks.OwnedLock`, kept alive by its `Renewal` while the run
lasts), so hosts sharing one store serialise without trusting file locks on a network
filesystem; a holder that dies frees it within STORAGE_LOCK_TTL. A host that runs its own Redis
(no REDIS_URL: one host) also holds its file lock in backups/, so a CLI run made while that
Redis is down (the CLI then goes on without Redis) still excludes a worker's run. With REDIS_URL
set and no Redis to ask, a run is refused: nothing else could exclude the other hosts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator

import redis

from stockpred.infra.files import LockBusy, file_lock
from stockpred.jobs.locks import OwnedLock, Renewal
from stockpred.paths import DataTree
from stockpred.settings import Settings
from stockpred.storage.errors import StorageBusy, StorageLockUnavailable

log = logging.getLogger(__name__)
LOCK_NAME = "storage"
BUSY = "another backup, restore or cleanup is running"
# A run that must wait (a manual one) gives up after this long, longer than any backup here.
WAIT_SECONDS = 6 * 3600


def owner_id() -> str:
    """Who holds the lock, as a refusal names it: host, process and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def storage_lock(
    settings: Settings, client: redis.Redis | None, *, wait: bool = True
) -> Iterator[None]:
    """Hold the storage lock for the block; without `wait`, a held lock raises StorageBusy."""
    tree = DataTree.from_settings(settings)
    with contextlib.ExitStack() as held:
        if client is not None:
            lock = OwnedLock(client, LOCK_NAME, int(settings.storage_lock_ttl.total_seconds()))
            owner = owner_id()
            _acquire(lock, owner, wait=wait)
            held.enter_context(Renewal(lock, owner))
        elif not settings.manages_redis:
            raise StorageLockUnavailable(
                "the storage lock lives in Redis (REDIS_URL), which does not answer: "
                "start it, or run this where it answers"
            )
        else:
            log.warning("Redis does not answer: the storage lock is this host's file lock alone")
        if settings.manages_redis:
            held.enter_context(_host_lock(tree, wait=wait))
        yield


def _acquire(lock: OwnedLock, owner: str, *, wait: bool) -> None:
    """Take `lock` for `owner`, polling every third of its TTL while it may wait."""
    deadline = time.monotonic() + WAIT_SECONDS
    logged = False
    while not lock.acquire(owner):
        holder = lock.owner() or "a run that just ended"
        if not wait:
            raise StorageBusy(f"{BUSY} (held by {holder})")
        if time.monotonic() > deadline:
            raise StorageBusy(f"{BUSY} (held by {holder}); gave up after {WAIT_SECONDS}s")
        if not logged:
            log.info("waiting for the storage lock held by %s", holder)
            logged = True
        time.sleep(min(1.0, lock.ttl / 3))


@contextlib.contextmanager
def _host_lock(tree: DataTree, *, wait: bool) -> Iterator[None]:
    try:
        with file_lock(tree.storage_lock, blocking=wait):
            yield
    except LockBusy:
        raise StorageBusy(f"{BUSY} on this host") from None
