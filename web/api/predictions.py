"""`/api/v1/predict/{symbol}`: what the WSGI fast path (web.fastpath) does not answer.

The fast path answers every cache hit and passes everything else here with its lookup: a miss
or an async request is sent to the inference queue; bad input, a symbol without a model and
Redis trouble are answered as errors.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, request

from stockpred.jobs.errors import ErrorKind
from web.api.training import start_training
from web.auth import authenticated
from web.dispatch import accepted, submit, wait_for_job
from web.errors import MODEL_UNREADABLE, ApiError
from web.metrics import record_prediction, web_metrics
from web.prediction_lookup import parse_query, recorded_lookup
from web.services import services

URL_PREFIX = "/api/v1/predict"
PREFIX = URL_PREFIX + "/"
PREDICT_RULE = PREFIX + "<path:symbol>"  # the endpoint label of metrics, as Flask names the rule
bp = Blueprint("predictions", __name__, url_prefix=URL_PREFIX)
NOT_FOUND = {
    ErrorKind.NO_MODEL,
    ErrorKind.UNKNOWN_SYMBOL,
    ErrorKind.NO_DATA,
    ErrorKind.INVALID_SYMBOL,
}
BAD_REQUEST = {ErrorKind.HORIZON_UNSUPPORTED}
DAMAGED = {ErrorKind.DAMAGED_VERSION}  # retrying will not help: roll the version back or retrain


@bp.get("/<path:symbol>")
def predict(symbol: str) -> Response:
    """Prediction for ?horizon=1..30 trading days (default 1); ?async=true always answers 202."""
    started = time.perf_counter()
    try:
        response = _predict(symbol)
    except ApiError as exc:
        if exc.status >= 500 or exc.error == "no prediction for symbol":
            web_metrics().prediction_errors.labels(exc.error).inc()
        raise
    if response.status_code == 200:
        record_prediction(cached=False, elapsed=time.perf_counter() - started)
    return response


def _how_to_train(symbol: str, auto_train: bool) -> str:
    """What a client can do about a symbol without a model (AUTO_TRAIN or not)."""
    train = f"train one with POST /api/v1/train/{symbol} (or `make train SYMBOL={symbol}`)"
    if auto_train:  # an anonymous request never starts a training (ARCHITECTURE rule 9)
        return (
            f"{symbol} has no trained model: {train}, or repeat this request with "
            "Authorization: Bearer <STOCKPRED_API_TOKEN> to start one (AUTO_TRAIN)"
        )
    return f"{symbol} has no trained model: {train}, or set AUTO_TRAIN=true"


def _predict(symbol: str) -> Response:
    query = parse_query(symbol, request.args)
    found = recorded_lookup(request.environ)
    sym, horizon, version = query.symbol, query.horizon, found.version
    svc = services()
    settings = svc.settings
    if version is None:
        if settings.auto_train and authenticated():
            return start_training(sym, epochs=None, force=False)
        raise ApiError(404, "no model for symbol", _how_to_train(sym, settings.auto_train))
    svc.prediction_lookup.count_miss(found)
    job = submit(
        kind="predict",
        task_name="inference.predict",
        kwargs={"symbol": sym, "horizon": horizon},
        symbol=sym,
        dedupe_key=f"predict:{sym}:{horizon}:{version}",
        dedupe_seconds=30,
    )
    if query.run_async:
        return accepted(job)
    finished = wait_for_job(job.id, settings.predict_wait)
    if finished is None:
        return accepted(job)
    if finished.state == "succeeded" and isinstance(finished.result, dict):
        if finished.result_json:  # answered as the worker stored it, not encoded again
            return Response(finished.result_json, mimetype="application/json")
        return jsonify(finished.result)
    error = finished.error or {}
    kind, message = error.get("kind"), error.get("message") or finished.state
    if kind in NOT_FOUND:
        raise ApiError(404, "no prediction for symbol", message)
    if kind in BAD_REQUEST:
        raise ApiError(400, "invalid horizon", message)
    if kind in DAMAGED:
        raise ApiError(500, MODEL_UNREADABLE, message)
    raise ApiError(503, "prediction failed", message)
