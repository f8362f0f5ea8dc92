"""Cache hits of `GET /api/v1/predict/<symbol>` answered below Flask, as the route would answer.

The hot read of the service: one stat of the model pointer, one of the cache sidecar, one Redis
round trip. Routing, request context and response objects cost more than that, so exact hits
are answered here with the same body, headers, api.log line and metrics as the Flask route.
Everything else (misses, `async`, bad input, other routes) goes on to Flask untouched; a miss
carries a flag so the route does not look the key up (or count the lookup) twice. As in the
route, the api.log line and request metrics are written once the server has sent the answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from stockpred.market.symbols import InvalidSymbol, normalize_symbol
from web.api.predictions import MAX_DAYS, MAX_HORIZON, PREDICT_RULE, PREFIX
from web.metrics import web_metrics
from web.middleware import log_request, request_id_for
from web.prediction_lookup import LOOKED_UP_ENVIRON_KEY, PredictionLookup, answer_from_cache

log = logging.getLogger(__name__)
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _horizon(query: str) -> int | None:
    """The horizon of a query the fast path may answer (only horizon/days); None otherwise.

    Anything unusual (non-ASCII digits such as '²', a repeated name) goes on to the route,
    which answers it as it answers every request.
    """
    if not query:
        return 1
    horizon = 1
    seen: set[str] = set()
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in seen or not (value.isascii() and value.isdigit()):
            return None
        seen.add(name)
        number = int(value)
        if name == "horizon" and 1 <= number <= MAX_HORIZON:
            horizon = number
        elif not (name == "days" and 1 <= number <= MAX_DAYS):
            return None
    return horizon


class CachedPredictionFastPath:
    """WSGI middleware in front of the Flask app for cached predictions."""

    def __init__(self, inner: WsgiApp, lookup: Callable[[], PredictionLookup]) -> None:
        self.inner = inner
        self._lookup = lookup
        metrics = web_metrics()
        self._requests = metrics.requests.labels("GET", PREDICT_RULE, "200")
        self._duration = metrics.duration.labels("GET", PREDICT_RULE, "200")
        self._predictions = metrics.predictions.labels("true")
        self._latency = metrics.prediction_latency.labels("true")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "GET" or not path.startswith(PREFIX):
            return self.inner(environ, start_response)
        started = time.perf_counter()
        query = environ.get("QUERY_STRING", "")
        horizon = _horizon(query)
        if horizon is None:
            return self.inner(environ, start_response)
        try:
            body = self._cached_body(environ, path[len(PREFIX) :], horizon)
        except InvalidSymbol:
            body = None
        except Exception:
            # Redis trouble: the route answers it properly (503 with a reason).
            log.debug("fast path lookup failed; the route answers", exc_info=True)
            body = None
        if body is None:
            return self.inner(environ, start_response)
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("X-Cache", "hit"),
                ("Access-Control-Allow-Origin", "*"),
                ("X-Request-ID", request_id),
            ],
        )
        elapsed = time.perf_counter() - started
        self._predictions.inc()
        self._latency.observe(elapsed)

        def record() -> None:
            """Request metrics and the api.log line, once the server has sent the answer."""
            self._requests.inc()
            self._duration.observe(elapsed)
            log_request(
                "GET",
                f"{path}?{query}" if query else path,
                200,
                elapsed_ms=elapsed * 1000,
                client=environ.get("REMOTE_ADDR") or "-",
                request_id=request_id,
                agent=environ.get("HTTP_USER_AGENT") or "-",
            )

        return _ThenOnClose(body, record)

    def _cached_body(self, environ: dict[str, Any], raw_symbol: str, horizon: int) -> bytes | None:
        """The cached answer, or None (with the miss flagged when the key was looked up)."""
        symbol = normalize_symbol(raw_symbol)
        lookup = self._lookup()
        version = lookup.version(symbol)
        as_of = lookup.as_of(symbol) if version is not None else None
        if version is None or as_of is None:
            return None
        raw = lookup.read(symbol, horizon, version, as_of)
        if raw is None:
            environ[LOOKED_UP_ENVIRON_KEY] = True
            return None
        return answer_from_cache(raw)


class _ThenOnClose(list[bytes]):
    """A one-chunk WSGI body that runs `after` when the server closes it (after sending)."""

    def __init__(self, body: bytes, after: Callable[[], None]) -> None:
        super().__init__([body])
        self._after = after

    def close(self) -> None:
        self._after()
