"""Hit counters on a real Redis: the counted read survives a dropped connection and counts each
lookup once."""

from __future__ import annotations

import uuid

import pytest
import redis

from stockpred.infra.counters import HitCounter
from tests.support import RedisServer


def test_the_counted_read_counts_hits_and_misses(redis_client: redis.Redis) -> None:
    counter = HitCounter(redis_client, f"test-{uuid.uuid4().hex}")
    key = f"test:counted:{uuid.uuid4().hex}"
    assert counter.read_counted(key) is None
    redis_client.set(key, "{}", ex=60)
    assert counter.read_counted(key) == "{}"
    assert counter.counts() == {"hits": 1, "misses": 1}


def test_the_counted_read_reconnects_after_the_server_dropped_its_connection(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    own = redis_server.client()  # a pool of its own: only its connection is dropped
    counter = HitCounter(own, f"test-{uuid.uuid4().hex}")
    key = f"test:counted:{uuid.uuid4().hex}"
    redis_client.set(key, "{}", ex=60)
    assert counter.read_counted(key) == "{}"
    redis_client.client_kill_filter(_id=own.client_id())  # the pooled connection it reuses
    assert counter.read_counted(key) == "{}"
    assert counter.counts() == {"hits": 2, "misses": 0}
    own.close()


def test_an_error_reply_leaves_no_unread_reply_on_a_pooled_connection(
    redis_server: RedisServer,
) -> None:
    own = redis_server.client()  # a pool of its own with one connection in play
    counter = HitCounter(own, f"test-{uuid.uuid4().hex}")
    wrong = f"test:counted:{uuid.uuid4().hex}"
    own.hset(wrong, "a", "1")  # GET on a hash: WRONGTYPE
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        counter.read_counted(wrong)
    good = f"test:counted:{uuid.uuid4().hex}"
    own.set(good, "{}", ex=60)
    assert own.get(good) == "{}"  # not the HINCRBY's integer left over from the failed read
    assert counter.read_counted(good) == "{}"
    own.close()
