"""The web and a real worker on the project's password-protected TCP Redis, end to end.

The Redis is started with the command line `make run` gives it under REDIS_PORT; the worker is
the Procfile's `celery worker` with nothing but the data root and REDIS_PORT in its environment
(the password comes from the persistent.env setup wrote). A backup job goes from the web through
the broker to the worker and back through the result backend and the job record; the worker's
start-up banner names the broker without its password.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from stockpred.infra.redis_client import connect
from stockpred.ops.provision import run_setup
from stockpred.ops.redis_server import redis_server_argv
from stockpred.paths import DataTree
from stockpred.settings import Settings, load_settings
from tests.conftest import clean_environ
from tests.support import free_port, start_worker, stop_group, wait_for
from web import create_app


@dataclass
class Stack:
    """The Redis, the worker, their settings and the worker's log file."""

    settings: Settings
    env: dict[str, str]
    worker_log: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Project Redis on REDIS_PORT (password from setup) and a real maintenance worker."""
    env = clean_environ()
    env.update(
        STOCKPRED_DATA_DIR=str(tmp_path_factory.mktemp("auth-set") / "pd"),
        REDIS_PORT=str(free_port()),
    )
    run_setup(load_settings(env))
    settings = load_settings(env)
    tree = DataTree.from_settings(settings)
    with (tree.redis / "server.log").open("ab") as out:
        server = subprocess.Popen(
            redis_server_argv(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    probe = connect(settings)
    procs = [server]
    try:
        wait_for(probe.ping, 10, what="the project's redis-server")
        tree.logs.mkdir(parents=True, exist_ok=True)
        procs.append(start_worker("maintenance", env, tree.logs))
        yield Stack(settings, env, tree.logs / "worker-maintenance.log")
    finally:
        probe.close()
        for proc in reversed(procs):
            stop_group(proc)


@pytest.fixture(scope="module")
def app(stack: Stack) -> Iterator[Flask]:
    """The web app with the same settings (REDIS_PORT plus the password)."""
    flask_app = create_app({"STOCKPRED_SETTINGS": stack.settings, "TESTING": True})
    yield flask_app
    flask_app.extensions["stockpred"].close()


def test_the_server_the_set_uses_refuses_anonymous_clients(stack: Stack) -> None:
    anonymous = redis.Redis(port=stack.settings.redis_port, socket_timeout=5)
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()
    finally:
        anonymous.close()


def test_a_job_goes_from_the_web_through_the_worker_and_back(app: Flask, stack: Stack) -> None:
    client = app.test_client()

    def worker_up() -> bool:
        health = client.get("/api/v1/health").get_json()
        return bool(health["services"].get("worker_maintenance") == "up")

    wait_for(worker_up, 90, interval=0.5, what="the maintenance worker in /api/v1/health")
    auth = {"Authorization": f"Bearer {stack.settings.api_token}"}
    submitted = client.post(
        "/api/v1/storage/backup", json={"categories": ["config", "redis"]}, headers=auth
    )
    assert submitted.status_code == 202, submitted.get_json()
    task_id = submitted.get_json()["task_id"]

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/api/v1/tasks/{task_id}").get_json()
        return job if job["state"] in {"succeeded", "failed"} else None

    job = wait_for(finished, 120, interval=0.2, what="the backup job")
    assert job["state"] == "succeeded", job
    assert "redis" not in job["result"]["skipped"], job["result"]


def test_the_workers_banner_and_log_never_show_the_password(app: Flask, stack: Stack) -> None:
    password = stack.settings.redis_password
    assert password
    wait_for(lambda: "transport:" in stack.worker_log.read_text(), 60, what="the banner")
    text = stack.worker_log.read_text()
    assert password not in text
    assert f"redis://:**@127.0.0.1:{stack.settings.redis_port}/0" in text
