"""Submitting work from a request: `stockpred.jobs.submit` with this app's parts; answer 202.

API work is bounded per queue and sent behind scheduled work (`API_PRIORITY`); a read that
queues work is counted against the client's work limit first (web.admission).
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request, url_for

from stockpred.jobs import submit as jobs_submit
from stockpred.jobs.locks import OwnedLock
from stockpred.jobs.records import Job
from stockpred.queues import API_PRIORITY
from web.admission import admit_work
from web.errors import ApiError
from web.metrics import web_metrics
from web.middleware import READ_ONLY
from web.services import services


def submit(
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
) -> Job:
    """Record a job and queue its task (stockpred.jobs.submit) for this request.

    ApiError 429 when a read is over the client's work limit, 503 with Retry-After when the
    queue is full, 503 when Redis or the broker cannot take it; `lock` is released on each.
    """
    svc = services()
    if request.method in READ_ONLY:
        try:
            admit_work(svc.rate_limits)
        except ApiError:
            if lock is not None and job_id is not None:
                lock.release(job_id)
            raise
    try:
        return jobs_submit.submit(
            svc.celery.send_task,
            svc.jobs,
            kind=kind,
            task_name=task_name,
            kwargs=kwargs,
            symbol=symbol,
            dedupe_key=dedupe_key,
            dedupe_seconds=dedupe_seconds,
            pending_only=pending_only,
            job_id=job_id,
            lock=lock,
            bounds=svc.queue_bounds,
            priority=API_PRIORITY,
        )
    except jobs_submit.QueueFull as exc:
        web_metrics().refused.labels(f"queue_full_{exc.queue}").inc()
        raise ApiError(
            503, "queue full", str(exc), {"Retry-After": str(exc.retry_after)}, public=True
        ) from exc
    except jobs_submit.JobStoreUnavailable as exc:
        raise ApiError(503, "job store unavailable", str(exc)) from exc
    except jobs_submit.QueueUnavailable as exc:
        raise ApiError(503, "task queue unavailable", str(exc)) from exc


def wait_for_job(job_id: str, timeout: float) -> Job | None:
    """Wait up to `timeout` seconds for a job to finish; None if it is still running."""
    job = services().jobs.wait_finished(job_id, timeout)
    return job if job is not None and job.finished else None


def accepted(job: Job) -> Response:
    """202 with the job id and where to poll it."""
    status_url = url_for("jobs.get_task", task_id=job.id)
    response = jsonify(
        {"task_id": job.id, "status_url": status_url, "state": job.state, "kind": job.kind}
    )
    response.status_code = 202
    response.headers["Location"] = status_url
    return response
