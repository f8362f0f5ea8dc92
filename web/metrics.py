"""Prometheus metrics of the web process: /metrics, the original's metric names, cache figures.

Under gunicorn (PROMETHEUS_MULTIPROC_DIR set by docker/gunicorn.conf.py) every worker writes its
values to files and /metrics aggregates all of them (prometheus-flask-exporter's
GunicornInternalPrometheusMetrics); otherwise the process's own values are served. Cache hits,
misses and size, and queue depth, are read from Redis at scrape time: the same figures
/api/v1/stats shows, kept once.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass

from flask import Flask
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from stockpred.infra.counters import HitCounter
from stockpred.ml.prediction_store import KEY_PREFIX
from stockpred.telemetry.queue_facts import queue_depths
from web.services import Services

LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class WebMetrics:
    """The web process's own metrics (the original service's names)."""

    requests: Counter
    duration: Histogram
    errors: Counter
    predictions: Counter
    prediction_latency: Histogram
    prediction_errors: Counter


@functools.cache
def web_metrics() -> WebMetrics:
    """Created once per process in the default registry."""
    return WebMetrics(
        requests=Counter("api_requests_total", "HTTP requests", ["method", "endpoint", "status"]),
        duration=Histogram(
            "api_request_duration_seconds",
            "HTTP request duration",
            ["method", "endpoint", "status"],
            buckets=LATENCY,
        ),
        errors=Counter(
            "api_errors_total", "HTTP answers with a 4xx or 5xx status", ["endpoint", "status"]
        ),
        predictions=Counter("predictions_total", "Predictions answered", ["cached"]),
        prediction_latency=Histogram(
            "prediction_latency_seconds", "Time to answer a prediction", ["cached"], buckets=LATENCY
        ),
        prediction_errors=Counter("prediction_errors_total", "Predictions that failed", ["reason"]),
    )


class RedisFacts(Collector):
    """Cache and queue figures read from Redis when /metrics is scraped."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        hits = CounterMetricFamily("cache_hits", "Cache hits", labels=["cache"])
        misses = CounterMetricFamily("cache_misses", "Cache misses", labels=["cache"])
        size = GaugeMetricFamily("cache_size", "Cached predictions in Redis")
        depth = GaugeMetricFamily(
            "stockpred_web_queue_depth", "Tasks waiting per queue", labels=["queue"]
        )
        try:
            client = self.services.redis
            for cache in ("prediction_cache", "market_cache"):
                counts = HitCounter(client, cache).counts()
                hits.add_metric([cache], counts["hits"])
                misses.add_metric([cache], counts["misses"])
            size.add_metric(
                [], sum(1 for _ in client.scan_iter(match=f"{KEY_PREFIX}*", count=1000))
            )
            for queue, count in queue_depths(client).items():
                depth.add_metric([queue], count)
        except Exception:
            return
        yield from (hits, misses, size, depth)


class _DefaultRegistry(Collector):
    """The default registry's metrics, for single-process serving from a per-app registry."""

    def collect(self) -> Iterator[Metric]:
        return iter(REGISTRY.collect())


def install_metrics(app: Flask, services: Services) -> None:
    """Serve /metrics on the app (multi-process under gunicorn) and create the web metrics."""
    web_metrics()
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        exporter: PrometheusMetrics = GunicornInternalPrometheusMetrics(
            app, registry=registry, export_defaults=False
        )
    else:
        registry.register(_DefaultRegistry())
        exporter = PrometheusMetrics(app, registry=registry, export_defaults=False)
    exporter.registry.register(RedisFacts(services))
