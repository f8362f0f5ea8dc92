"""Predictions: the current model of a symbol, loaded once per process, on its latest bars.

Models are cached by (symbol, version), at most MODEL_CACHE_SIZE per process (the least recently
used dropped first); before every prediction the registry's `current` pointer is read (one small
file) and a changed version is loaded in place of the old one, so a retrain, a rollback or a
restore takes effect without restarting workers. Needs TensorFlow.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from cachetools import LRUCache

from stockpred.infra.background import BackgroundWriter
from stockpred.infra.clock import utcnow_iso
from stockpred.jobs.errors import ErrorKind
from stockpred.market.calendar import trading_days_after
from stockpred.ml.baselines import baseline_log_returns
from stockpred.ml.features import compute_features
from stockpred.ml.forecast import LoadedModel
from stockpred.ml.intervals import ewma_volatility
from stockpred.ml.prediction_store import PredictionCache, PredictionJournal, cache_key
from stockpred.ml.registry import CurrentVersions, ModelRegistry, VersionInfo
from stockpred.telemetry.worker_metrics import worker_metrics

log = logging.getLogger(__name__)
prediction_log = logging.getLogger("stockpred.prediction")


class NoModel(LookupError):
    """The symbol has no published model."""

    kind = ErrorKind.NO_MODEL


class HorizonUnsupported(ValueError):
    """The requested horizon exceeds what the model forecasts."""

    kind = ErrorKind.HORIZON_UNSUPPORTED


def trading_signal(current: float, predicted: float, buy: float, sell: float) -> str:
    """BUY when predicted/current ≥ buy, SELL when ≤ sell, else HOLD (the original's rule)."""
    ratio = predicted / current
    if ratio >= buy:
        return "BUY"
    if ratio <= sell:
        return "SELL"
    return "HOLD"


def utc_rfc3339() -> str:
    return utcnow_iso("seconds")


class _LeastRecentlyUsed(LRUCache[str, LoadedModel]):
    """cachetools' LRU mapping, telling `on_evict` of each model it drops to make room."""

    def __init__(self, maxsize: int, on_evict: Callable[[str, LoadedModel], None]) -> None:
        super().__init__(maxsize)
        self._on_evict = on_evict

    def popitem(self) -> tuple[str, LoadedModel]:
        """Drop the least recently used model (cachetools calls this when full)."""
        symbol, loaded = super().popitem()
        self._on_evict(symbol, loaded)
        return symbol, loaded


class ModelCache:
    """This process's loaded models: one version per symbol, at most `max_models` of them.

    Past the bound the least recently used symbol's model is dropped; asked for again, it is
    loaded again. cachetools' `LRUCache` is not thread-safe: every access holds `_lock`, which
    is re-entrant because `on_load` (called under it) may ask for `loaded()`.

    A Keras model is a web of reference cycles, so a dropped one is freed only by a full
    garbage collection, which Python may not run for dozens of loads in a process holding
    TensorFlow's objects (README, "Model cache"). So after every `max_models // 4` (at least 1)
    dropped models the cache collects itself: the models in memory stay within 1.25 times the
    bound, at the price of one full collection, under the lock, per that many loads.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        on_load: Callable[[LoadedModel], None] | None = None,
        *,
        max_models: int,
        load: Callable[[VersionInfo], LoadedModel] = LoadedModel.load,
        collect: Callable[[], int] = gc.collect,
    ) -> None:
        if max_models < 1:
            raise ValueError(f"a model cache holds at least one model, not {max_models}")
        self.registry = registry
        self.on_load = on_load
        self.max_models = max_models
        self._load = load
        self._gc_collect = collect
        self._models = _LeastRecentlyUsed(max_models, self._evicted)
        self._versions = CurrentVersions(registry.models_dir)
        self._lock = threading.RLock()
        self._collect_every = max(1, max_models // 4)
        self._dropped = 0  # models dropped (evicted or replaced) since the last collection
        worker_metrics().model_cache_capacity.set(max_models)

    def get(self, symbol: str) -> LoadedModel:
        """The current version's model, loading it if the pointer moved since last time."""
        version = self._versions.get(symbol)
        if version is None:
            raise NoModel(
                f"no model for {symbol}; train one with POST /api/v1/train/{symbol} "
                f"or `make train SYMBOL={symbol}`"
            )
        with self._lock:
            loaded = self._models.get(symbol)  # a hit makes it the most recently used
            if loaded is not None and loaded.version == version:
                return loaded
            reason = "absent" if loaded is None else "version_changed"
            loaded = self._load(self.registry.info(symbol, version))
            # Replacing a symbol's old version evicts nothing; a new symbol in a full cache
            # evicts the least recently used one (after the load, so a failed load drops none).
            self._models[symbol] = loaded
            if reason == "version_changed":
                self._dropped += 1
            if self._dropped >= self._collect_every:
                self._collect()
            log.info("loaded %s model %s in %.3fs", symbol, version, loaded.load_seconds)
            metrics = worker_metrics()
            metrics.model_load.observe(loaded.load_seconds)
            metrics.model_loads.labels(reason).inc()
            metrics.models_loaded.set(len(self._models))
            if self.on_load is not None:
                self.on_load(loaded)
            return loaded

    def _collect(self) -> None:
        """Free the dropped models (unreferenced only now that cachetools let go of them)."""
        started = time.perf_counter()
        unreachable = self._gc_collect()
        log.info(
            "collected %d dropped models (%d objects) in %.3fs",
            self._dropped,
            unreachable,
            time.perf_counter() - started,
        )
        self._dropped = 0

    def _evicted(self, symbol: str, loaded: LoadedModel) -> None:
        """Count and log a model dropped to make room (called under `_lock`)."""
        self._dropped += 1
        worker_metrics().model_evictions.inc()
        log.info(
            "evicted %s model %s: the least recently used of %d",
            symbol,
            loaded.version,
            self.max_models,
        )

    def loaded(self) -> dict[str, str]:
        """symbol → version of what this process holds."""
        with self._lock:
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
        journal: PredictionJournal,
        writer: BackgroundWriter,
        buy_threshold: float,
        sell_threshold: float,
    ) -> None:
        self.models = models
        self.refresh = refresh
        self.history = history
        # Per-symbol state is bounded like the models it serves (inference threads share it).
        self._features: LRUCache[str, tuple[str, pd.DataFrame]] = LRUCache(models.max_models)
        self._prepared: LRUCache[str, _Prepared] = LRUCache(models.max_models)
        self._state_lock = threading.Lock()
        self.cache = cache
        self.journal = journal
        self.writer = writer
        self.buy = buy_threshold
        self.sell = sell_threshold

    def predict(self, symbol: str, horizon: int = 1) -> dict[str, Any]:
        """A fresh prediction of `symbol`, `horizon` trading days ahead, cached and journaled.

        The result is sent to the Redis cache before this returns; its journal and log lines are
        written by the background writer (`flush` waits for them).

        The cache is read by the web process before it queues this work (`web.prediction_lookup`),
        so a task computes without looking again: a second look would cost every uncached request
        a Redis round trip to catch only a rare race, whose price is one recomputation.
        """
        loaded = self.models.get(symbol)
        if not 1 <= horizon <= loaded.horizon:
            raise HorizonUnsupported(
                f"model {loaded.version} of {symbol} forecasts 1 to {loaded.horizon} days ahead"
            )
        data = self.refresh(symbol)  # refetches only when stale; returns as_of and source
        result = self._compute(
            loaded, self._prepare(symbol, loaded, data.as_of), data.source, horizon
        )
        encoded = json.dumps(result, separators=(",", ":"))
        # Sent before the task reports back; the worker's job update confirms it first, so a
        # request that follows the answer finds it.
        self.cache.put(cache_key(symbol, horizon, loaded.version, data.as_of), encoded)
        self.writer.submit(functools.partial(self._record, encoded, result))
        return {**result, "cached": False}

    def _record(self, encoded: str, result: dict[str, Any]) -> None:
        """The journal line and the prediction.log line (on the background writer)."""
        self.journal.append(encoded)
        prediction_log.info(
            "%s h=%d %s current=%.4f predicted=%.4f signal=%s confidence=%.3f",
            result["symbol"],
            result["horizon"],
            result["model_version"],
            result["current_price"],
            result["predicted_price"],
            result["trading_signal"],
            result["confidence"],
        )

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait for the journal and log lines of the predictions made so far."""
        self.cache.flush()
        return self.writer.flush(timeout)

    def features(self, symbol: str, as_of: str) -> pd.DataFrame:
        """Features of the symbol's history, computed once per new last bar in this process."""
        with self._state_lock:
            held = self._features.get(symbol)
        if held is not None and held[0] == as_of:
            return held[1]
        frame = self.history(symbol)
        if frame is None:
            raise NoModel(f"no price history for {symbol}")
        features = compute_features(frame)
        with self._state_lock:
            self._features[symbol] = (as_of, features)
        return features

    def _prepare(self, symbol: str, loaded: LoadedModel, as_of: str) -> _Prepared:
        """The model input for the latest window: built once per (version, last bar)."""
        with self._state_lock:
            held = self._prepared.get(symbol)
        if held is not None and (held.version, held.as_of) == (loaded.version, as_of):
            return held
        features = self.features(symbol, as_of)
        anchor = np.array([len(features) - 1])
        last_day = features.index[-1]
        dates = trading_days_after(last_day.date(), loaded.horizon)
        close = features["close"].to_numpy(dtype="float64")
        drift = baseline_log_returns("drift", close, anchor, loaded.horizon)[0]
        prepared = _Prepared(
            version=loaded.version,
            as_of=as_of,
            x=loaded.model_input(loaded.prepare(features, anchor)),
            anchor_close=float(features["close"].to_numpy(dtype="float64")[anchor][0]),
            dates=[d.isoformat() for d in dates],
            last_day=last_day.strftime("%Y-%m-%d"),
            drift=[float(v) for v in drift],
            sigma=float(ewma_volatility(features["log_return"].to_numpy(dtype="float64"))[-1]),
        )
        with self._state_lock:
            self._prepared[symbol] = prepared
        return prepared

    def _compute(
        self, loaded: LoadedModel, prepared: _Prepared, source: str, horizon: int
    ) -> dict[str, Any]:
        current = prepared.anchor_close
        forecaster, why = loaded.champion
        if forecaster == "lstm":
            log_returns = loaded.window_log_returns(prepared.x, current, horizon)
        elif forecaster == "drift":
            log_returns = prepared.drift[:horizon]
        else:
            log_returns = [0.0] * horizon
        evaluation = loaded.evaluation
        intervals = loaded.intervals
        confidence = loaded.confidence_by_horizon
        rows = []
        for h in range(1, horizon + 1):
            price = current * math.exp(log_returns[h - 1])
            row: dict[str, Any] = {
                "horizon": h,
                "date": prepared.dates[h - 1],
                "price": round(price, 4),
                "naive": round(current, 4),
            }
            if intervals is not None and h <= len(intervals.quantiles):
                low, high = intervals.price_band(current, log_returns[h - 1], prepared.sigma, h)
                row["interval"] = [round(low, 4), round(high, 4)]
            elif evaluation is not None and h <= len(evaluation.interval_by_horizon):
                low, high = evaluation.interval_by_horizon[h - 1]
                row["interval"] = [
                    round(price * math.exp(low), 4),
                    round(price * math.exp(high), 4),
                ]
            if confidence is not None and h <= len(confidence):
                row["confidence"] = round(confidence[h - 1], 4)
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
            "forecaster": forecaster,
            "why": why,
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
    x: Any  # the model's input tensor
    anchor_close: float
    dates: list[str]
    last_day: str
    drift: list[float]  # the drift baseline's cumulative log returns 1..horizon
    sigma: float  # EWMA volatility of daily log returns at the last bar
