"""`/api/v1/predictions/*`: the forecast ledger's work from the web: scoring, the daily run."""

from __future__ import annotations

from collections import Counter

from flask import Blueprint, Response, jsonify

from stockpred.jobs.daily_runs import DailyRuns
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


@bp.post("/daily-run")
def start_daily_run() -> Response:
    """Queue the daily run now (beat runs it after each US close); one at a time."""
    json_body()
    return accepted(
        submit(
            kind="daily-run",
            task_name="maintenance.daily_run",
            kwargs={},
            dedupe_key="daily-run",
            dedupe_seconds=int(services().settings.job_ttl.total_seconds()),
            pending_only=True,
        )
    )


@bp.get("/daily-status")
def daily_status() -> Response:
    """The latest daily run: each symbol's prediction job and its state, the symbols skipped."""
    svc = services()
    run = DailyRuns(svc.redis, svc.settings.job_ttl).latest()
    if run is None:
        return jsonify({"run": None})
    jobs = []
    for symbol, job_id in sorted(run.queued.items()):
        job = svc.jobs.get(job_id)
        jobs.append({"symbol": symbol, "job_id": job_id, "state": job.state if job else "expired"})
    states = Counter(job["state"] for job in jobs)
    skipped = [{"symbol": s, "reason": r} for s, r in sorted(run.skipped.items())]
    return jsonify(
        {
            "run": {
                "run_id": run.run_id,
                "started_at": run.started_at,
                "horizon": run.horizon,
                "jobs": jobs,
                "states": dict(sorted(states.items())),
                "skipped": skipped,
            }
        }
    )
