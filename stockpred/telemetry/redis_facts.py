"""Cache hits, misses and size, and queue depth, read from Redis: what /api/v1/stats shows and
the web's /metrics serves, each read by one function.

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
    """Cache hits, misses and size and queue depth at each scrape; a failed read is left out."""

    def __init__(
        self, client: Callable[[], Any], *, counters: Sequence[str], key_prefix: str
    ) -> None:
        self._client = client
        self._counters = tuple(counters)
        self._key_prefix = key_prefix

    def collect(self) -> Iterator[Metric]:
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
