"""Worker and beat process set-up through Celery signals; nothing here is about jobs.

Logging into persistent_data with the node name; the metrics folder of the pool children;
TensorFlow's thread budget per pool child, and its import in the background of each pool child
of the inference and training workers (never in the parent: TF#27074); writing out what a pool
child still holds when it exits; the publish-time stamp on every task message; starting a
worker incarnation, whose meaning for jobs (lost ones failed) belongs to `workers.task_base`,
with the rest of a job's lifecycle.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

from celery import Celery, signals

from stockpred.infra import logs, redis_client
from stockpred.infra.tf_runtime import TF_THREADS_ENV, tensorflow, thread_budget
from stockpred.jobs.records import JobStore, WorkerRun
from stockpred.paths import DataTree
from stockpred.queues import QueueName
from stockpred.settings import get_settings
from stockpred.telemetry.queue_facts import stamp_published_at
from workers import task_base

log = logging.getLogger(__name__)
PRELOAD_ENV = "STOCKPRED_PRELOAD_TENSORFLOW"
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
TENSORFLOW_QUEUES = frozenset({QueueName.INFERENCE.value, QueueName.TRAINING.value})
# Incarnations whose predecessor's jobs could not be checked yet (Redis was away at set-up).
_unrecovered: list[WorkerRun] = []


def connect(app: Celery) -> None:
    """Connect the handlers that concern only `app` (the others are connected at import)."""
    # Sent before the worker or beat imports the task modules, which import prometheus_client.
    signals.import_modules.connect(_point_metrics_at_their_folder, sender=app, weak=False)


def _point_metrics_at_their_folder(**_: Any) -> None:
    """Make the pool children write metrics where the exporter aggregates them."""
    folder = os.environ.get(METRICS_ENV) or str(
        DataTree.from_settings(get_settings()).worker_metrics
    )
    os.makedirs(folder, exist_ok=True)
    os.environ[METRICS_ENV] = folder
    # The `celery` command loads Flower's CLI plugin, which imports prometheus_client before
    # any of our code runs, so its value class was chosen without the folder: choose again.
    # Every metric of ours is created later (stockpred.telemetry.worker_metrics, on first use).
    from prometheus_client import values

    values.ValueClass = values.get_value_class()


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    """Replace Celery's logging with the shared files under persistent_data/logs."""
    role = "beat" if "beat" in sys.argv[1:] else "celery"
    logs.configure_logging(get_settings(), role=role)


@signals.celeryd_after_setup.connect
def _after_worker_setup(sender: str, instance: Any, **_: Any) -> None:
    """Name log lines after the node; give each pool child its share of the CPU for TF."""
    logs.configure_logging(get_settings(), role=sender)
    concurrency = max(1, int(getattr(instance, "concurrency", 1) or 1))
    os.environ.setdefault(TF_THREADS_ENV, str(max(1, (os.cpu_count() or 1) // concurrency)))
    consumed = set(instance.app.amqp.queues.consume_from or {})
    if consumed & TENSORFLOW_QUEUES:
        os.environ.setdefault(PRELOAD_ENV, "1")  # read by the pool children after fork
    # Before the consumer starts: a message of a lost job restored now finds its record final.
    worker = task_base.start_incarnation(sender)
    if not _fail_lost_jobs(worker):
        _unrecovered.append(worker)


@signals.worker_ready.connect
def _retry_lost_jobs(**_: Any) -> None:
    """Check again, now that the broker is connected, if set-up could not reach Redis."""
    while _unrecovered:
        _fail_lost_jobs(_unrecovered.pop())


def _fail_lost_jobs(worker: WorkerRun) -> bool:
    """Fail what this node's previous incarnation left running; False if Redis was away."""
    settings = get_settings()
    try:
        client = redis_client.connect(settings)
        try:
            task_base.fail_lost_jobs(JobStore(client, settings.job_ttl), worker)
        finally:
            client.close()
    except Exception:
        log.warning(
            "could not look for jobs lost by the previous run of %s", worker.node, exc_info=True
        )
        return False
    return True


@signals.worker_process_init.connect
def _pool_child_init(**_: Any) -> None:
    """Say what this pool child was given; start importing TensorFlow if its queues need it.

    The import (2-5 s) runs in a background thread of the child, so the child reports ready
    at once (Celery allows it ~4 s) and its first task finds TensorFlow loaded or waits for
    the rest of the import instead of starting it. Training children are new for every task
    (--max-tasks-per-child 1), so each training no longer pays for the import.
    """
    log.info("pool process ready (TensorFlow intra-op threads: %d)", thread_budget())
    if os.environ.get(PRELOAD_ENV) == "1":
        threading.Thread(target=_import_tensorflow, name="tensorflow-preload", daemon=True).start()


def _import_tensorflow() -> None:
    started = time.perf_counter()
    try:
        tensorflow()
    except Exception:
        log.exception("importing TensorFlow in the background failed; tasks will retry it")
        return
    log.info("TensorFlow imported in %.1fs, ahead of the first task", time.perf_counter() - started)


signals.before_task_publish.connect(stamp_published_at, weak=False)


@signals.worker_process_shutdown.connect
def _pool_child_exit(pid: int | None = None, **_: Any) -> None:
    """Write out pending prediction lines and job updates; drop this child's live gauges."""
    # Deferred: the task modules import prometheus_client, which must wait for the metrics folder.
    from tasks import context, inference

    try:
        inference.flush()
        jobs = context.built("jobs")
        if jobs is not None:
            jobs.flush()
    except Exception:
        log.warning("could not flush pending prediction lines or job updates", exc_info=True)
    if os.environ.get(METRICS_ENV):
        # Deferred: loaded after the metrics folder is set in the environment.
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
