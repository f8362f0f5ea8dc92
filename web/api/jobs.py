"""`/api/v1/tasks/{id}`: the durable job record of submitted work, and its cancel action.

Cancelling is an action on the job (`POST .../cancel`), not a DELETE: the record stays and
answers `cancelled`, which is how a running training learns to stop.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify

from stockpred.jobs.locks import training_lock
from stockpred.jobs.records import Job
from web.errors import ApiError
from web.services import services

bp = Blueprint("jobs", __name__, url_prefix="/api/v1/tasks")
TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _job(task_id: str) -> Job:
    if not TASK_ID.fullmatch(task_id):
        raise ApiError(400, "invalid task id", "task ids are up to 64 letters, digits, - and _")
    job = services().jobs.get(task_id)
    if job is None:
        raise ApiError(404, "unknown task id", f"no job {task_id!r} (never submitted, or expired)")
    return job


@bp.get("/<task_id>")
def get_task(task_id: str) -> Response:
    """State, progress, result or error of a submitted job."""
    return jsonify(_job(task_id).to_dict())


@bp.post("/<task_id>/cancel")
def cancel_task(task_id: str) -> Response:
    """Cancel a job: dropped if still queued, stopped between epochs if training; kept as record."""
    return jsonify(cancel_job(task_id))


def cancel_job(task_id: str) -> dict[str, str]:
    """Mark a job cancelled and revoke its task; 409 when it has finished already."""
    job = _job(task_id)
    if job.finished:
        raise ApiError(409, "job already finished", f"job {task_id} is {job.state}")
    svc = services()
    svc.jobs.update(task_id, state="cancelled")
    svc.celery.control.revoke(task_id)  # a queued task is discarded; a running one is not killed
    if job.kind == "train" and job.symbol and job.state == "queued":
        limit = int(svc.settings.training_time_limit.total_seconds())
        training_lock(svc.redis, job.symbol, limit).release(task_id)
    return {
        "id": task_id,
        "state": "cancelled",
        "message": "queued work is dropped; a running training stops after its epoch",
    }
