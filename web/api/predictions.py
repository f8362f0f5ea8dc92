"""`/api/v1/predict/{symbol}`: cached predictions from Redis, else the inference queue."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, request

from stockpred.counters import HitCounter
from stockpred.filememo import FileMemo
from stockpred.market.daily_cache import DailyCache
from stockpred.ml.prediction_store import cache_key
from stockpred.ml.registry import CURRENT_FILE
from stockpred.paths import DataTree
from web.api.training import start_training
from web.dispatch import accepted, submit, wait_for_job
from web.errors import ApiError
from web.metrics import web_metrics
from web.params import parse_bool, parse_int, parse_symbol
from web.services import services

bp = Blueprint("predictions", __name__, url_prefix="/api/v1/predict")
MAX_HORIZON = 30
NOT_FOUND = {"NoModel", "UnknownSymbol", "NoData", "InvalidSymbol"}
BAD_REQUEST = {"HorizonUnsupported"}


_memo = FileMemo()


def _current_version(tree: DataTree, symbol: str) -> str | None:
    """The published version, re-read only when the pointer file changes."""
    pointer = tree.ml_models / symbol / CURRENT_FILE
    return _memo.read(pointer, lambda p: p.read_text(encoding="utf-8").strip() or None)


def _as_of(cache: DailyCache, symbol: str) -> str | None:
    """The date of the symbol's last cached bar, re-read only when the sidecar changes."""
    return _memo.read(cache.meta_path(symbol), lambda _: cache.as_of(symbol))


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
        cached = "true" if response.headers.get("X-Cache") == "hit" else "false"
        metrics = web_metrics()
        metrics.predictions.labels(cached).inc()
        metrics.prediction_latency.labels(cached).observe(time.perf_counter() - started)
    return response


def _predict(symbol: str) -> Response:
    sym = parse_symbol(symbol)
    horizon = parse_int("horizon", request.args.get("horizon"), 1, MAX_HORIZON, 1) or 1
    parse_int("days", request.args.get("days"), 1, 365, None)  # the original's lookback; unused
    run_async = parse_bool("async", request.args.get("async"))
    svc = services()
    settings = svc.settings
    tree = DataTree.from_settings(settings)
    version = _current_version(tree, sym)
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
    as_of = _as_of(DailyCache(tree.daily_cache), sym)
    looked_up = False
    if as_of is not None and not run_async:
        pipe = svc.redis.pipeline(transaction=False)
        pipe.get(cache_key(sym, horizon, version, as_of))
        counter.count_lookup(pipe)
        raw = pipe.execute()[0]
        looked_up = True
        if raw is not None:
            # Served as stored: the cached JSON object gains "cached": true, unparsed.
            return Response(
                str(raw)[:-1] + ',"cached":true}',
                mimetype="application/json",
                headers={"X-Cache": "hit"},
            )
    counter.miss(looked_up=looked_up)
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
