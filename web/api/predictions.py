"""`/api/v1/predict/{symbol}`: cached predictions from Redis, else the inference queue."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from stockpred.counters import HitCounter
from stockpred.market.daily_cache import DailyCache
from stockpred.ml.prediction_store import PredictionCache, cache_key
from stockpred.ml.registry import ModelRegistry
from stockpred.paths import DataTree
from web.api.training import start_training
from web.dispatch import accepted, submit, wait_for_job
from web.errors import ApiError
from web.params import parse_bool, parse_int, parse_symbol
from web.services import services

bp = Blueprint("predictions", __name__, url_prefix="/api/v1/predict")
MAX_HORIZON = 30
NOT_FOUND = {"NoModel", "UnknownSymbol", "NoData", "InvalidSymbol"}
BAD_REQUEST = {"HorizonUnsupported"}


@bp.get("/<path:symbol>")
def predict(symbol: str) -> Response:
    """Prediction for ?horizon=1..30 trading days (default 1); ?async=true always answers 202."""
    sym = parse_symbol(symbol)
    horizon = parse_int("horizon", request.args.get("horizon"), 1, MAX_HORIZON, 1) or 1
    parse_int("days", request.args.get("days"), 1, 365, None)  # the original's lookback; unused
    run_async = parse_bool("async", request.args.get("async"))
    svc = services()
    settings = svc.settings
    tree = DataTree.from_settings(settings)
    version = ModelRegistry(tree.ml_models, tree.scalers).current_version(sym)
    if version is None:
        if settings.auto_train:
            return start_training(sym, epochs=None, force=False)
        raise ApiError(
            404,
            "no model for symbol",
            f"{sym} has no trained model: train one with POST /api/v1/train/{sym} "
            f"(or `make train SYMBOL={sym}`), or set AUTO_TRAIN=true",
        )
    counter = HitCounter(svc.redis, "prediction_cache")
    as_of = DailyCache(tree.daily_cache).as_of(sym)
    if as_of is not None and not run_async:
        cached = PredictionCache(svc.redis, settings.ml_prediction_ttl).get(
            cache_key(sym, horizon, version, as_of)
        )
        if cached is not None:
            counter.hit()
            return jsonify({**cached, "cached": True})
    counter.miss()
    job = submit(
        kind="predict",
        task_name="inference.predict",
        kwargs={"symbol": sym, "horizon": horizon},
        symbol=sym,
        dedupe_key=f"predict:{sym}:{horizon}:{version}",
        dedupe_seconds=30,
    )
    if run_async:
        return accepted(job)
    finished = wait_for_job(job.id, settings.predict_wait)
    if finished is None:
        return accepted(job)
    if finished.state == "succeeded" and isinstance(finished.result, dict):
        return jsonify(finished.result)
    error = finished.error or {}
    kind, message = error.get("type"), error.get("message") or finished.state
    if kind in NOT_FOUND:
        raise ApiError(404, "no prediction for symbol", message)
    if kind in BAD_REQUEST:
        raise ApiError(400, "invalid horizon", message)
    raise ApiError(503, "prediction failed", message)
