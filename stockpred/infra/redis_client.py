"""Redis clients from settings: one per process, created lazily (never at import)."""

from __future__ import annotations

import os
import threading

import redis

from stockpred.settings import Settings

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}


def connect(settings: Settings) -> redis.Redis:
    """Return a new client that decodes responses to str."""
    return redis.Redis.from_url(
        settings.redis_client_url,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
    )


def process_client(settings: Settings) -> redis.Redis:
    """Return this process's shared client (a forked child gets its own)."""
    key = (os.getpid(), settings.redis_client_url)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = connect(settings)
        return client
