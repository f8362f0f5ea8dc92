"""Predictions: the current model of a symbol, loaded once per process, on its latest bars.

Models are cached by (symbol, version); before every prediction the registry's `current`
pointer is read (one small file) and a changed version is loaded in place of the old one, so a
retrain, a rollback or a restore takes effect without restarting workers. Needs TensorFlow.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from stockpred.filememo import FileMemo
from stockpred.metrics import worker_metrics
from stockpred.ml.features import compute_features
from stockpred.ml.forecast import LoadedModel
from stockpred.ml.prediction_store import PredictionCache, append_prediction, cache_key
from stockpred.ml.registry import CURRENT_FILE, ModelRegistry

log = logging.getLogger(__name__)
prediction_log = logging.getLogger("stockpred.prediction")


class NoModel(LookupError):
    """The symbol has no published model."""


class HorizonUnsupported(ValueError):
    """The requested horizon exceeds what the model forecasts."""


def trading_signal(current: float, predicted: float, buy: float, sell: float) -> str:
    """BUY when predicted/current ≥ buy, SELL when ≤ sell, else HOLD (the original's rule)."""
    ratio = predicted / current
    if ratio >= buy:
        return "BUY"
    if ratio <= sell:
        return "SELL"
    return "HOLD"


def utc_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class ModelCache:
    """This process's loaded models, one version per symbol."""

    def __init__(
        self, registry: ModelRegistry, on_load: Callable[[LoadedModel], None] | None = None
    ) -> None:
        self.registry = registry
        self.on_load = on_load
        self._models: dict[str, LoadedModel] = {}
        self._pointers = FileMemo()
        self._lock = threading.Lock()

    def get(self, symbol: str) -> LoadedModel:
        """The current version's model, loading it if the pointer moved since last time."""
        pointer = self.registry.models_dir / symbol / CURRENT_FILE
        version = self._pointers.read(
            pointer, lambda p: p.read_text(encoding="utf-8").strip() or None
        )
        if version is None:
            raise NoModel(
                f"no model for {symbol}; train one with POST /api/v1/train/{symbol} "
                f"or `make train SYMBOL={symbol}`"
            )
        with self._lock:
            loaded = self._models.get(symbol)
            if loaded is None or loaded.version != version:
                loaded = LoadedModel.load(self.registry.info(symbol, version))
                self._models[symbol] = loaded
                log.info("loaded %s model %s in %.3fs", symbol, version, loaded.load_seconds)
                metrics = worker_metrics()
                metrics.model_load.observe(loaded.load_seconds)
                metrics.models_loaded.set(len(self._models))
                if self.on_load is not None:
                    self.on_load(loaded)
            return loaded

    def loaded(self) -> dict[str, str]:
        """symbol → version of what this process holds."""
        return {symbol: m.version for symbol, m in self._models.items()}


class InferenceService:
    """Answers predictions, caching them in Redis and appending them to the daily log."""

    def __init__(
        self,
        *,
        models: ModelCache,
        refresh: Callable[[str], Any],
        history: Callable[[str], pd.DataFrame | None],
        cache: PredictionCache,
        predictions_dir: Any,
        buy_threshold: float,
        sell_threshold: float,
    ) -> None:
        self.models = models
        self.refresh = refresh
        self.history = history
        self._features: dict[str, tuple[str, pd.DataFrame]] = {}
        self._prepared: dict[str, _Prepared] = {}
        self.cache = cache
        self.predictions_dir = predictions_dir
        self.buy = buy_threshold
        self.sell = sell_threshold

    def predict(self, symbol: str, horizon: int = 1) -> dict[str, Any]:
        """A cached or freshly computed prediction of `symbol`, `horizon` trading days ahead."""
        loaded = self.models.get(symbol)
        if not 1 <= horizon <= loaded.horizon:
            raise HorizonUnsupported(
                f"model {loaded.version} of {symbol} forecasts 1 to {loaded.horizon} days ahead"
            )
        data = self.refresh(symbol)  # refetches only when stale; returns as_of and source
        key = cache_key(symbol, horizon, loaded.version, data.as_of)
        cached = self.cache.get(key)
        if cached is not None:
            return {**cached, "cached": True}
        result = self._compute(
            loaded, self._prepare(symbol, loaded, data.as_of), data.source, horizon
        )
        self.cache.put(key, result)
        append_prediction(self.predictions_dir, result)
        prediction_log.info(
            "%s h=%d %s current=%.4f predicted=%.4f signal=%s confidence=%.3f",
            symbol,
            horizon,
            loaded.version,
            result["current_price"],
            result["predicted_price"],
            result["trading_signal"],
            result["confidence"],
        )
        return {**result, "cached": False}

    def features(self, symbol: str, as_of: str) -> pd.DataFrame:
        """Features of the symbol's history, computed once per new last bar in this process."""
        held = self._features.get(symbol)
        if held is not None and held[0] == as_of:
            return held[1]
        frame = self.history(symbol)
        if frame is None:
            raise NoModel(f"no price history for {symbol}")
        features = compute_features(frame)
        self._features[symbol] = (as_of, features)
        return features

    def _prepare(self, symbol: str, loaded: LoadedModel, as_of: str) -> _Prepared:
        """The model input for the latest window: built once per (version, last bar)."""
        held = self._prepared.get(symbol)
        if held is not None and (held.version, held.as_of) == (loaded.version, as_of):
            return held
        features = self.features(symbol, as_of)
        anchor = np.array([len(features) - 1])
        last_day = features.index[-1]
        dates = pd.bdate_range(last_day + timedelta(days=1), periods=loaded.horizon)
        prepared = _Prepared(
            version=loaded.version,
            as_of=as_of,
            x=loaded.prepare(features, anchor),
            anchor_close=features["close"].to_numpy(dtype="float64")[anchor],
            dates=[d.strftime("%Y-%m-%d") for d in dates],
            last_day=last_day.strftime("%Y-%m-%d"),
        )
        self._prepared[symbol] = prepared
        return prepared

    def _compute(
        self, loaded: LoadedModel, prepared: _Prepared, source: str, horizon: int
    ) -> dict[str, Any]:
        log_returns = loaded.predict_prepared(prepared.x, prepared.anchor_close)[0]
        current = float(prepared.anchor_close[0])
        evaluation = loaded.evaluation
        rows = []
        for h in range(1, horizon + 1):
            price = current * math.exp(float(log_returns[h - 1]))
            row: dict[str, Any] = {
                "horizon": h,
                "date": prepared.dates[h - 1],
                "price": round(price, 4),
            }
            if evaluation is not None and h <= len(evaluation.interval_by_horizon):
                low, high = evaluation.interval_by_horizon[h - 1]
                row["interval"] = [
                    round(price * math.exp(low), 4),
                    round(price * math.exp(high), 4),
                ]
                row["confidence"] = round(evaluation.confidence_by_horizon[h - 1], 4)
            rows.append(row)
        chosen = rows[-1]
        return {
            "symbol": loaded.symbol,
            "current_price": round(current, 4),
            "predicted_price": chosen["price"],
            "trading_signal": trading_signal(current, chosen["price"], self.buy, self.sell),
            "confidence": chosen.get("confidence", 0.0),
            "prediction_time": utc_rfc3339(),
            "model_version": loaded.version,
            "horizon": horizon,
            "as_of": prepared.last_day,
            "data_source": source,
            "predictions": rows,
            "evaluation": None if evaluation is None else evaluation.summary(),
            "interval_level": 0.8,
        }


@dataclass(frozen=True)
class _Prepared:
    """The latest window of a symbol, ready for the model, and what formatting needs."""

    version: str
    as_of: str
    x: np.ndarray
    anchor_close: np.ndarray
    dates: list[str]
    last_day: str
