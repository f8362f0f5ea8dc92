"""A real `celery worker` writes its task metrics where the exporter aggregates them.

The `celery` command imports Flower's plugin, and with it prometheus_client, before any of our
code: the worker must still write multi-process metric files, or the exporter shows nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from prometheus_client import CollectorRegistry, generate_latest, multiprocess

from stockpred.paths import DataTree
from stockpred.settings import load_settings
from tests.conftest import clean_environ
from tests.support import BIN, RedisServer, wait_for


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[Celery, Path]]:
    """A maintenance worker on a Redis of its own; the client app and the metrics folder."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    env = clean_environ()
    env["STOCKPRED_DATA_DIR"] = str(tmp_path / "pd")
    env["REDIS_URL"] = server.url
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    subprocess.run([str(BIN / "stockpred"), "setup"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen(
        [str(BIN / "celery"), "-A", "workers", "worker", "-Q", "maintenance", "-c", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    app = Celery("metric-files-test", set_as_current=False)
    app.config_from_object("celeryconfig")
    app.conf.update(broker_url=server.url, result_backend=server.url)
    try:
        yield app, DataTree.from_settings(load_settings(env)).worker_metrics
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        app.close()
        server.stop()


def test_a_worker_writes_its_task_metrics_for_the_exporter(worker: tuple[Celery, Path]) -> None:
    app, folder = worker
    result = app.send_task("maintenance.check_storage").get(timeout=90)
    assert result["ok"] is True
    assert wait_for(lambda: any(folder.glob("*.db")), 10, what="a metric file")
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(folder))
    text = generate_latest(registry).decode()
    wanted = 'stockpred_tasks_total{state="SUCCESS",task="maintenance.check_storage"} 1.0'
    assert wanted in text, text[-2000:]
