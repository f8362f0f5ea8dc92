"""Health of the service: Redis, a live worker on each queue, the data root, free disk."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import redis
from kombu.exceptions import OperationalError

from stockpred.paths import free_bytes
from stockpred.queues import QUEUES
from stockpred.telemetry.redis_facts import read_memory
from web.services import Services

log = logging.getLogger(__name__)
LOW_DISK_BYTES = 1 << 30
HTTP_STATUS = {"healthy": 200, "degraded": 206, "unhealthy": 503}
# What a pooled broker connection that a Redis restart broke raises on its next use.
BROKER_CONNECTION_ERRORS = (OSError, OperationalError, redis.exceptions.ConnectionError)


@dataclass(frozen=True)
class Health:
    """Overall status, per-service states and the details behind them."""

    status: str
    services: dict[str, str]
    checks: dict[str, Any]

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.status]


def _redis_check(svc: Services) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        svc.probe_redis.ping()
    except Exception as exc:
        log.warning("health: Redis did not answer PING: %s", exc)
        return {"status": "down", "error": str(exc)}
    state: dict[str, Any] = {
        "status": "up",
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    try:
        memory = read_memory(svc.probe_redis)
    except Exception as exc:
        log.warning("health: Redis did not answer INFO memory: %s", exc)
        return state
    state["memory_percent"] = memory.percent
    warning = memory.warning(svc.settings.redis_memory_warn_percent)
    if warning is not None:
        log.warning("health: %s", warning)
        state.update(status="memory_high", warning=warning)
    return state


def _worker_queues(svc: Services) -> dict[str, list[str]]:
    """Ask every worker which queues it consumes; once more if the broker connection broke."""
    try:
        return _ask_workers(svc)
    except BROKER_CONNECTION_ERRORS as exc:
        # The pool hands out a connection that died with the old Redis once ("Broken pipe");
        # the failure drops it, so a second broadcast goes out on a new one.
        log.info("worker ping failed on a broken broker connection (%s); asking again", exc)
        return _ask_workers(svc)


def _ask_workers(svc: Services) -> dict[str, list[str]]:
    """Which queues each worker consumes (a broadcast with a short timeout)."""
    replies = svc.celery.control.inspect(timeout=svc.settings.health_timeout).active_queues() or {}
    by_queue: dict[str, list[str]] = {name: [] for name in QUEUES}
    for worker, queues in replies.items():
        for queue in queues or []:
            by_queue.setdefault(queue.get("name", "?"), []).append(worker)
    return by_queue


def _storage_check(svc: Services) -> dict[str, Any]:
    root = svc.settings.data_dir
    # access(2), not a probe file: the web never writes under the data root, and access() also
    # refuses W_OK on a read-only mount.
    if not os.access(root, os.W_OK | os.X_OK):
        return {"status": "down", "path": str(root), "error": "missing, or not writable"}
    try:
        free = free_bytes(root)
    except OSError as exc:
        return {"status": "down", "path": str(root), "error": str(exc)}
    status = "low_disk" if free < LOW_DISK_BYTES else "up"
    return {"status": status, "path": str(root), "free_bytes": free}


def check_health(svc: Services) -> Health:
    """Run every check: Redis or storage down is unhealthy; no worker or low space, degraded."""
    redis_state = _redis_check(svc)
    storage = _storage_check(svc)
    queues: dict[str, list[str]] = {name: [] for name in QUEUES}
    if redis_state["status"] != "down":
        try:
            queues = _worker_queues(svc)
        except Exception as exc:
            log.warning("worker ping failed: %s", exc)
    states = {"redis": redis_state["status"], "storage": storage["status"]}
    for name in QUEUES:
        states[f"worker_{name}"] = "up" if queues.get(name) else "down"
    if redis_state["status"] == "down" or storage["status"] == "down":
        status = "unhealthy"
    elif any(v != "up" for v in states.values()):
        status = "degraded"
    else:
        status = "healthy"
    checks = {
        "redis": redis_state,
        "storage": storage,
        "queues": {q: queues.get(q, []) for q in QUEUES},
    }
    return Health(status, states, checks)
