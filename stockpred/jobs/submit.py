"""Submitting work: write the job record, then publish its task by name with the job id.

The one way work is queued, by the web and by tasks that queue other tasks. Work the API
submits passes `bounds` (refused with QueueFull, before anything is recorded, when its queue
holds as many waiting tasks as its bound) and `priority=API_PRIORITY` (consumed after scheduled
work); work that beat's tasks queue passes neither, so it is never refused and goes first. A
publish that fails leaves nothing behind that looks alive: the record ends `failed` (kind
`queue_unavailable`), the dedupe key is forgotten and the lock it was given is released.
Takes the publisher, the job store and the bounds as arguments; knows neither Flask nor the
settings.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Protocol

from stockpred.jobs.errors import ErrorKind, error_record
from stockpred.jobs.locks import OwnedLock
from stockpred.jobs.queue_bounds import QueueBounds, QueueFull, Reservation
from stockpred.jobs.records import DamagedJobRecord, Job, JobStore
from stockpred.queues import SCHEDULED_PRIORITY, queue_for_task

__all__ = ["JobStoreUnavailable", "QueueFull", "QueueUnavailable", "SendTask", "submit"]

log = logging.getLogger(__name__)
# Fail fast when the broker is away: the caller hears of it in about a second, not a minute.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class SendTask(Protocol):
    """`Celery.send_task`, as far as submitting uses it."""

    def __call__(self, name: str, /, **options: Any) -> Any: ...


class JobStoreUnavailable(RuntimeError):
    """Redis did not take the job record: nothing was queued."""

    kind = ErrorKind.QUEUE_UNAVAILABLE


class QueueUnavailable(RuntimeError):
    """The broker did not take the task: its record is failed and its lock released."""

    kind = ErrorKind.QUEUE_UNAVAILABLE

    def __init__(self, message: str, job_id: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


def submit(
    send_task: SendTask,
    store: JobStore,
    *,
    kind: str,
    task_name: str,
    kwargs: dict[str, Any],
    symbol: str | None = None,
    dedupe_key: str | None = None,
    dedupe_seconds: int = 120,
    pending_only: bool = False,
    job_id: str | None = None,
    lock: OwnedLock | None = None,
    bounds: QueueBounds | None = None,
    priority: int = SCHEDULED_PRIORITY,
) -> Job:
    """Record a job and publish its task; return the job (an earlier one when deduplicated).

    `lock`, held by `job_id`, is released when the task cannot be queued, or when the same work
    was submitted moments ago (with `dedupe_key`) and that job is returned instead; with
    `pending_only`, only a job that has not finished yet stands for the same work. With
    `bounds`, a full queue raises QueueFull before anything is recorded (the lock released).
    """
    queue = queue_for_task(task_name)
    if queue is None:
        raise ValueError(f"task {task_name!r} names no declared queue")
    wanted = job_id or str(uuid.uuid4())
    try:
        reservation = _reserve(bounds, queue)
    except QueueFull as exc:
        log.warning("refused %s job: %s", task_name, exc)
        _release(lock, wanted)
        raise
    except Exception as exc:
        _release(lock, wanted)
        raise JobStoreUnavailable(f"Redis did not answer: {exc}") from exc
    try:
        return _record_and_publish(
            send_task,
            store,
            queue=queue,
            kind=kind,
            task_name=task_name,
            kwargs=kwargs,
            symbol=symbol,
            dedupe_key=dedupe_key,
            dedupe_seconds=dedupe_seconds,
            pending_only=pending_only,
            wanted=wanted,
            lock=lock,
            priority=priority,
        )
    finally:
        if reservation is not None:
            _give_back(reservation)


def _reserve(bounds: QueueBounds | None, queue: str) -> Reservation | None:
    return None if bounds is None else bounds.reserve(queue)


def _give_back(reservation: Reservation) -> None:
    try:
        reservation.release()
    except Exception:  # it expires on its own within RESERVATION_SECONDS
        log.warning("could not release the reservation in %s", reservation.key, exc_info=True)


def _record_and_publish(
    send_task: SendTask,
    store: JobStore,
    *,
    queue: str,
    kind: str,
    task_name: str,
    kwargs: dict[str, Any],
    symbol: str | None,
    dedupe_key: str | None,
    dedupe_seconds: int,
    pending_only: bool,
    wanted: str,
    lock: OwnedLock | None,
    priority: int,
) -> Job:
    try:
        job = store.create(
            kind=kind,
            task_name=task_name,
            queue=queue,
            symbol=symbol,
            params=kwargs,
            job_id=wanted,
            dedupe_key=dedupe_key,
            dedupe_seconds=dedupe_seconds,
            pending_only=pending_only,
        )
    except DamagedJobRecord:
        _release(lock, wanted)
        raise
    except Exception as exc:
        _release(lock, wanted)
        raise JobStoreUnavailable(f"Redis did not answer: {exc}") from exc
    if job.id != wanted:
        _release(lock, wanted)
        return job
    try:
        # The job record carries the result: Celery's result backend is not written.
        send_task(
            task_name,
            kwargs=kwargs,
            task_id=job.id,
            ignore_result=True,
            priority=priority,
            retry=True,
            retry_policy=PUBLISH_RETRY,
        )
    except Exception as exc:
        log.error("could not queue %s job %s: %s", task_name, job.id, exc)
        _abandon(store, job.id, exc, dedupe_key)
        _release(lock, job.id)
        raise QueueUnavailable(str(exc), job_id=job.id) from exc
    log.info("queued %s job %s on %s", task_name, job.id, queue)
    return job


def _abandon(store: JobStore, job_id: str, exc: Exception, dedupe_key: str | None) -> None:
    """Fail the record of a task that was never queued, and let the same work be asked again."""
    try:
        store.update(
            job_id, state="failed", error=error_record(exc, kind=ErrorKind.QUEUE_UNAVAILABLE)
        )
        if dedupe_key is not None:
            store.forget_dedupe(dedupe_key)
    except Exception:
        log.warning("could not mark job %s failed", job_id, exc_info=True)


def _release(lock: OwnedLock | None, owner: str) -> None:
    if lock is None:
        return
    try:
        lock.release(owner)
    except Exception:
        log.warning("could not release %s held by job %s", lock.key, owner, exc_info=True)
