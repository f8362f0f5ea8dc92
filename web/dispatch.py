"""Submitting work from a request: `stockpred.jobs.submit` with this app's parts; answer 202."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec

from flask import Response, jsonify, url_for

from stockpred.jobs import submit as jobs_submit
from stockpred.jobs.records import Job, JobStore
from stockpred.jobs.submit import SendTask
from web.errors import ApiError
from web.services import services

P = ParamSpec("P")


def _with_app_parts(
    submit_job: Callable[Concatenate[SendTask, JobStore, P], Job],
) -> Callable[P, Job]:
    """`submit_job` with this app's Celery client and job store; its failures as 503s."""

    @functools.wraps(submit_job)
    def call(*args: P.args, **kwargs: P.kwargs) -> Job:
        svc = services()
        try:
            return submit_job(svc.celery.send_task, svc.jobs, *args, **kwargs)
        except jobs_submit.JobStoreUnavailable as exc:
            raise ApiError(503, "job store unavailable", str(exc)) from exc
        except jobs_submit.QueueUnavailable as exc:
            raise ApiError(503, "task queue unavailable", str(exc)) from exc

    return call


# Record a job and queue its task (see stockpred.jobs.submit); ApiError(503) when Redis or the
# broker cannot take it.
submit = _with_app_parts(jobs_submit.submit)


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
