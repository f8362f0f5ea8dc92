"""Prometheus metrics recorded by workers and domain code, created on first use.

Under Celery's prefork pool every child writes its values to files in PROMETHEUS_MULTIPROC_DIR
(set by `workers.app` before anything imports prometheus_client); the `stockpred exporter`
process aggregates them. Without that variable (tests, the CLI) they stay in-process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


@dataclass(frozen=True)
class WorkerMetrics:
    """Every worker-side metric."""

    tasks: Counter
    task_runtime: Histogram
    retries: Counter
    training_epochs: Counter
    training_duration: Histogram
    model_load: Histogram
    model_loads: Counter
    model_evictions: Counter
    models_loaded: Gauge
    model_cache_capacity: Gauge
    data_fetches: Counter
    data_errors: Counter
    data_latency: Histogram
    ledger_writes: Counter


@functools.cache
def worker_metrics() -> WorkerMetrics:
    """The metrics, registered once per process."""
    return WorkerMetrics(
        tasks=Counter(
            "stockpred_tasks_total", "Tasks finished, by name and final state", ["task", "state"]
        ),
        task_runtime=Histogram(
            "stockpred_task_runtime_seconds", "Task run time", ["task"], buckets=SECONDS
        ),
        retries=Counter("stockpred_task_retries_total", "Task retries", ["task"]),
        training_epochs=Counter(
            "stockpred_training_epochs_total", "Training epochs completed", ["symbol"]
        ),
        training_duration=Histogram(
            "stockpred_training_duration_seconds",
            "Duration of training runs",
            ["symbol"],
            buckets=SECONDS,
        ),
        model_load=Histogram(
            "stockpred_model_load_seconds", "Time to load a model version", buckets=SECONDS
        ),
        model_loads=Counter(
            "stockpred_model_loads_total",
            "Model versions loaded by a worker process, by reason: absent (never held, or "
            "evicted since) or version_changed (the current pointer moved)",
            ["reason"],
        ),
        model_evictions=Counter(
            "stockpred_model_evictions_total",
            "Models dropped from a worker process's full model cache, least recently used first",
        ),
        models_loaded=Gauge(
            "stockpred_models_loaded",
            "Models held by a worker process",
            multiprocess_mode="liveall",
        ),
        model_cache_capacity=Gauge(
            "stockpred_model_cache_capacity",
            "Models a worker process may hold (MODEL_CACHE_SIZE)",
            multiprocess_mode="liveall",
        ),
        data_fetches=Counter(
            "stock_data_fetches_total", "Market-data fetches by source", ["source"]
        ),
        data_errors=Counter(
            "stock_data_errors_total", "Failed market-data fetches by kind", ["kind"]
        ),
        data_latency=Histogram(
            "stock_data_latency_seconds", "Market-data fetch time", ["source"], buckets=SECONDS
        ),
        ledger_writes=Counter(
            "stockpred_ledger_forecasts_total",
            "Forecasts handed to the ledger by outcome: recorded, failed, deferred, lost, refused",
            ["outcome"],
        ),
    )
