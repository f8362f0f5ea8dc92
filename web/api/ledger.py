"""`/api/v1/predictions/*`: the forecast ledger's work queued from the web (scoring on demand)."""

from __future__ import annotations

from flask import Blueprint, Response

from web.dispatch import accepted, submit
from web.params import json_body
from web.services import services

bp = Blueprint("ledger", __name__, url_prefix="/api/v1/predictions")


@bp.post("/score")
def start_scoring() -> Response:
    """Queue a scoring of every due forecast (the beat job's work, now); one at a time."""
    json_body()  # an empty object or no body: the contract refuses anything else
    return accepted(
        submit(
            kind="score-forecasts",
            task_name="maintenance.score_forecasts",
            kwargs={},
            dedupe_key="score-forecasts",
            dedupe_seconds=int(services().settings.job_ttl.total_seconds()),
            pending_only=True,
        )
    )
