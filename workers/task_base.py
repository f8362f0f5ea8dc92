"""The task base class: the one owner of a job's lifecycle on the worker side.

Every task of the app runs through `JobTask` (the app's `task_cls`): log context and runtime
metrics around the call, then the job record's start, success, failure (with its error kind)
and retry. `JobRequest` marks the record cancelled when Celery revokes the message. Task code
touches its record only to report progress. Nothing here runs at import: the job store is
built per process on first use (`tasks.context`).

A worker whose main process dies (SIGKILL, OOM killer) leaves its message unacknowledged until
the broker's visibility timeout, hours away. So each start of a worker is an incarnation (node
name and boot id, inherited by its pool children and written into the records of the jobs they
start), and a new incarnation fails the records its predecessor left running (kind
`worker_lost`). When the message comes back at last, its record is final and it is acknowledged
without running again: a job whose user was told it failed must not publish a model later.

A task running when the broker connection drops (Redis restarted) is not cancelled
(`worker_cancel_long_running_tasks_on_connection_loss = False`): it runs on, its final record
is written once Redis answers again (retried for about two minutes), and its message, whose
ack may be lost with the old connection, is acknowledged unrun when it comes back. A task
that needed Redis while it was away fails with kind `redis_unavailable`.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

import redis
from celery import Task, states
from celery.exceptions import Ignore, Reject, Retry, SoftTimeLimitExceeded, TimeLimitExceeded
from celery.worker.request import Request
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry as RedisRetry

from stockpred.infra import logs
from stockpred.infra.clock import MICROSECONDS, utcnow_iso
from stockpred.jobs.errors import ErrorKind, error_record
from stockpred.jobs.records import TERMINAL_STATES, WorkerRun

if TYPE_CHECKING:
    from stockpred.jobs.records import JobStore

log = logging.getLogger(__name__)
# Where a task that does not report its start keeps the time it began (on its request).
STARTED_AT = "stockpred_started_at"
# Set on the request of a redelivered message whose job is already final: not run again.
ALREADY_FINAL = "stockpred_already_final"
# The worker incarnation, set by its main process and inherited by its pool children.
NODE_ENV = "STOCKPRED_WORKER_NODE"
BOOT_ENV = "STOCKPRED_WORKER_BOOT"
# What a Redis that is down or restarting raises once the client's own retries are spent.
REDIS_AWAY = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
# A job's final state is worth waiting for: without it the job looks running until its message
# comes back hours later. Waits of 0.5 s doubling up to 10 s, about two minutes in all (as the
# result backend's retries), each try also with the client's own reconnect retries.
FINAL_RECORD_RETRIES = 15


def final_record_retry() -> RedisRetry:
    """How the final update of a job record is retried while Redis is away."""
    return RedisRetry(
        ExponentialWithJitterBackoff(cap=10.0, base=0.5), FINAL_RECORD_RETRIES, REDIS_AWAY
    )


def _jobs() -> JobStore:
    # Imported on use: the worker's main process must not import prometheus_client (through
    # the domain modules) before `workers.signals` has pointed it at the metrics folder.
    from tasks import context

    return context.jobs()


def _redelivery_limit() -> int:
    from tasks import context  # deferred, as in _jobs

    return context.settings().task_max_redeliveries


def this_worker() -> WorkerRun | None:
    """This process's worker incarnation, or None outside a worker (eager calls, tests)."""
    node, boot = os.environ.get(NODE_ENV), os.environ.get(BOOT_ENV)
    return WorkerRun(node, boot) if node and boot else None


class WorkerLost(RuntimeError):
    """The worker running a job stopped (its main process was killed) before finishing it."""

    kind = ErrorKind.WORKER_LOST


def start_incarnation(node: str) -> WorkerRun:
    """Name this worker's incarnation; its pool children, forked later, inherit it."""
    worker = WorkerRun(node, uuid.uuid4().hex)
    os.environ[NODE_ENV] = worker.node
    os.environ[BOOT_ENV] = worker.boot
    return worker


def fail_lost_jobs(store: JobStore, worker: WorkerRun) -> list[str]:
    """Fail the jobs an earlier incarnation of `worker.node` left running; their ids."""
    reason = WorkerLost(
        f"worker {worker.node} stopped (killed or crashed) while running this job and was "
        "restarted; the job did not finish and will not run again: submit it again"
    )
    failed = store.fail_lost(worker, error_record(reason))
    for job_id in failed:
        log.warning("job %s failed: its worker %s was lost while running it", job_id, worker.node)
    return failed


class RedeliveryLimit(RuntimeError):
    """A task's message came back more often than TASK_MAX_REDELIVERIES allows."""

    kind = ErrorKind.REDELIVERY_LIMIT


def _metrics() -> Any:
    # Deferred: prometheus_client waits until the metrics folder is set (see _jobs).
    from stockpred.telemetry.worker_metrics import worker_metrics

    return worker_metrics()


def _symbol(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    symbol = kwargs.get("symbol") or (args[0] if args and isinstance(args[0], str) else None)
    return str(symbol) if symbol else None


class RedisUnavailable(RuntimeError):
    """Redis (broker, job records, locks) did not answer while the task needed it."""

    kind = ErrorKind.REDIS_UNAVAILABLE


def _redis_away(exc: BaseException | None) -> redis.exceptions.RedisError | None:
    """The Redis connection error `exc` is, or was raised from or during, if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, REDIS_AWAY):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def job_error(exc: BaseException) -> dict[str, Any]:
    """The record's error for an exception, Celery's time limits and Redis outages included."""
    if isinstance(exc, TimeLimitExceeded):
        limit = exc.args[0] if exc.args else "?"
        message = f"hard time limit ({limit}s) exceeded: the task was killed"
        return {"kind": str(ErrorKind.TIME_LIMIT), "type": type(exc).__name__, "message": message}
    if isinstance(exc, SoftTimeLimitExceeded):
        message = "soft time limit exceeded: the task was stopped"
        return {"kind": str(ErrorKind.TIME_LIMIT), "type": type(exc).__name__, "message": message}
    away = _redis_away(exc) if not hasattr(exc, "kind") else None
    if away is not None:
        reason = RedisUnavailable(
            f"Redis did not answer while the task needed it ({type(away).__name__}: {away}); "
            "it stopped there: submit it again"
        )
        return error_record(reason)
    return error_record(exc)


class JobTask(Task):  # type: ignore[misc]
    """A Celery task whose job record follows it: started, succeeded, failed, retried."""

    Request = "workers.task_base:JobRequest"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if request.called_directly:  # a plain function call: no message, no job
            return super().__call__(*args, **kwargs)
        with logs.log_context(task=self.name, task_id=request.id, symbol=_symbol(args, kwargs)):
            self._report_start(request)
            began = time.perf_counter()
            state = states.FAILURE
            try:
                if self._already_final(request):
                    state = states.IGNORED
                    return None
                self._refuse_endless_redelivery(request)
                result = super().__call__(*args, **kwargs)
                state = states.SUCCESS
                return result
            except Retry:
                state = states.RETRY
                raise
            except Ignore:
                state = states.IGNORED
                raise
            except Reject:
                state = states.REJECTED
                raise
            finally:
                self._count(state, time.perf_counter() - began)

    def _count(self, state: str, seconds: float) -> None:
        """Task metrics; a metrics failure must never replace the task's own outcome."""
        try:
            metrics = _metrics()
            metrics.tasks.labels(self.name, state).inc()
            metrics.task_runtime.labels(self.name).observe(seconds)
        except Exception:
            log.warning("could not record the metrics of %s", self.name, exc_info=True)

    def _already_final(self, request: Any) -> bool:
        """True for a redelivered message whose job already ended (e.g. its worker was lost)."""
        if not (request.delivery_info or {}).get("redelivered"):
            return False
        job = _jobs().get(request.id)
        if job is None or not job.finished:
            return False
        setattr(request, ALREADY_FINAL, True)
        log.warning(
            "task %s redelivered, but its job already ended %s (%s): acknowledged, not run again",
            request.id,
            job.state,
            (job.error or {}).get("kind", "-"),
        )
        return True

    def _refuse_endless_redelivery(self, request: Any) -> None:
        """Fail a message that keeps coming back (its worker dies on it) instead of looping."""
        if not (request.delivery_info or {}).get("redelivered"):
            return
        count = _jobs().count_redelivery(request.id)
        limit = _redelivery_limit()
        if count > limit:
            raise RedeliveryLimit(
                f"redelivered {count} times (TASK_MAX_REDELIVERIES={limit}): its worker died "
                "or lost the broker while running it each time; not run again"
            )
        log.warning("task %s redelivered (%d of at most %d)", request.id, count, limit)

    def _report_start(self, request: Any) -> None:
        worker = this_worker()
        state: str | None = "started"
        if not self.track_started:
            # A task of a few milliseconds (a prediction): its start time is written with its
            # outcome; only who runs it is sent now, and its reply is read with the outcome's.
            setattr(request, STARTED_AT, utcnow_iso(MICROSECONDS))
            if worker is None:
                return
            state = None
        try:
            # Not waited for: the task starts at once; the store's next update lands after it.
            _jobs().send_update(request.id, state=state, worker=worker)
        except Exception:
            log.warning("could not mark job %s started", request.id, exc_info=True)

    def on_success(
        self, retval: Any, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if getattr(self.request, ALREADY_FINAL, False):
            return
        # The store's update reads the replies of the deferred writes first: the job's result
        # lands only after its cached copy is confirmed.
        self._record(task_id, state="succeeded", result=retval)

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: Any,
    ) -> None:
        # Also called in the worker's main process when a hard time limit killed the child.
        self._record(task_id, state="failed", error=job_error(exc))

    def on_retry(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: Any,
    ) -> None:
        try:
            _metrics().retries.labels(self.name).inc()
        except Exception:
            log.warning("could not count the retry of %s", self.name, exc_info=True)
        reason = exc if exc is not None else RuntimeError("retried")  # self.retry() without exc
        self._record(task_id, state="queued", error=error_record(reason, kind=ErrorKind.RETRY))

    def _record(self, task_id: str | None, **fields: Any) -> None:
        """Update the job record; a Redis hiccup here must never fail the task itself."""
        if not task_id:
            return
        started_at = getattr(self.request, STARTED_AT, None)
        store = _jobs()

        def update() -> bool:
            return store.update(task_id, started_at=started_at, **fields)

        def waiting(exc: Exception) -> None:
            log.warning("job %s: Redis is away (%s); its update will be tried again", task_id, exc)

        try:
            if fields.get("state") in TERMINAL_STATES:
                final_record_retry().call_with_retry(update, waiting)
            else:
                update()
        except redis.exceptions.OutOfMemoryError as exc:
            log.error(
                "Redis is at maxmemory and refused the update of job %s (%s: state %s): %s",
                task_id,
                self.name,
                fields.get("state"),
                exc,
            )
        except Exception:
            log.warning("could not update job record %s", task_id, exc_info=True)


def _note_received(task_id: str) -> None:
    """Name this worker in the job's record before a pool child starts it (not waited for)."""
    worker = this_worker()
    if worker is None:
        return
    try:
        _jobs().send_update(task_id, state=None, worker=worker)
    except Exception:
        log.warning("could not record that %s took job %s", worker.node, task_id, exc_info=True)


class JobRequest(Request):  # type: ignore[misc]
    """A task message in the worker's main process; a revoked one cancels its job."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Made when the message is received (Celery's per-task subclass overrides the rest).
        # A host that dies between here and the task's start leaves a job that its node's
        # running set names, so the lost-worker check fails it instead of the broker
        # redelivering it hours later.
        super().__init__(*args, **kwargs)
        _note_received(self.id)

    def _announce_revoked(self, *args: Any, **kwargs: Any) -> None:
        # The one place Celery funnels every revocation (by id, on expiry, on termination).
        super()._announce_revoked(*args, **kwargs)
        try:
            _jobs().update(self.id, state="cancelled")
        except Exception:
            log.warning("could not mark job %s cancelled", self.id, exc_info=True)
