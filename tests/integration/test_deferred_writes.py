"""Deferred-reply writes on a real Redis: they land, errors are logged, broken links recover."""

from __future__ import annotations

import logging
import multiprocessing
import uuid
from datetime import timedelta

import pytest
import redis

from stockpred.infra.deferred_writes import DeferredWrites
from stockpred.ml.prediction_store import PredictionCache


def _key() -> str:
    return f"test:deferred:{uuid.uuid4().hex}"


def test_writes_land_and_replies_are_collected(redis_client: redis.Redis) -> None:
    writes = DeferredWrites(redis_client)
    keys = [_key() for _ in range(3)]
    for index, key in enumerate(keys):
        writes.send("SET", key, str(index), "EX", 60)
    writes.flush()
    assert redis_client.mget(keys) == ["0", "1", "2"]
    assert 0 < redis_client.ttl(keys[0]) <= 60


def test_an_error_reply_is_logged_at_the_next_write_and_never_raised(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    writes = DeferredWrites(redis_client)
    listed = _key()
    redis_client.rpush(listed, "x")
    writes.send("SET", listed + ":ok", "1")
    writes.send("INCR", listed)  # WRONGTYPE: its reply is an error
    after = _key()
    with caplog.at_level(logging.WARNING, logger="stockpred.infra.deferred_writes"):
        writes.send("SET", after, "still written")
        writes.flush()
    assert "WRONGTYPE" in caplog.text
    assert redis_client.get(after) == "still written"


def test_writes_on_a_killed_connection_are_sent_again_on_a_new_one(
    redis_client: redis.Redis,
) -> None:
    writes = DeferredWrites(redis_client)
    first, second = _key(), _key()
    writes.send("CLIENT", "SETNAME", "deferred-under-test")
    writes.send("SET", first, "1")
    writes.flush()
    named = [c for c in redis_client.client_list() if c["name"] == "deferred-under-test"]
    assert len(named) == 1
    redis_client.client_kill_filter(_id=named[0]["id"])
    writes.send("SET", second, "2")  # the old socket is dead: reconnect and write
    writes.flush()
    assert redis_client.mget([first, second]) == ["1", "2"]


def _child_writes(cache: PredictionCache, key: str) -> None:
    cache.put(key, '{"from":"child"}')
    cache.flush()


def test_a_forked_child_uses_a_connection_of_its_own(redis_client: redis.Redis) -> None:
    cache = PredictionCache(redis_client, timedelta(minutes=1))
    parent_key, child_key = _key(), _key()
    cache.put(parent_key, '{"from":"parent"}')  # the parent now holds a connection
    child = multiprocessing.get_context("fork").Process(
        target=_child_writes, args=(cache, child_key)
    )
    child.start()
    child.join(30)
    assert child.exitcode == 0
    cache.put(_key(), "{}")  # the parent's connection still works after the child exited
    cache.flush()
    assert redis_client.get(parent_key) == '{"from":"parent"}'
    assert redis_client.get(child_key) == '{"from":"child"}'
