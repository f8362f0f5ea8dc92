"""Prometheus metrics of the web process: the original's metric names, and `GET /metrics`.

Under gunicorn (PROMETHEUS_MULTIPROC_DIR set by docker/gunicorn.conf.py) every worker writes its
values to files and /metrics aggregates all of them; otherwise the process's own values are
served. Either way /metrics also serves the facts read from Redis at scrape time (cache hits,
misses and size, queue depth: `stockpred.telemetry.redis_facts`), the figures /api/v1/stats
shows. Request and prediction metrics are recorded by one function each, whichever of the
Flask route or the WSGI fast path answered.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flask import Flask, Response, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from stockpred.ml.prediction_store import KEY_PREFIX
from stockpred.telemetry.redis_facts import RedisFactsCollector
from web.prediction_lookup import COUNTER_NAME
from web.services import Services

LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
MARKET_COUNTER = "market_cache"  # web.api.historical's hit counter
# Label values come from the request: any other method token is counted as OTHER (bounded).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"
CACHE_COUNTERS = (COUNTER_NAME, MARKET_COUNTER)


@dataclass(frozen=True)
class WebMetrics:
    """The web process's own metrics (the original service's names)."""

    requests: Counter
    duration: Histogram
    errors: Counter
    predictions: Counter
    prediction_latency: Histogram
    prediction_errors: Counter
    refused: Counter
    limiter_errors: Counter
    invalid_cached: Counter


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
        refused=Counter(
            "api_admission_refused_total",
            "Requests refused by admission control: a rate limit class, or queue_full_<queue>",
            ["reason"],
        ),
        limiter_errors=Counter(
            "api_rate_limiter_errors_total",
            "Requests admitted unchecked because Redis did not answer the rate limiter",
        ),
        invalid_cached=Counter(
            "prediction_cache_invalid_total",
            "Cached predictions refused as not what a worker writes (deleted, then recomputed)",
        ),
    )


@functools.lru_cache(maxsize=1024)
def _request_series(method: str, endpoint: str, status: int) -> tuple[Counter, Histogram]:
    """The labelled series of one (method, endpoint, status); endpoints are URL rules: bounded."""
    metrics = web_metrics()
    return (
        metrics.requests.labels(method, endpoint, str(status)),
        metrics.duration.labels(method, endpoint, str(status)),
    )


@functools.lru_cache(maxsize=2)
def _prediction_series(cached: bool) -> tuple[Counter, Histogram]:
    metrics = web_metrics()
    label = "true" if cached else "false"
    return metrics.predictions.labels(label), metrics.prediction_latency.labels(label)


def method_label(method: str) -> str:
    """The request's method as a label value: one of KNOWN_METHODS, else OTHER."""
    return method if method in KNOWN_METHODS else OTHER_METHOD


def record_request_metrics(method: str, endpoint: str, status: int, elapsed: float) -> None:
    """Count one answered request and its duration (`endpoint` is the URL rule or unmatched)."""
    requests, duration = _request_series(method_label(method), endpoint, status)
    requests.inc()
    duration.observe(elapsed)
    if status >= 400:
        web_metrics().errors.labels(endpoint, str(status)).inc()


def record_prediction(*, cached: bool, elapsed: float) -> None:
    """Count one prediction answered with 200 and the time it took."""
    predictions, latency = _prediction_series(cached)
    predictions.inc()
    latency.observe(elapsed)


class _DefaultRegistry(Collector):
    """The default registry's metrics, for single-process serving from a per-app registry."""

    def collect(self) -> Iterator[Metric]:
        return iter(REGISTRY.collect())


def metrics_registry(services: Services) -> CollectorRegistry:
    """What /metrics serves: this process's (or every gunicorn worker's) metrics and the facts."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_DefaultRegistry())
    facts = RedisFactsCollector(
        lambda: services.probe_redis, counters=CACHE_COUNTERS, key_prefix=KEY_PREFIX
    )
    registry.register(facts)
    return registry


def _metrics_view(registry: CollectorRegistry) -> Callable[[], Response]:
    def metrics() -> Response:
        """Prometheus metrics of the web processes."""
        names = request.args.getlist("name[]")
        chosen = registry.restricted_registry(names) if names else registry
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(encode(chosen), content_type=content_type)

    return metrics


def install_metrics(app: Flask, services: Services) -> None:
    """Create the web metrics and serve them on `GET /metrics`."""
    web_metrics()
    app.add_url_rule("/metrics", view_func=_metrics_view(metrics_registry(services)))
