"""The Yahoo request throttle holds across processes sharing one Redis."""

from __future__ import annotations

import itertools
import multiprocessing
import time
import uuid

import redis

from stockpred.infra.throttle import RedisThrottle
from tests.support import RedisServer

RATE = 40.0
CALLS_EACH = 10


def _take_slots(url: str, key: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    client = redis.Redis.from_url(url)
    throttle = RedisThrottle(client, key, RATE)
    for _ in range(CALLS_EACH):
        throttle.wait()
        out.put(time.time())
    client.close()


def test_requests_from_two_processes_are_spaced_to_the_shared_rate(
    redis_server: RedisServer,
) -> None:
    key = f"test:throttle:{uuid.uuid4()}"
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    procs = [
        context.Process(target=_take_slots, args=(redis_server.url, key, out)) for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    stamps = sorted(out.get(timeout=5) for _ in range(2 * CALLS_EACH))
    span = stamps[-1] - stamps[0]
    # 20 evenly spaced slots at 40/s cover at least 19 intervals of 25 ms (less scheduling slop).
    assert span >= (2 * CALLS_EACH - 1) / RATE * 0.9
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert sum(1 for g in gaps if g < 0.5 / RATE) <= 2
