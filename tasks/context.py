"""The concrete parts tasks use, built once per worker process after fork (never at import)."""

from __future__ import annotations

import functools
import json
import os
import socket
from collections.abc import Callable
from typing import Any, TypeVar, cast

import pandas as pd

from stockpred.infra.deferred_writes import DeferredWrites
from stockpred.infra.redis_client import process_client
from stockpred.jobs.locks import pointer_lock
from stockpred.jobs.records import JobStore
from stockpred.ledger.database import engine_from_settings
from stockpred.ledger.store import ForecastLedger
from stockpred.market.factory import build_market_data
from stockpred.market.service import MarketData
from stockpred.ml.config import MLConfig, load_ml_config
from stockpred.ml.registry import ModelRegistry
from stockpred.paths import DataTree
from stockpred.settings import Settings, get_settings

T = TypeVar("T")
LOADED_KEY_PREFIX = "stockpred:loaded:"


@functools.cache
def _for_pid(pid: int) -> dict[str, Any]:
    return {}


def _memo(name: str, build: Callable[[], T]) -> T:
    """Build `name` once per process (a forked child builds its own)."""
    slot = _for_pid(os.getpid())
    if name not in slot:
        slot[name] = build()
    return cast(T, slot[name])


def built(name: str) -> Any:
    """What `_memo` built under `name` in this process, or None."""
    return _for_pid(os.getpid()).get(name)


def settings() -> Settings:
    return get_settings()


def deferred_writes() -> DeferredWrites:
    """This process's one connection for writes whose replies are read later.

    Shared by the prediction cache and the job store, so a job's final update, which reads
    the earlier replies first, lands only after its cached result is confirmed.
    """
    return _memo("deferred_writes", lambda: DeferredWrites(process_client(settings())))


def jobs() -> JobStore:
    """This process's job store; a task's start is sent without waiting for its reply."""
    return _memo(
        "jobs",
        lambda: JobStore(process_client(settings()), settings().job_ttl, deferred_writes()),
    )


def ledger() -> ForecastLedger:
    """This process's forecast ledger (its engine connects on first use)."""
    return _memo("ledger", lambda: ForecastLedger(engine_from_settings(settings())))


def market() -> MarketData:
    return _memo("market", lambda: build_market_data(settings(), process_client(settings())))


def registry() -> ModelRegistry:
    s = settings()
    return _memo(
        "registry",
        lambda: ModelRegistry(
            s.ml_model_path, s.scalers_path, pointer_lock(process_client(settings()))
        ),
    )


def ml_config() -> MLConfig:
    """ml_config.json, read at each call so an operator's edit applies to the next training."""
    return load_ml_config(data_tree().ml_config)


def bars_with_source(symbol: str) -> tuple[pd.DataFrame, str]:
    """A symbol's full history (refreshed first when stale) and the source that served it."""
    data = market()
    data.refresh(symbol)
    frame = data.history_frame(symbol)
    entry = data.cache.load(symbol)
    assert frame is not None
    return frame, entry.source if entry else "unknown"


def report_loaded(loaded: dict[str, str]) -> None:
    """Publish which models this process holds (read by /api/v1/stats)."""
    client = process_client(settings())
    key = f"{LOADED_KEY_PREFIX}{socket.gethostname()}:{os.getpid()}"
    client.set(key, json.dumps(loaded), ex=24 * 3600)


def data_tree() -> DataTree:
    return DataTree.from_settings(settings())
