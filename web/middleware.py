"""Cross-cutting request handling: request ids, api.log lines, bearer auth, CORS for reads."""

from __future__ import annotations

import hmac
import logging
import time
import uuid

from flask import Flask, Response, g, request

from stockpred.infra.logs import API_LOGGER
from web.errors import ApiError
from web.metrics import web_metrics
from web.services import services

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_METHODS = "GET, HEAD, OPTIONS"
access_log = logging.getLogger(API_LOGGER)


def request_id_for(incoming: str) -> str:
    """The client's X-Request-ID when it is sane, else a new one."""
    return incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex


def log_request(
    method: str,
    path: str,
    status: int,
    *,
    elapsed_ms: float,
    client: str,
    request_id: str,
    agent: str,
) -> None:
    """One api.log line per answered request."""
    access_log.info(
        '%s %s %s %.1fms client=%s request_id=%s agent="%s"',
        method,
        path,
        status,
        elapsed_ms,
        client,
        request_id,
        agent[:120],
    )


def _start_request() -> None:
    g.started = time.perf_counter()
    g.request_id = request_id_for(request.headers.get("X-Request-ID", ""))


def _require_token() -> None:
    """Mutating routes need `Authorization: Bearer <STOCKPRED_API_TOKEN>`."""
    if request.method not in MUTATING_METHODS:
        return
    expected = services().settings.api_token
    if not expected:
        raise ApiError(
            503,
            "mutating routes are disabled",
            "no STOCKPRED_API_TOKEN is configured; run `stockpred setup` to generate one",
        )
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        supplied.strip().encode(), expected.encode()
    ):
        raise ApiError(
            401,
            "authentication required",
            "send the header Authorization: Bearer <STOCKPRED_API_TOKEN>",
            {"WWW-Authenticate": 'Bearer realm="stockpred"'},
        )


def _finish_request(response: Response) -> Response:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        # Read-only answers may be read cross-origin; never with credentials.
        response.headers["Access-Control-Allow-Origin"] = "*"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = READ_METHODS
            response.headers["Access-Control-Allow-Headers"] = "Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
    response.headers["X-Request-ID"] = g.get("request_id", "")
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    method, status = request.method, response.status_code
    endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
    line = {
        "path": request.full_path.rstrip("?") if request.query_string else request.path,
        "elapsed_ms": elapsed * 1000,
        "client": request.remote_addr or "-",
        "request_id": g.get("request_id", "-"),
        "agent": request.user_agent.string or "-",
    }

    def record() -> None:
        """Metrics and the api.log line, once the server has sent the answer."""
        metrics = web_metrics()
        metrics.requests.labels(method, endpoint, str(status)).inc()
        metrics.duration.labels(method, endpoint, str(status)).observe(elapsed)
        if status >= 400:
            metrics.errors.labels(endpoint, str(status)).inc()
        log_request(
            method,
            line["path"],
            status,
            elapsed_ms=line["elapsed_ms"],
            client=line["client"],
            request_id=line["request_id"],
            agent=line["agent"],
        )

    response.call_on_close(record)
    return response


def install_middleware(app: Flask) -> None:
    """Register the request hooks in the order they must run."""
    app.before_request(_start_request)
    app.before_request(_require_token)
    app.after_request(_finish_request)
