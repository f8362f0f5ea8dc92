"""Redis clients from settings: one per process, created lazily (never at import).

One server (`REDIS_URL=redis://…`, the socket, `REDIS_PORT`) or the master of a Sentinel
deployment (`REDIS_URL=sentinel://…`), with the same timeouts, retries and health checks.
"""

from __future__ import annotations

import os
import threading
from typing import Any, cast

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from stockpred.settings import Settings

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}

# A command that finds its connection closed (Redis restarted under its supervisor) is sent
# again on a new connection, after random waits that double from 0.1 s up to 1 s: about 4 s
# in all, 7.5 s at most, longer than the restart takes here. Timeouts are not retried: a
# server that does not answer within socket_timeout would only multiply the wait.
RECONNECT_RETRIES = 10


def reconnect_policy() -> Retry:
    """The retry every client gets: connection errors only, jittered exponential backoff."""
    return Retry(
        ExponentialWithJitterBackoff(cap=1.0, base=0.1),
        RECONNECT_RETRIES,
        supported_errors=(redis.ConnectionError,),
    )


def connect(settings: Settings, *, fail_fast: bool = False) -> redis.Redis:
    """Return a new client that decodes responses to str and reconnects after a restart.

    A `fail_fast` client sends a command again once, at once, on a new connection (a pooled
    one broken by a restart), and no more: for probes that must say quickly that Redis is away
    (health, metrics scrapes, the rate limiter, which then admits).
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": 2 if fail_fast else 5,
        "socket_connect_timeout": 1 if fail_fast else 2,
        # A pooled connection idle this long is PINGed before use, so one broken by a restart
        # is replaced before a command is sent on it.
        "health_check_interval": 30,
        "retry": Retry(NoBackoff(), 1) if fail_fast else reconnect_policy(),
    }
    target = settings.redis_sentinel
    if target is None:
        return redis.Redis.from_url(settings.redis_client_url, **options)
    # Each new connection asks the sentinels for the master's address, so a command retried
    # after a failover reaches the promoted replica; one sent to a demoted master is refused
    # (READONLY) and retried the same way.
    # redis-py's Sentinel API is untyped.
    sentinels: Any = cast(Any, Sentinel)(
        target.nodes, sentinel_kwargs=sentinel_options(settings, fail_fast=fail_fast)
    )
    client: redis.Redis = sentinels.master_for(
        target.master, password=settings.redis_password, db=target.db, **options
    )
    return client


def sentinel_options(settings: Settings, *, fail_fast: bool = False) -> dict[str, Any]:
    """Options of the connections to the sentinels themselves: timeouts and their password.

    Each asked once: discovery moves on to the next sentinel when one does not answer.
    """
    options: dict[str, Any] = {
        "socket_timeout": 1 if fail_fast else 2,
        "socket_connect_timeout": 1 if fail_fast else 2,
        "retry": Retry(NoBackoff(), 0),
    }
    if settings.redis_sentinel_password:
        options["password"] = settings.redis_sentinel_password
    return options


def process_client(settings: Settings) -> redis.Redis:
    """Return this process's shared client (a forked child gets its own)."""
    key = (os.getpid(), settings.redis_client_url)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = connect(settings)
        return client
