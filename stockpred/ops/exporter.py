"""`stockpred exporter`: one /metrics for the workers and for the facts Flower does not have.

Aggregates the Celery pool children's multi-process metric files (task counts, runtimes,
retries, training epochs and durations, model load times, models loaded per process, market-data
fetches) and adds, read at scrape time: queue depth and the age of the oldest waiting task per
queue, data freshness per symbol, model age, skill and hold-out MAPE per symbol, the storage
gauges (usage per folder, free disk, backup age and count, last cleanup), and each symbol's
realised forecast quality from the ledger (MASE against naive, interval coverage, n) over the
last REALISED_WINDOW_DAYS of one-day forecasts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from stockpred.infra.clock import utcnow
from stockpred.ledger.database import engine_from_settings
from stockpred.ledger.store import ForecastLedger
from stockpred.market.daily_cache import DailyCache
from stockpred.ml.registry import ModelRegistry, RegistryError
from stockpred.paths import DataTree
from stockpred.settings import Settings
from stockpred.storage.catalog import list_backups, newest_age
from stockpred.storage.monitor import latest_report, storage_families
from stockpred.telemetry.queue_facts import oldest_waiting_ages, queue_depth_family, queue_depths
from stockpred.telemetry.scrape_failures import scrape_failed, scrape_failures

log = logging.getLogger(__name__)
# About 60 sessions: enough for the coverage alert's n >= 30, recent enough to see a regime.
REALISED_WINDOW_DAYS = 90


class FactsCollector(Collector):
    """Gauges computed from Redis and persistent_data at each scrape."""

    def __init__(self, settings: Settings, redis_client: Any) -> None:
        self.tree = DataTree.from_settings(settings)
        self.redis = redis_client
        self.settings = settings
        self._ledger: ForecastLedger | None = None

    def collect(self) -> Iterator[Metric]:
        for section in (self._queues, self._data, self._models, self._storage, self._ledger_facts):
            try:
                families = list(section())
            except Exception as exc:
                # A file edited into another shape costs its own section, not the whole scrape.
                scrape_failed(section.__name__.lstrip("_"), exc)
                continue
            yield from families

    def _queues(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("stockpred_redis_up", "1 when Redis answered this scrape")
        try:
            depths = queue_depths(self.redis)
            ages = oldest_waiting_ages(self.redis)
        except Exception as exc:
            scrape_failed("queues", exc)
            up.add_metric([], 0)
            yield up
            return
        age = GaugeMetricFamily(
            "stockpred_queue_oldest_age_seconds",
            "How long the oldest waiting task has waited",
            labels=["queue"],
        )
        for queue, seconds in ages.items():
            age.add_metric([queue], seconds)
        up.add_metric([], 1)
        yield from (queue_depth_family(depths), age, up)

    def _data(self) -> Iterator[Metric]:
        cache = DailyCache(self.tree.daily_cache)
        fetched = GaugeMetricFamily(
            "stockpred_data_fetched_timestamp_seconds",
            "When a symbol's prices were last fetched",
            labels=["symbol"],
        )
        last_bar = GaugeMetricFamily(
            "stockpred_data_last_bar_timestamp_seconds",
            "Date of a symbol's last daily bar",
            labels=["symbol", "source"],
        )
        for symbol in cache.symbols():
            meta = cache.meta(symbol)
            if meta is None:
                continue
            try:
                bar = datetime.fromisoformat(meta.as_of).replace(tzinfo=UTC).timestamp()
            except (TypeError, ValueError):
                log.warning("%s: the daily cache's as_of %r is not a date", symbol, meta.as_of)
                continue
            fetched.add_metric([symbol], meta.fetched_at.timestamp())
            last_bar.add_metric([symbol, meta.source], bar)
        yield from (fetched, last_bar)

    def _models(self) -> Iterator[Metric]:
        registry = ModelRegistry(self.tree.ml_models, self.tree.scalers)
        age = GaugeMetricFamily(
            "stockpred_model_age_seconds", "Age of the current model", labels=["symbol"]
        )
        skill = GaugeMetricFamily(
            "stockpred_model_skill",
            "1 - RMSE_model / RMSE_naive on the hold-out",
            labels=["symbol"],
        )
        mape = GaugeMetricFamily(
            "stockpred_model_holdout_mape_percent",
            "Hold-out MAPE of the current model",
            labels=["symbol"],
        )
        now = time.time()
        for symbol in registry.symbols():
            try:
                info = registry.current(symbol)
            except RegistryError:
                continue
            if info is None:
                continue
            try:
                trained = info.metadata.get("trained_at")
                if trained:
                    trained_at = datetime.fromisoformat(str(trained)).timestamp()
                    age.add_metric([symbol], now - trained_at)
                summary = (info.metadata.get("evaluation") or {}).get("summary") or {}
                if summary.get("skill") is not None:
                    skill.add_metric([symbol], float(summary["skill"]))
                if summary.get("mape") is not None:
                    mape.add_metric([symbol], float(summary["mape"]))
            except (AttributeError, TypeError, ValueError) as exc:
                log.warning("%s %s: metadata of another shape (%s)", symbol, info.version, exc)
        yield from (age, skill, mape)

    def _storage(self) -> Iterator[Metric]:
        backups = list_backups(self.tree.backups)
        count = GaugeMetricFamily("stockpred_backup_count", "Backups kept")
        count.add_metric([], len(backups))
        age = GaugeMetricFamily(
            "stockpred_backup_age_seconds", "Age of the newest backup (-1: none)"
        )
        newest = newest_age(backups)
        age.add_metric([], -1 if newest is None else newest.total_seconds())
        yield from (count, age)
        report = latest_report(self.tree)
        if report is not None:
            try:
                families = list(
                    storage_families(
                        report, skip={"stockpred_backup_count", "stockpred_backup_age_seconds"}
                    )
                )
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                log.warning("the storage report has another shape (%s); its gauges skipped", exc)
                return
            yield from families

    def _ledger_facts(self) -> Iterator[Metric]:
        if self._ledger is None:  # connects on first scrape, in the exporter's process
            self._ledger = ForecastLedger(engine_from_settings(self.settings))
        since = utcnow().date() - timedelta(days=REALISED_WINDOW_DAYS)
        figures = self._ledger.realised_by_symbol(since=since, horizon=1)
        labels = ["symbol"]
        mase = GaugeMetricFamily(
            "stockpred_forecast_realised_mase",
            "Realised MAE over the naive forecast's MAE, one-day forecasts, recent window",
            labels=labels,
        )
        coverage = GaugeMetricFamily(
            "stockpred_forecast_realised_coverage",
            "Share of realised closes inside the forecast interval, recent window",
            labels=labels,
        )
        level = GaugeMetricFamily(
            "stockpred_forecast_interval_level",
            "Nominal coverage of those intervals",
            labels=labels,
        )
        scored = GaugeMetricFamily(
            "stockpred_forecast_scored",
            "Scored one-day forecasts in the recent window",
            labels=labels,
        )
        with_interval = GaugeMetricFamily(
            "stockpred_forecast_coverage_scored",
            "Scored one-day forecasts with an interval in the recent window",
            labels=labels,
        )
        for row in figures:
            scored.add_metric([row.symbol], row.n)
            with_interval.add_metric([row.symbol], row.coverage_n)
            if row.mase is not None:
                mase.add_metric([row.symbol], row.mase)
            if row.coverage is not None:
                coverage.add_metric([row.symbol], row.coverage)
            if row.level is not None:
                level.add_metric([row.symbol], row.level)
        yield from (mase, coverage, level, scored, with_interval)


def exporter_registry(
    settings: Settings, redis_client: Any, multiproc_dir: Path
) -> CollectorRegistry:
    """The registry /metrics serves: worker metric files plus the facts."""
    registry = CollectorRegistry()
    multiproc_dir.mkdir(parents=True, exist_ok=True)
    MultiProcessCollector(registry, path=str(multiproc_dir))  # type: ignore[no-untyped-call]
    registry.register(FactsCollector(settings, redis_client))
    registry.register(scrape_failures())  # this process's own count (it writes no metric files)
    return registry
