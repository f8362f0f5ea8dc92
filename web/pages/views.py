"""The dashboard's routes: overview, symbol, jobs, sign-in and sign-out, operator actions.

Actions run the code the JSON API's views run (queue_training, roll_back, clear_predictions,
queue_backup, cancel_job), then redirect (303) to a page that shows the outcome. A POST needs a
valid CSRF token and, except the sign-in itself, a signed-in operator: else 403, in the JSON
error shape every refusal has.
"""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError
from werkzeug.wrappers import Response as BaseResponse

from web.admission import MUTATING_METHODS
from web.api.jobs import TASK_ID, cancel_job
from web.api.models import roll_back
from web.api.stats import clear_predictions
from web.api.storage import queue_backup
from web.api.training import TrainingRunning, queue_training
from web.auth import PAGES, SESSION_KEY, session_signed_in, token_matches
from web.errors import ApiError, error_response
from web.pages import csrf, reads
from web.params import parse_int, parse_symbol
from web.services import services

log = logging.getLogger(__name__)
bp = Blueprint(
    PAGES,
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dashboard/static",
)
MAX_EPOCHS = 1000


@bp.before_request
def _guard() -> None:
    """A POST needs a CSRF token, and a signed-in operator unless it is the sign-in."""
    if request.method not in MUTATING_METHODS:
        return
    csrf.protect()
    if request.endpoint != "pages.sign_in" and not session_signed_in():
        raise ApiError(403, "sign-in required", "sign in with the API token at /signin first")


@bp.errorhandler(CSRFError)
def _csrf_refused(exc: CSRFError) -> Response:
    return error_response(
        403, "csrf token missing or invalid", f"{exc.description} Reload the page and try again."
    )


@bp.app_context_processor
def _page_context() -> dict[str, object]:
    return {"signed_in": session_signed_in(), "age": reads.age, "duration": reads.duration}


def overview_page() -> str:
    """The overview's HTML (`/` answers it to browsers: web.api.meta)."""
    return render_template("overview.html", view=reads.overview(services()))


@bp.get("/symbols/<symbol>")
def symbol(symbol: str) -> str:
    """A symbol's prices, forecast and its band, track record and model versions (HTML)."""
    sym = parse_symbol(symbol)
    job_id = request.args.get("job")
    if job_id is not None and not TASK_ID.fullmatch(job_id):
        raise ApiError(400, "invalid job", "job must be a task id")
    page = reads.symbol_page(services(), sym)
    return render_template("symbol.html", page=page, job_id=job_id)


@bp.get("/jobs")
def jobs() -> str:
    """Recent jobs: state, progress, duration and errors (HTML)."""
    return render_template("jobs.html", jobs=reads.recent_jobs(services()))


@bp.get("/signin")
def sign_in_form() -> str:
    """The operator's sign-in form (HTML)."""
    return render_template("signin.html", next=_next_page())


@bp.post("/signin")
def sign_in() -> BaseResponse | tuple[str, int]:
    """Exchange the API token for a session cookie."""
    token = services().settings.api_token
    supplied = request.form.get("token", "")
    if not token_matches(f"Bearer {supplied}", token):
        log.warning("dashboard sign-in refused from %s", request.remote_addr or "-")
        flash("That token is not the API token.", "error")
        return render_template("signin.html", next=_next_page()), 403
    session.clear()  # a new session for the operator: nothing carried over from before
    session.permanent = True
    session[SESSION_KEY] = True
    flash("Signed in.", "info")
    return redirect(_next_page(), 303)


@bp.post("/signout")
def sign_out() -> BaseResponse:
    """End the operator's session."""
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("meta.index"), 303)


@bp.post("/symbols/<symbol>/train")
def train(symbol: str) -> BaseResponse:
    """Queue a training of the symbol; the symbol page follows its progress."""
    sym = parse_symbol(symbol)
    raw = request.form.get("epochs") or None
    epochs = parse_int("epochs", raw, 1, MAX_EPOCHS, None)
    try:
        job = queue_training(sym, epochs=epochs, force=request.form.get("force") == "on")
    except TrainingRunning as running:
        log.info("dashboard training of %s refused: %s", sym, running)
        flash(f"{running}.", "error")
        return redirect(url_for("pages.symbol", symbol=sym, job=running.owner), 303)
    except ApiError as exc:
        return _refused(exc, url_for("pages.symbol", symbol=sym))
    flash(f"Training of {sym} queued (job {job.id}).", "info")
    return redirect(url_for("pages.symbol", symbol=sym, job=job.id), 303)


@bp.post("/symbols/<symbol>/rollback")
def rollback(symbol: str) -> BaseResponse:
    """Publish an earlier model version (the one before current unless one is chosen)."""
    sym = parse_symbol(symbol)
    target = request.form.get("version") or None
    back = url_for("pages.symbol", symbol=sym)
    try:
        job, result = roll_back(sym, target)
    except ApiError as exc:
        return _refused(exc, back)
    if result is None:
        flash(f"Rollback of {sym} queued (job {job.id}).", "info")
    else:
        flash(f"{sym} now serves version {result.get('current', target)}.", "info")
    return redirect(back, 303)


@bp.post("/cache/clear")
def clear_cache() -> BaseResponse:
    """Drop cached predictions (one symbol, or all)."""
    raw = request.form.get("symbol") or None
    sym = None if raw is None else parse_symbol(raw)
    message = str(clear_predictions(sym)["message"])
    flash(f"{message[:1].upper()}{message[1:]}.", "info")
    return redirect(url_for("pages.symbol", symbol=sym) if sym else url_for("meta.index"), 303)


@bp.post("/backup")
def backup() -> BaseResponse:
    """Queue a full backup; the jobs page shows it."""
    try:
        job = queue_backup({"categories": None, "base": None, "incremental": False})
    except ApiError as exc:
        return _refused(exc, url_for("pages.jobs"))
    flash(f"Backup queued (job {job.id}).", "info")
    return redirect(url_for("pages.jobs"), 303)


@bp.post("/jobs/<task_id>/cancel")
def cancel(task_id: str) -> BaseResponse:
    """Cancel a queued or running job."""
    try:
        cancel_job(task_id)
    except ApiError as exc:
        if exc.status == 400:
            raise
        return _refused(exc, url_for("pages.jobs"))
    flash(f"Job {task_id} cancelled.", "info")
    return redirect(url_for("pages.jobs"), 303)


def _refused(exc: ApiError, back: str) -> BaseResponse:
    """An action the service refused (busy, nothing to roll back to): said on the page."""
    log.info("dashboard action refused: %s %s: %s", exc.status, exc.error, exc.detail)
    flash(f"{exc.error.capitalize()}: {exc.detail}", "error")
    return redirect(back, 303)


def _next_page() -> str:
    """Where to go after signing in: a local path only, never another site."""
    target = request.values.get("next") or ""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("meta.index")


@bp.get("/symbols")
def open_symbol() -> BaseResponse:
    """Go to the page of the symbol the form names (?symbol=)."""
    return redirect(url_for("pages.symbol", symbol=parse_symbol(request.args.get("symbol", ""))))
