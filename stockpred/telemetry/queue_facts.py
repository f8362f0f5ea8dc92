"""Facts about the queues read straight from Redis: shared by /api/v1/stats, the web's /metrics
and the exporter.

Queue depth is the summed length of a queue's Redis lists, one per priority step
(`stockpred.queues.priority_lists`), exported as `stockpred_queue_depth`; submitting reads the
same depth to bound each queue. The age of the oldest waiting task comes from a
`stockpred_published_at` header every publisher adds (see `stamp_published_at`): kombu pushes new
messages on the left and workers take from the right, so the oldest of each list is at index -1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stockpred.queues import QUEUES, priority_lists

if TYPE_CHECKING:
    from prometheus_client.core import GaugeMetricFamily

PUBLISHED_HEADER = "stockpred_published_at"
QUEUE_DEPTH = "stockpred_queue_depth"


def stamp_published_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """A `before_task_publish` handler: record when the message was sent."""
    if headers is not None:
        headers.setdefault(PUBLISHED_HEADER, time.time())


def queue_depths(client: Any) -> dict[str, int]:
    """Waiting messages per queue."""
    pipe = client.pipeline(transaction=False)  # reads; MULTI is refused when Redis is full
    for queue in QUEUES:
        for name in priority_lists(queue):
            pipe.llen(name)
    lengths = iter(pipe.execute())
    return {q: sum(int(next(lengths)) for _ in priority_lists(q)) for q in QUEUES}


def queue_depth_family(depths: Mapping[str, int]) -> GaugeMetricFamily:
    """`stockpred_queue_depth{queue}` from `queue_depths`."""
    # Deferred: workers import this module (stamp_published_at) before they set the metrics
    # folder that prometheus_client reads when it is first imported.
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(QUEUE_DEPTH, "Tasks waiting per queue", labels=["queue"])
    for queue, count in depths.items():
        family.add_metric([queue], count)
    return family


def oldest_waiting_ages(client: Any, now: float | None = None) -> dict[str, float]:
    """Seconds the oldest waiting message of each queue has waited (0 when none waits)."""
    moment = now or time.time()
    pipe = client.pipeline(transaction=False)  # reads; MULTI is refused when Redis is full
    for queue in QUEUES:
        for name in priority_lists(queue):
            pipe.lindex(name, -1)
    tails = iter(pipe.execute())
    ages = {}
    for queue in QUEUES:
        stamps = [_published(next(tails)) for _ in priority_lists(queue)]
        oldest = min((s for s in stamps if s is not None), default=None)
        ages[queue] = max(0.0, moment - oldest) if oldest is not None else 0.0
    return ages


def _published(raw: Any) -> float | None:
    """The publish time stamped on a raw kombu message, if it has one."""
    if not raw:
        return None
    try:
        published = json.loads(raw).get("headers", {}).get(PUBLISHED_HEADER)
        return float(published) if published else None
    except (ValueError, TypeError, AttributeError):
        return None
