"""The check a cached prediction passes before it is served: shape, types, identity, finiteness.

A cached answer is read from Redis, which any client holding its password can write; what the
web serves from it must be what a worker would have written for that request. `parse_cached`
parses the stored text and checks it against the `Prediction` schema of web/openapi.json (the
fields and types the workers write) and against the request's cache key (symbol, horizon,
model version, last bar); it returns the document or raises `InvalidCachedPrediction` saying
why. What to do with a refused entry (log, count, delete, recompute) is the caller's business.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SIGNALS = frozenset({"BUY", "SELL", "HOLD"})
FORECASTERS = frozenset({"lstm", "naive", "drift"})
MAX_TEXT = 64 * 1024  # far above a 30-day forecast's few kilobytes


class InvalidCachedPrediction(ValueError):
    """A cached value that is not a prediction the workers would have written for this key."""


@dataclass(frozen=True)
class CacheIdentity:
    """What a cache key names: the answer stored under it must say the same."""

    symbol: str
    horizon: int
    version: str
    as_of: str


def _refuse_constant(name: str) -> Any:
    raise InvalidCachedPrediction(f"{name} is not a finite number")


def _number(value: Any, where: str, low: float | None = None, high: float | None = None) -> None:
    # bool is an int in Python, never a number in JSON's sense here.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidCachedPrediction(f"{where} is not a finite number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidCachedPrediction(f"{where}={value} is outside [{low}, {high}]")


def _text(value: Any, where: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidCachedPrediction(f"{where} is not a non-empty string")


def _equal(document: Mapping[str, Any], field: str, expected: object) -> None:
    if document.get(field) != expected or isinstance(document.get(field), bool):
        raise InvalidCachedPrediction(f"{field} is not {expected!r}, the request's")


def _forecast_day(row: Any, where: str, horizon: int) -> None:
    if not isinstance(row, dict):
        raise InvalidCachedPrediction(f"{where} is not an object")
    day = row.get("horizon")
    if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= horizon:
        raise InvalidCachedPrediction(f"{where}.horizon is not a whole number from 1 to {horizon}")
    _text(row.get("date"), f"{where}.date")
    _number(row.get("price"), f"{where}.price")
    if "interval" in row:
        interval = row["interval"]
        if not isinstance(interval, list) or len(interval) != 2:
            raise InvalidCachedPrediction(f"{where}.interval is not a pair of numbers")
        for bound in interval:
            _number(bound, f"{where}.interval")
    if "confidence" in row:
        _number(row["confidence"], f"{where}.confidence", 0, 1)
    if "naive" in row:
        _number(row["naive"], f"{where}.naive", low=0)


def check_prediction(document: Any, identity: CacheIdentity) -> dict[str, Any]:
    """`document` if it is a prediction for `identity` in the workers' shape; else raise."""
    if not isinstance(document, dict):
        raise InvalidCachedPrediction("not a JSON object")
    _equal(document, "symbol", identity.symbol)
    _equal(document, "horizon", identity.horizon)
    _equal(document, "model_version", identity.version)
    if "as_of" in document:
        _equal(document, "as_of", identity.as_of)
    _number(document.get("current_price"), "current_price", low=0)
    _number(document.get("predicted_price"), "predicted_price")
    _number(document.get("confidence"), "confidence", 0, 1)
    if document.get("trading_signal") not in SIGNALS:
        raise InvalidCachedPrediction("trading_signal is not BUY, SELL or HOLD")
    _text(document.get("prediction_time"), "prediction_time")
    if "forecaster" in document and document["forecaster"] not in FORECASTERS:
        raise InvalidCachedPrediction("forecaster is not lstm, naive or drift")
    for optional in ("data_source", "why"):
        if optional in document:
            _text(document[optional], optional)
    if "interval_level" in document:
        _number(document["interval_level"], "interval_level", 0, 1)
    rows = document.get("predictions")
    if not isinstance(rows, list) or not 1 <= len(rows) <= identity.horizon:
        raise InvalidCachedPrediction(f"predictions is not a list of 1 to {identity.horizon} days")
    for index, row in enumerate(rows):
        _forecast_day(row, f"predictions[{index}]", identity.horizon)
    evaluation = document.get("evaluation")
    if evaluation is not None:
        if not isinstance(evaluation, dict):
            raise InvalidCachedPrediction("evaluation is neither an object nor null")
        for name, value in evaluation.items():
            _number(value, f"evaluation.{name}")
    return document


def parse_cached(text: str, identity: CacheIdentity) -> dict[str, Any]:
    """The cached JSON text as a checked prediction document; raise InvalidCachedPrediction."""
    if len(text) > MAX_TEXT:
        raise InvalidCachedPrediction(f"{len(text)} characters, more than {MAX_TEXT}")
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InvalidCachedPrediction(f"not JSON ({exc.msg} at {exc.pos})") from None
    except RecursionError:
        raise InvalidCachedPrediction("nested too deeply") from None
    return check_prediction(document, identity)
