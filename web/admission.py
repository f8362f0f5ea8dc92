"""Per-client rate limits held in Redis: the one owner of the limit rules and of the 429 answer.

Three classes, each a setting: cheap reads (every GET, HEAD, OPTIONS), work (a read that queues
a task: an uncached prediction, a historical refresh, a storage status refresh; counted when
web.dispatch submits, on top of its read) and mutations (POST, PUT, PATCH, DELETE). The health
check and /metrics are never limited. The limiter is `limits` (Flask-Limiter's engine) with its
fixed-window counter (Flask-Limiter's default) on the project's Redis: one counter per client,
class and window, one Lua call (INCRBY, EXPIRE) per check, the cheapest of its strategies; a
client may burst up to twice a limit across a window's edge. A fixed window that refused a
client refuses it until the window ends, so each process remembers that end (a bounded map) and
refuses the client's next requests without asking Redis: refusing is cheaper than answering.
A busy client is counted in leases: a client that used its whole last lease within half of
LEASE_SECONDS gets twice as many places at once next time (one INCRBY of that many), up to a
twentieth of its limit (at most MAX_LEASE); any other starts again at one. So a client sending
a request now and then is counted exactly, and one sending hundreds a second costs Redis a call
per lease, not per request; places of a lease left unused when it ends (a client that slowed
down) count all the same, and a busy client may be refused up to a lease early per request
in flight in a process (concurrent requests that find the lease used up each count a new one).
Flask-Limiter itself is not used: it checks inside Flask's request context, and cache hits are
answered below Flask.

Every request is classed and counted once by `AdmissionControl`, the WSGI layer in front of the
cached-prediction fast path, so cache hits answered below Flask are limited too. A refused
request goes on to Flask with its `Refusal` in the environ; the first request hook raises it and
web.errors answers it, as every error (JSON shape, `Retry-After`). When Redis cannot be asked,
requests are admitted (fail open): a warning is logged at most once a minute per process and
`api_rate_limiter_errors_total` counts every such request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis
from flask import request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter

from stockpred.settings import Settings
from web.errors import ApiError
from web.metrics import web_metrics

log = logging.getLogger(__name__)
READS, WORK, MUTATIONS = "reads", "work", "mutations"
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
EXEMPT_PATHS = frozenset({"/api/v1/health", "/metrics"})
REFUSAL_ENVIRON_KEY = "stockpred.refusal"
KEY_PREFIX = "stockpred:ratelimit"
WARN_EVERY_SECONDS = 60.0
MAX_REMEMBERED_REFUSALS = 10_000  # clients per process; past it the expired ones are dropped
MAX_LEASES = 10_000  # clients per process with places leased
LEASE_SECONDS = 1.0
MAX_LEASE = 50

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class _Lease:
    """Places a busy client holds in this process: counted in Redis, not yet used."""

    size: int
    left: int
    until: float  # monotonic


@dataclass(frozen=True)
class Refusal:
    """Why a client was refused and when it may try again."""

    limit_class: str
    limit: str
    client: str
    retry_after: int

    def error(self) -> ApiError:
        """The 429 answer."""
        return ApiError(
            429,
            "too many requests",
            f"client {self.client} is over the {self.limit_class} limit ({self.limit}); "
            f"retry in {self.retry_after} s",
            {"Retry-After": str(self.retry_after)},
        )


def client_of(environ: dict[str, Any]) -> str:
    """The client address a limit counts against (the proxies' view when they are trusted)."""
    return str(environ.get("REMOTE_ADDR") or "-")


class RateLimits:
    """The limit rules of each class, checked against the project's Redis."""

    def __init__(self, storage: Storage, settings: Settings) -> None:
        self._limiter = FixedWindowRateLimiter(storage)
        self.rules: dict[str, list[RateLimitItem]] = {
            READS: parse_many(settings.rate_limit_reads),
            WORK: parse_many(settings.rate_limit_work),
            MUTATIONS: parse_many(settings.rate_limit_mutations),
        }
        self._warned_at = -math.inf
        self._warn_lock = threading.Lock()
        # (class, client) -> (end of the refusing window, epoch seconds; the limit that refused)
        self._refused: dict[tuple[str, str], tuple[float, str]] = {}
        self._leases: dict[tuple[str, str], _Lease] = {}
        self._lease_lock = threading.Lock()
        self._max_lease = {
            name: max(1, min([MAX_LEASE, *(item.amount // 20 for item in items)]))
            for name, items in self.rules.items()
        }

    @classmethod
    def on_redis(cls, client: redis.Redis, settings: Settings) -> RateLimits:
        """Limits counted in the project's Redis, on the client's connection pool."""
        storage = RedisStorage(
            settings.redis_client_url, connection_pool=client.connection_pool, key_prefix=KEY_PREFIX
        )
        return cls(storage, settings)

    @classmethod
    def in_memory(cls, settings: Settings) -> RateLimits:
        """Limits counted in this process only (tests without Redis)."""
        return cls(MemoryStorage(), settings)

    def hit(self, limit_class: str, client: str) -> Refusal | None:
        """Count one request of `client` in `limit_class`; the refusal when it is over."""
        remembered = self._refused.get((limit_class, client))
        if remembered is not None:
            until, limit = remembered
            if time.time() < until:
                return self._refusal(limit_class, limit, client, until)
            self._refused.pop((limit_class, client), None)
        cost = self._lease_size(limit_class, client)
        if cost == 0:
            return None  # a place leased earlier
        try:
            for item in self.rules[limit_class]:
                if not self._limiter.hit(item, limit_class, client, cost=cost):
                    reset = self._limiter.get_window_stats(item, limit_class, client).reset_time
                    self._remember(limit_class, client, reset, str(item))
                    return self._refusal(limit_class, str(item), client, reset)
        except redis.RedisError as exc:
            self._fail_open(limit_class, exc)
            return None
        self._grant(limit_class, client, cost)
        return None

    def _lease_size(self, limit_class: str, client: str) -> int:
        """0 when a leased place is used now, else how many places to count in Redis."""
        key = (limit_class, client)
        now = time.monotonic()
        with self._lease_lock:
            lease = self._leases.get(key)
            if lease is None:
                return 1
            if lease.left > 0 and now < lease.until:
                lease.left -= 1
                return 0
            # Grown only for a client that used it all within half its life: at a steady rate
            # every lease is used up before it ends, so no counted place goes unused. The used-up
            # lease stays until the new one is granted, so the client's other requests in flight
            # meanwhile grow it too instead of starting again at one.
            if lease.left == 0 and now < lease.until - LEASE_SECONDS / 2:
                return min(2 * lease.size, self._max_lease[limit_class])
            del self._leases[key]
            return 1

    def _grant(self, limit_class: str, client: str, size: int) -> None:
        """Keep the places counted beyond this request for the client's next ones."""
        key = (limit_class, client)
        now = time.monotonic()
        with self._lease_lock:
            lease = self._leases.get(key)
            if lease is not None and now < lease.until:
                # Requests in flight at once each counted their own places: all of them are kept.
                lease.left += size - 1
                lease.size = max(lease.size, size)
                lease.until = now + LEASE_SECONDS
                return
            if len(self._leases) >= MAX_LEASES:
                self._leases.clear()  # a memory bound: the next requests are counted one by one
            self._leases[key] = _Lease(size=size, left=size - 1, until=now + LEASE_SECONDS)

    def _remember(self, limit_class: str, client: str, until: float, limit: str) -> None:
        if len(self._refused) >= MAX_REMEMBERED_REFUSALS:
            now = time.time()
            for key, (end, _) in list(self._refused.items()):
                if end <= now:
                    self._refused.pop(key, None)
            if len(self._refused) >= MAX_REMEMBERED_REFUSALS:
                self._refused.clear()  # a memory bound, not a correctness one: Redis still counts
        self._refused[(limit_class, client)] = (until, limit)

    @staticmethod
    def _refusal(limit_class: str, limit: str, client: str, until: float) -> Refusal:
        web_metrics().refused.labels(limit_class).inc()
        wait = max(1, math.ceil(until - time.time()))
        return Refusal(limit_class, limit, client, wait)

    def _fail_open(self, limit_class: str, exc: Exception) -> None:
        web_metrics().limiter_errors.inc()
        with self._warn_lock:
            now = time.monotonic()
            if now - self._warned_at < WARN_EVERY_SECONDS:
                return
            self._warned_at = now
        log.warning(
            "rate limits not enforced (%s requests admitted): Redis did not answer: %s",
            limit_class,
            exc,
        )


class AdmissionControl:
    """WSGI middleware: counts every request in its class; marks the refused ones for Flask."""

    def __init__(self, inner: WsgiApp, limits: Callable[[], RateLimits]) -> None:
        self.inner = inner
        self._limits = limits

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO", "") not in EXEMPT_PATHS:
            method = environ.get("REQUEST_METHOD", "")
            limit_class = MUTATIONS if method in MUTATING_METHODS else READS
            refusal = self._limits().hit(limit_class, client_of(environ))
            if refusal is not None:
                environ[REFUSAL_ENVIRON_KEY] = refusal
        return self.inner(environ, start_response)


def refuse_if_over_limit() -> None:
    """First request hook: raise the refusal AdmissionControl recorded for this request."""
    refusal = request.environ.get(REFUSAL_ENVIRON_KEY)
    if isinstance(refusal, Refusal):
        raise refusal.error()


def admit_work(limits: RateLimits) -> None:
    """Count a request that is about to queue work; raise the 429 when the client is over."""
    refusal = limits.hit(WORK, client_of(request.environ))
    if refusal is not None:
        raise refusal.error()
