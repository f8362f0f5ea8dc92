"""`POST /api/v1/train/{symbol}`: queue a training job, one per symbol at a time."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify, url_for

from stockpred.jobs.locks import claim, training_lock
from stockpred.jobs.records import Job
from web.api.historical import refuse_if_remembered
from web.dispatch import accepted, submit
from web.params import json_body, parse_bool, parse_int, parse_symbol
from web.services import services

bp = Blueprint("training", __name__, url_prefix="/api/v1/train")


def _running(job_id: str) -> bool:
    job = services().jobs.get(job_id)
    return job is not None and not job.finished


class TrainingRunning(Exception):
    """A symbol's training lock is held by a job that is still running."""

    def __init__(self, symbol: str, owner: str) -> None:
        super().__init__(f"job {owner} is training {symbol}; poll it or cancel it first")
        self.owner = owner


def queue_training(symbol: str, *, epochs: int | None, force: bool) -> Job:
    """Take the symbol's training lock for a new job and queue it; TrainingRunning if held."""
    svc = services()
    refuse_if_remembered(symbol)
    # Queued, the claim lives as long as the job record that vouches for it (locks.py).
    lock = training_lock(svc.redis, symbol, int(svc.settings.job_ttl.total_seconds()))
    job_id = str(uuid.uuid4())
    owner = claim(lock, job_id, _running)
    if owner is not None:
        raise TrainingRunning(symbol, owner)
    kwargs: dict[str, object] = {"symbol": symbol, "force": force}
    if epochs is not None:
        kwargs["epochs"] = epochs
    return submit(
        kind="train",
        task_name="training.train",
        kwargs=kwargs,
        symbol=symbol,
        job_id=job_id,
        lock=lock,
    )


def start_training(symbol: str, *, epochs: int | None, force: bool) -> Response:
    """Queue a training (queue_training) and answer 202; 409 names a running job."""
    try:
        job = queue_training(symbol, epochs=epochs, force=force)
    except TrainingRunning as running:
        response = jsonify(
            {
                "error": "training already running",
                "status": 409,
                "detail": str(running),
                "task_id": running.owner,
                "status_url": url_for("jobs.get_task", task_id=running.owner),
            }
        )
        response.status_code = 409
        return response
    return accepted(job)


@bp.post("/<path:symbol>")
def train(symbol: str) -> Response:
    """Queue training (body: {"epochs": 1..1000, "force": bool}); 202 with the job id."""
    sym = parse_symbol(symbol)
    body = json_body()
    epochs = parse_int("epochs", body.get("epochs"), 1, 1000, None)
    force = parse_bool("force", body.get("force"))
    return start_training(sym, epochs=epochs, force=force)
