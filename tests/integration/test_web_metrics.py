"""`GET /metrics` of the web as it runs in production: gunicorn workers, multi-process metrics.

Served through PROMETHEUS_MULTIPROC_DIR (docker/gunicorn.conf.py), /metrics must still carry the
facts read from Redis at scrape time, and a failed Redis read must cost only those families.
"""

from __future__ import annotations

import http.client
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stockpred.infra.counters import HitCounter
from stockpred.ml.prediction_store import cache_key
from stockpred.ops.provision import run_setup
from stockpred.paths import DataTree
from stockpred.settings import load_settings
from tests.support import BIN, ROOT, RedisServer, free_port, stop_group, wait_for


def web_command() -> list[str]:
    """The Procfile's `web` command line, with the venv's gunicorn."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == "web":
            argv = shlex.split(command)
            return [str(BIN / argv[0]), *argv[1:]]
    raise KeyError("no web entry in the Procfile")


def get(port: int, path: str) -> tuple[int, str]:
    """One GET: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def sample(text: str, name: str) -> float | None:
    """The value of the sample `name` (with its labels, as exposed), or None."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


@contextmanager
def gunicorn(data_env: dict[str, str], redis_url: str) -> Iterator[tuple[int, Path]]:
    """The web under gunicorn as the Procfile starts it; (port, application log folder)."""
    port = free_port()
    env = {**data_env, "REDIS_URL": redis_url, "WEB_PORT": str(port), "WEB_WORKERS": "2"}
    settings = load_settings(env)
    run_setup(settings)
    logs = DataTree.from_settings(settings).logs_application
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "gunicorn.out").open("ab") as out:
        proc = subprocess.Popen(
            web_command(),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def up() -> bool:
            assert proc.poll() is None, (logs / "gunicorn.out").read_text()[-3000:]
            return get(port, "/")[0] == 200

        wait_for(up, 60, interval=0.2, what="gunicorn")
        yield port, logs
    finally:
        stop_group(proc)


def test_metrics_under_gunicorn_serve_cache_and_queue_facts_from_redis(
    data_env: dict[str, str], redis_server: RedisServer
) -> None:
    client = redis_server.client()
    key = cache_key("GUNIMETRICS", 1, "v1", "2024-01-02")
    client.set(key, '{"symbol":"GUNIMETRICS"}', ex=120)
    HitCounter(client, "prediction_cache").read_counted(key)
    try:
        with gunicorn(data_env, redis_server.url) as (port, _):
            status, text = get(port, "/metrics")
            assert status == 200
            hits = sample(text, 'cache_hits_total{cache="prediction_cache"}')
            assert hits is not None and hits >= 1
            assert sample(text, 'cache_misses_total{cache="prediction_cache"}') is not None
            assert sample(text, 'cache_hits_total{cache="market_cache"}') is not None
            assert sample(text, 'cache_misses_total{cache="market_cache"}') is not None
            size = sample(text, "cache_size")
            assert size is not None and size >= 1
            for queue in ("inference", "training", "maintenance"):
                assert sample(text, f'stockpred_queue_depth{{queue="{queue}"}}') is not None
            assert "stockpred_web_queue_depth" not in text
    finally:
        client.delete(key)
        client.close()


def test_metrics_under_gunicorn_without_redis_log_the_failure_and_serve_the_rest(
    data_env: dict[str, str],
) -> None:
    nothing_listens = f"redis://127.0.0.1:{free_port()}/0"
    with gunicorn(data_env, nothing_listens) as (port, logs):
        status, text = get(port, "/metrics")
        assert status == 200
        assert "cache_hits_total" not in text and "stockpred_queue_depth" not in text

        def served_and_counted() -> str | None:
            again = get(port, "/metrics")[1]  # metric files are read before the facts
            requests = sample(again, 'api_requests_total{endpoint="/",method="GET",status="200"}')
            failed = sample(again, 'stockpred_scrape_failures_total{section="redis_facts"}')
            return again if requests and failed else None

        wait_for(served_and_counted, 20, interval=0.2, what="the web's metrics and the failures")
        logged = (logs / "stock-prediction.log").read_text()
        assert "metrics section redis_facts left out of this scrape: Redis:" in logged
        assert "Connection refused" in logged
