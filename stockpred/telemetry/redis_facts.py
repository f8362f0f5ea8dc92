"""Cache hits, misses and size, queue depth and memory use, read from Redis: what /api/v1/stats
and /api/v1/health show and the web's /metrics serves, each read by one function.

Which hit counters to read and which key prefix holds the cached predictions are passed in by
the composition root (this package imports no domain package).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stockpred.infra.counters import HitCounter
from stockpred.telemetry.queue_facts import queue_depth_family, queue_depths
from stockpred.telemetry.scrape_failures import scrape_failed

SCAN_BATCH = 500
REDIS_MEMORY_USED = "stockpred_redis_memory_used_bytes"
REDIS_MEMORY_MAX = "stockpred_redis_memory_max_bytes"
# Policies that pick victims among keys with a TTL (locks, job records) or among all keys
# (queued tasks): see the shipped redis.conf.
EVICTING_POLICY_PREFIXES = ("volatile-", "allkeys-")


@dataclass(frozen=True)
class RedisMemory:
    """Used memory, `maxmemory` (0: no limit) and the eviction policy of a Redis server."""

    used: int
    maximum: int
    policy: str

    @property
    def percent(self) -> float | None:
        """Used memory as a percentage of maxmemory; None without a limit."""
        return round(100 * self.used / self.maximum, 1) if self.maximum else None

    def warning(self, threshold_percent: int) -> str | None:
        """The operator's warning at or above `threshold_percent` of maxmemory, else None."""
        percent = self.percent
        if percent is None or percent < threshold_percent:
            return None
        return (
            f"Redis memory at {percent:g}% of maxmemory ({self.used} of {self.maximum} bytes, "
            f"policy {self.policy}): at 100% Redis refuses writes and new work gets 503"
        )

    @property
    def evicts(self) -> bool:
        """True when the policy may evict keys (locks, job records, queued tasks)."""
        return self.policy.startswith(EVICTING_POLICY_PREFIXES)


def read_memory(client: Any) -> RedisMemory:
    """Memory facts from INFO memory (one round trip)."""
    info = client.info("memory")
    return RedisMemory(
        used=int(info.get("used_memory", 0)),
        maximum=int(info.get("maxmemory", 0)),
        policy=str(info.get("maxmemory_policy", "unknown")),
    )


@dataclass(frozen=True)
class CacheFacts:
    """Hits and misses per hit counter, and how many cached predictions Redis holds."""

    counts: Mapping[str, Mapping[str, int]]
    size: int

    def summary(self, counter: str) -> dict[str, Any]:
        """`hits`, `misses` and `hit_ratio` of one counter (the stats route's shape)."""
        counts = self.counts[counter]
        total = counts["hits"] + counts["misses"]
        ratio = round(counts["hits"] / total, 4) if total else 0.0
        return {"hits": counts["hits"], "misses": counts["misses"], "hit_ratio": ratio}


def count_keys(client: Any, prefix: str) -> int:
    """How many keys start with `prefix` (SCAN, never KEYS)."""
    return sum(1 for _ in client.scan_iter(match=f"{prefix}*", count=SCAN_BATCH))


def read_cache_facts(client: Any, *, counters: Sequence[str], key_prefix: str) -> CacheFacts:
    """The counts of each hit counter and the number of keys under `key_prefix`."""
    counts = {name: HitCounter(client, name).counts() for name in counters}
    return CacheFacts(counts=counts, size=count_keys(client, key_prefix))


class RedisFactsCollector(Collector):
    """Cache, queue depth and memory facts at each scrape; a failed read is left out."""

    def __init__(
        self, client: Callable[[], Any], *, counters: Sequence[str], key_prefix: str
    ) -> None:
        self._client = client
        self._counters = tuple(counters)
        self._key_prefix = key_prefix

    def collect(self) -> Iterator[Metric]:
        yield from self._memory()
        try:
            client = self._client()
            facts = read_cache_facts(client, counters=self._counters, key_prefix=self._key_prefix)
            depths = queue_depths(client)
        except Exception as exc:  # whatever it was, the rest of /metrics is still served
            scrape_failed("redis_facts", exc)
            return
        hits = CounterMetricFamily("cache_hits", "Cache hits", labels=["cache"])
        misses = CounterMetricFamily("cache_misses", "Cache misses", labels=["cache"])
        for name, counts in facts.counts.items():
            hits.add_metric([name], counts["hits"])
            misses.add_metric([name], counts["misses"])
        size = GaugeMetricFamily("cache_size", "Cached predictions in Redis")
        size.add_metric([], facts.size)
        yield from (hits, misses, size, queue_depth_family(depths))

    def _memory(self) -> Iterator[Metric]:
        """Used and max memory, read on their own: they matter most when the rest fails."""
        try:
            memory = read_memory(self._client())
        except Exception as exc:
            scrape_failed("redis_memory", exc)
            return
        used = GaugeMetricFamily(REDIS_MEMORY_USED, "Memory Redis uses (INFO used_memory)")
        used.add_metric([], memory.used)
        maximum = GaugeMetricFamily(REDIS_MEMORY_MAX, "Redis maxmemory (0: no limit)")
        maximum.add_metric([], memory.maximum)
        yield from (used, maximum)
