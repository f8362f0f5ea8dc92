"""Submitting work from a request: `stockpred.jobs.submit` with this app's parts; answer 202."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, url_for

from stockpred.jobs import submit as jobs_submit
from stockpred.jobs.locks import OwnedLock
from stockpred.jobs.records import Job
from web.errors import ApiError
from web.services import services


def submit(
    *,
    kind: str,
    task_name: str,
    kwargs: dict[str, Any],
    symbol: str | None = None,
    dedupe_key: str | None = None,
    dedupe_seconds: int = 120,
    job_id: str | None = None,
    lock: OwnedLock | None = None,
) -> Job:
    """Record a job and queue its task; raise ApiError(503) if Redis or the broker cannot.

    With `dedupe_key`, a job submitted under the same key in the last `dedupe_seconds` is
    returned instead of queuing the same work again. `lock` is released if nothing is queued.
    """
    svc = services()
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
            job_id=job_id,
            lock=lock,
        )
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
