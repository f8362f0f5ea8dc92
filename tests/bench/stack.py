"""The system under test: a temp data root, redis-server, Celery workers and gunicorn servers."""

from __future__ import annotations

import http.client
import shlex
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis
from celery import Celery

import celeryconfig
from stockpred.jobs.records import DEDUPE_PREFIX
from stockpred.market.daily_cache import DailyCache
from stockpred.ml.prediction_store import cache_key
from stockpred.ml.registry import ModelRegistry
from stockpred.ops.provision import run_setup
from stockpred.paths import DataTree
from stockpred.settings import Settings, load_settings, read_env_file
from tests.bench.procs import Processes, say
from tests.conftest import clean_environ
from tests.support import ROOT, free_port, wait_for

SYMBOL = "NVDA"
HORIZON = 1


def procfile_command(name: str) -> list[str]:
    """The Procfile's command line for process `name`."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, sep, command = line.partition(":")
        if sep and key.strip() == name:
            return shlex.split(command)
    raise KeyError(f"no {name!r} entry in the Procfile")


@dataclass
class Stack:
    """What the figures talk to."""

    root: Path
    env: dict[str, str]
    settings: Settings
    redis_port: int
    procs: Processes

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def redis(self) -> redis.Redis:
        """A new client of the bench's redis-server."""
        return redis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=10)

    def celery(self) -> Celery:
        """A Celery client on the bench's broker (sends tasks by name).

        Not the current app, so once dropped it and its pending results are garbage: an
        interrupted run's results are finalised by `gc.collect()` while Redis still runs.
        """
        app = Celery("stockpred-bench", set_as_current=False)
        app.config_from_object("celeryconfig")
        url = self.settings.celery_url
        derived = celeryconfig.from_settings(self.settings)  # a Sentinel's master name with it
        app.conf.update(
            broker_url=url,
            result_backend=url,
            broker_transport_options=derived["broker_transport_options"],
            result_backend_transport_options=derived["result_backend_transport_options"],
        )
        return app

    @property
    def tree(self) -> DataTree:
        return DataTree.from_settings(self.settings)

    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.tree.ml_models, self.tree.scalers)

    def api_token(self) -> str:
        """The bearer token `stockpred setup` generated into persistent.env."""
        return read_env_file(self.tree.persistent_env)["STOCKPRED_API_TOKEN"]

    def prediction_keys(self) -> tuple[str, str]:
        """(prediction cache key, web dedupe key) of the current NVDA model and last bar."""
        version = self.registry().current_version(SYMBOL)
        last_bar = DailyCache(self.tree.daily_cache).as_of(SYMBOL)
        if version is None or last_bar is None:
            raise RuntimeError(f"{SYMBOL} has no model or no cached bars yet")
        return (
            cache_key(SYMBOL, HORIZON, version, last_bar),
            f"{DEDUPE_PREFIX}predict:{SYMBOL}:{HORIZON}:{version}",
        )


def start_redis(root: Path, procs: Processes) -> int:
    """A redis-server on a free loopback port, data in `root/redis`; returns the port."""
    directory = root / "redis"
    directory.mkdir(parents=True)
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    procs.start("redis", [*argv, "--save", "", "--appendonly", "no"], clean_environ())
    client = redis.Redis(port=port, socket_timeout=2)
    try:
        wait_for(client.ping, 15, what=f"redis-server on port {port}")
    finally:
        client.close()
    return port


def prepare(root: Path, procs: Processes) -> Stack:
    """Redis and a set-up data root under `root`; nothing else runs yet."""
    port = start_redis(root, procs)
    env = clean_environ()
    env["STOCKPRED_DATA_DIR"] = str(root / "persistent_data")
    env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    # One load generator is one client far past the production read limit: counted, not refused.
    env["RATE_LIMIT_READS"] = "1000000000/minute"
    env["RATE_LIMIT_WORK"] = "1000000000/minute"
    run_setup(load_settings(env))
    say(f"data root {env['STOCKPRED_DATA_DIR']}, redis on port {port}")
    return Stack(root, env, load_settings(env), port, procs)


def pool_children(worker_pid: int) -> list[psutil.Process]:
    """A prefork worker's pool processes."""
    return list(psutil.Process(worker_pid).children())


def start_worker(stack: Stack, name: str, queue: str, concurrency: int) -> int:
    """Start the Procfile's worker `name`; wait until it consumes `queue` with its full pool."""
    proc = stack.procs.start(name, procfile_command(name), stack.env)
    app = stack.celery()

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{stack.procs.log_tail(name)}")
        replies = app.control.inspect(timeout=0.5).active_queues() or {}
        served = {q["name"] for queues in replies.values() for q in queues}
        return queue in served and len(pool_children(proc.pid)) >= concurrency

    try:
        wait_for(ready, 90, interval=0.3, what=f"{name} consuming {queue}")
    finally:
        app.close()
    say(f"{name} ready (pid {proc.pid})")
    return proc.pid


def http_get(port: int, path: str, timeout: float = 30) -> tuple[int, bytes]:
    """One GET on a new connection: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def start_gunicorn(
    stack: Stack, name: str, extra: list[str], probe: str, more_env: dict[str, str]
) -> int:
    """Start the Procfile's web command (+ `extra`) with WEB_PORT free; wait for `probe` → 200."""
    port = free_port()
    env = {**stack.env, **more_env, "WEB_PORT": str(port)}
    proc = stack.procs.start(name, [*procfile_command("web"), *extra], env)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{stack.procs.log_tail(name)}")
        return http_get(port, probe, timeout=2)[0] == 200

    wait_for(ready, 60, interval=0.2, what=f"{name} on port {port}")
    say(f"{name} ready on port {port} (pid {proc.pid})")
    return port


def start_web(stack: Stack) -> int:
    """The production web server, exactly as the Procfile starts it (WEB_PORT set)."""
    return start_gunicorn(stack, "web", [], "/", {})


def start_bare_web(stack: Stack, key: str) -> int:
    """The bare Flask app (one Redis GET of `key`) under the same gunicorn settings."""
    extra = ["--name", "stockpred-bench-bare", "tests.bench.bare_app:app"]
    metrics = stack.root / "bare-web-metrics"  # its own: the config's on_starting wipes this dir
    env = {"BENCH_BARE_KEY": key, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    return start_gunicorn(stack, "bare-web", extra, "/get", env)
