"""Worker and beat process set-up through Celery signals.

Logging into persistent_data with the node name and task context; TensorFlow's thread budget
per pool child, and its import in the background of each pool child of the inference and
training workers (never in the parent: TF#27074); job record updates as tasks start, succeed,
fail or retry.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

from celery import signals

from stockpred.infra import logs
from stockpred.infra.clock import MICROSECONDS, utcnow_iso
from stockpred.infra.tf_runtime import TF_THREADS_ENV, tensorflow, thread_budget
from stockpred.queues import QueueName
from stockpred.settings import get_settings
from stockpred.telemetry.queue_facts import stamp_published_at
from stockpred.telemetry.worker_metrics import worker_metrics
from tasks import context, inference

log = logging.getLogger(__name__)
_tokens: dict[str, Any] = {}
_started: dict[str, float] = {}
_unreported_starts: dict[str, str] = {}
PRELOAD_ENV = "STOCKPRED_PRELOAD_TENSORFLOW"
TENSORFLOW_QUEUES = frozenset({QueueName.INFERENCE.value, QueueName.TRAINING.value})


def _update_job(task_id: str | None, **fields: Any) -> None:
    """Update a job record; a Redis hiccup here must never fail the task itself."""
    if not task_id:
        return
    started_at = _unreported_starts.pop(task_id, None)
    try:
        context.jobs().update(task_id, started_at=started_at, **fields)
    except Exception:
        log.warning("could not update job record %s", task_id, exc_info=True)


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
    try:
        inference.flush()
        jobs = context.built("jobs")
        if jobs is not None:
            jobs.flush()
    except Exception:
        log.warning("could not flush pending prediction lines or job updates", exc_info=True)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


@signals.task_prerun.connect
def _task_prerun(
    task_id: str, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any], **_: Any
) -> None:
    symbol = kwargs.get("symbol") or (args[0] if args and isinstance(args[0], str) else None)
    _tokens[task_id] = logs.set_log_context(task=task.name, task_id=task_id, symbol=symbol)
    _started[task_id] = time.perf_counter()
    if not getattr(task, "track_started", True):
        # A task of a few milliseconds (a prediction): its start is written with its outcome,
        # one Redis write fewer on its path, as Celery itself does not track starts by default.
        _unreported_starts[task_id] = utcnow_iso(MICROSECONDS)
        return
    try:
        # Not waited for: the task starts at once; the store's next update lands after it.
        context.jobs().send_update(task_id, state="started")
    except Exception:
        log.warning("could not mark job %s started", task_id, exc_info=True)


@signals.task_postrun.connect
def _task_postrun(task_id: str, task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    _unreported_starts.pop(task_id, None)  # a task ended by Ignore or Reject sent no outcome
    if task is not None:
        metrics = worker_metrics()
        metrics.tasks.labels(task.name, state or "UNKNOWN").inc()
        if started is not None:
            metrics.task_runtime.labels(task.name).observe(time.perf_counter() - started)
    token = _tokens.pop(task_id, None)
    if token is not None:
        logs.reset_log_context(token)


@signals.task_success.connect
def _task_success(sender: Any, result: Any, **_: Any) -> None:
    _update_job(sender.request.id, state="succeeded", result=result)


@signals.task_failure.connect
def _task_failure(task_id: str, exception: BaseException, **_: Any) -> None:
    error = {"type": type(exception).__name__, "message": str(exception)}
    _update_job(task_id, state="failed", error=error)


@signals.task_revoked.connect
def _task_revoked(request: Any, **_: Any) -> None:
    _update_job(getattr(request, "id", None), state="cancelled")


@signals.task_retry.connect
def _task_retry(request: Any, reason: Any, sender: Any = None, **_: Any) -> None:
    if sender is not None:
        worker_metrics().retries.labels(sender.name).inc()
    _update_job(request.id, state="queued", error={"type": "Retry", "message": str(reason)})
