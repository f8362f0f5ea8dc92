"""Fixtures shared by every test layer: settings on temp data roots, a real Redis, real workers."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from flask import Flask
from flask.testing import FlaskClient

from stockpred.ops.provision import run_setup
from stockpred.queues import QUEUES
from stockpred.settings import Settings, load_settings, variable_names
from tests.support import BIN, RedisServer, start_worker, stop_group, wait_for

OFFLINE_PROXY = "http://127.0.0.1:9"
SMALL_ML_CONFIG = {
    "sequence_length": 60,
    "lstm_units": [16, 8],
    "epochs": 2,
    "batch_size": 32,
    "max_horizon": 5,
    "keep_versions": 3,
    "seed": 7,
}
# Variables the tests set themselves: never inherit them from the shell running pytest.
_ISOLATED = (
    "STOCKPRED_",
    "REDIS_",
    "WEB_",
    "FLOWER_",
    "ML_",
    "STOCK_",
    "LOG_",
    "CONFIG_PATH",
    "BACKUP_PATH",
    "SCALERS_PATH",
    "PREDICTION_CACHE_PATH",
    "CACHE_CLEANUP_INTERVAL",
)


def clean_environ() -> dict[str, str]:
    """os.environ without any stockpred setting, with the venv's bin first on PATH."""
    declared = set(variable_names())
    env = {k: v for k, v in os.environ.items() if not k.startswith(_ISOLATED) and k not in declared}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    # Any request that escapes to the network fails at once (curl_cffi and requests honour it).
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        env[name] = OFFLINE_PROXY
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    return env


@pytest.fixture
def data_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose data root is a fresh temp folder."""
    env = clean_environ()
    env["STOCKPRED_DATA_DIR"] = str(tmp_path / "persistent_data")
    return env


@pytest.fixture
def settings(data_env: dict[str, str]) -> Settings:
    """Settings on a fresh, set-up temp data root."""
    loaded = load_settings(data_env)
    run_setup(loaded)
    return load_settings(data_env)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the whole session (tests may stop and restart it)."""
    with tempfile.TemporaryDirectory(prefix="sp-redis-") as directory:
        server = RedisServer(Path(directory))
        server.start()
        yield server
        server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the session Redis (shared with the workers: use unique keys, never flush)."""
    if redis_server.proc is None:
        redis_server.start()
    client = redis_server.client()
    yield client
    client.close()
    if redis_server.proc is None:
        redis_server.start()


@pytest.fixture(scope="session")
def worker_env(redis_server: RedisServer) -> Iterator[dict[str, str]]:
    """Environment for worker subprocesses: the session Redis and a set-up temp data root."""
    with tempfile.TemporaryDirectory(prefix="sp-data-") as directory:
        env = clean_environ()
        env["STOCKPRED_DATA_DIR"] = str(Path(directory) / "persistent_data")
        env["REDIS_URL"] = redis_server.url
        # Every test's requests count against one client in the session's Redis: limits far
        # past the suite's load, so no test depends on what ran in the minute before it
        # (tests/integration/test_rate_limits.py sets its own).
        for limit in ("RATE_LIMIT_READS", "RATE_LIMIT_WORK", "RATE_LIMIT_MUTATIONS"):
            env[limit] = "100000/minute"
        run_setup(load_settings(env))
        # Small, real trainings: a 60-day window as in production, a small network, 2 epochs.
        (Path(env["STOCKPRED_DATA_DIR"]) / "ml_config.json").write_text(json.dumps(SMALL_ML_CONFIG))
        yield env


@pytest.fixture(scope="session")
def worker_settings(worker_env: dict[str, str]) -> Settings:
    """Settings the session workers run with."""
    return load_settings(worker_env)


def celery_client(settings: Settings) -> Celery:
    """A Celery client on the same broker as the workers."""
    app = Celery("stockpred-tests")
    app.config_from_object("celeryconfig")
    app.conf.update(broker_url=settings.celery_url, result_backend=settings.celery_url)
    return app


@pytest.fixture(scope="session")
def celery_workers(worker_env: dict[str, str], worker_settings: Settings) -> Iterator[Celery]:
    """One real worker subprocess per queue, consuming the session Redis."""
    log_dir = worker_settings.log_path
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = [start_worker(q, worker_env, log_dir) for q in QUEUES]
    client = celery_client(worker_settings)

    def all_queues_served() -> bool:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a worker exited early; see logs in {log_dir}")
        replies = client.control.inspect(timeout=0.5).active_queues() or {}
        served = {q["name"] for queues in replies.values() for q in queues}
        return served >= set(QUEUES)

    wait_for(all_queues_served, 60, interval=0.2, what="a worker on every queue")
    yield client
    client.close()
    for proc in procs:
        stop_group(proc)


@pytest.fixture(scope="module")
def api(celery_workers: Celery, worker_settings: Settings) -> Iterator[FlaskClient]:
    """A test client of the web app on the session workers' Redis and data root."""
    from web import create_app

    app: Flask = create_app({"STOCKPRED_SETTINGS": worker_settings, "TESTING": True})
    yield app.test_client()
    app.extensions["stockpred"].close()


@pytest.fixture(scope="module")
def auth(worker_settings: Settings) -> dict[str, str]:
    """The bearer header mutating routes need."""
    return {"Authorization": f"Bearer {worker_settings.api_token}"}
