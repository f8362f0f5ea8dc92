"""Submitting work: write the job record, then send the task by name; wait briefly; answer 202."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Response, jsonify, url_for

from stockpred.jobs.records import DamagedJobRecord, Job
from stockpred.queues import queue_for_task
from web.errors import ApiError
from web.services import services

log = logging.getLogger(__name__)
# Fail fast when the broker is away: the caller gets a 503 instead of a hung request.
_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def submit(
    *,
    kind: str,
    task_name: str,
    kwargs: dict[str, Any],
    symbol: str | None = None,
    dedupe_key: str | None = None,
    dedupe_seconds: int = 120,
    job_id: str | None = None,
) -> Job:
    """Record a job and queue its task; raise ApiError(503) if the broker cannot take it.

    With `dedupe_key`, a job submitted under the same key in the last `dedupe_seconds` is
    returned instead of queuing the same work again.
    """
    queue = queue_for_task(task_name)
    if queue is None:
        raise ValueError(f"task {task_name!r} names no declared queue")
    svc = services()
    wanted = job_id or str(uuid.uuid4())
    try:
        job = svc.jobs.create(
            kind=kind,
            task_name=task_name,
            queue=queue,
            symbol=symbol,
            params=kwargs,
            job_id=wanted,
            dedupe_key=dedupe_key,
            dedupe_seconds=dedupe_seconds,
        )
    except DamagedJobRecord:
        raise  # answered by web.errors, not as an outage
    except Exception as exc:
        raise ApiError(503, "job store unavailable", f"Redis did not answer: {exc}") from exc
    if job.id != wanted:
        return job  # the same work, submitted moments ago
    try:
        # The job record carries the result: Celery's result backend is not written.
        svc.celery.send_task(
            task_name,
            kwargs=kwargs,
            task_id=job.id,
            ignore_result=True,
            retry=True,
            retry_policy=_PUBLISH_RETRY,
        )
    except Exception as exc:
        log.error("could not queue %s job %s: %s", task_name, job.id, exc)
        try:
            svc.jobs.update(
                job.id, state="failed", error={"type": "QueueUnavailable", "message": str(exc)}
            )
            if dedupe_key is not None:
                svc.jobs.forget_dedupe(dedupe_key)
        except Exception:
            log.warning("could not mark job %s failed", job.id, exc_info=True)
        raise ApiError(503, "task queue unavailable", str(exc)) from exc
    log.info("queued %s job %s on %s", task_name, job.id, queue)
    return job


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
