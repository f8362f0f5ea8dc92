"""The baseline web app: one endpoint doing one Redis GET (served like the real web app)."""

from __future__ import annotations

import functools
import os

import redis
from flask import Flask, Response

app = Flask(__name__)


@functools.cache
def _client(pid: int) -> redis.Redis:
    """One client per gunicorn worker process, decoding like the real app's."""
    return redis.Redis.from_url(
        os.environ["REDIS_URL"], decode_responses=True, socket_timeout=5, socket_connect_timeout=2
    )


@app.get("/get")
def get() -> Response:
    """The stored value of BENCH_BARE_KEY (the cached prediction), as JSON."""
    value = _client(os.getpid()).get(os.environ["BENCH_BARE_KEY"])
    return Response(value or "null", mimetype="application/json")
