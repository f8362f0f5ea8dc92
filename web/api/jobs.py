"""`/api/v1/tasks/{id}`: the durable job record of submitted work."""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify

from web.errors import ApiError
from web.services import services

bp = Blueprint("jobs", __name__, url_prefix="/api/v1/tasks")
_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@bp.get("/<task_id>")
def get_task(task_id: str) -> Response:
    """State, progress, result or error of a submitted job."""
    if not _TASK_ID.match(task_id):
        raise ApiError(400, "invalid task id", "task ids are up to 64 letters, digits, - and _")
    job = services().jobs.get(task_id)
    if job is None:
        raise ApiError(404, "unknown task id", f"no job {task_id!r} (never submitted, or expired)")
    return jsonify(job.to_dict())
