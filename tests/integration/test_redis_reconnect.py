"""A client from `stockpred.infra.redis_client` keeps working when Redis restarts under it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from stockpred.infra.redis_client import connect
from stockpred.settings import load_settings
from tests.support import RedisServer


def test_a_command_sent_while_redis_restarts_waits_for_it_instead_of_failing(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    settings = load_settings({"STOCKPRED_DATA_DIR": str(tmp_path / "pd"), "REDIS_URL": server.url})
    client = connect(settings)
    bare = redis.Redis.from_url(server.url, retry=Retry(NoBackoff(), 0))
    restart = threading.Timer(0.3, server.start)  # what the supervisor does, a moment later
    try:
        client.ping()
        server.kill()
        restart.start()
        with pytest.raises(redis.ConnectionError):
            bare.ping()  # Redis is down: without a retry the call fails at once
        assert client.incr("after-restart") == 1
        restart.join()
        assert client.ping()
    finally:
        restart.join()
        client.close()
        bare.close()
        server.stop()


def test_a_fail_fast_client_says_at_once_that_redis_is_away_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "r")
    server.start()
    try:
        settings = load_settings({"REDIS_URL": server.url, "STOCKPRED_DATA_DIR": str(tmp_path)})
        probe = connect(settings, fail_fast=True)
        assert probe.ping()
        server.kill()
        server.start()  # same port: the pooled connection is now broken
        assert probe.ping()  # sent again once, on a new connection
        server.stop()
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            probe.ping()
        assert time.monotonic() - started < 2.5  # one refused connect and one more, no backoff
    finally:
        server.stop()
