"""JSON errors for every failure: `{error, status, timestamp, detail}`, never a traceback.

A 5xx answer to an anonymous request carries no internal detail (exception text, paths, URLs):
the detail is logged with the request id and the answer names that id. Details written for the
public (Redis away, a queue full, no token configured) are marked `public` and kept.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response, g, jsonify
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from stockpred.infra.clock import utcnow_iso
from stockpred.jobs.records import DamagedJobRecord
from stockpred.ml.registry import DamagedVersion
from web.auth import authenticated

log = logging.getLogger(__name__)
MODEL_UNREADABLE = "model unreadable"
WITHHELD = "the cause was logged with this request_id; retry later or ask the operator"


class ApiError(Exception):
    """An error answer a view chooses on purpose."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: Any = None,
        headers: dict[str, str] | None = None,
        *,
        public: bool = False,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}
        self.public = public  # a 5xx detail fit for anonymous clients


def error_response(
    status: int,
    error: str,
    detail: Any = None,
    headers: dict[str, str] | None = None,
    *,
    public: bool = False,
) -> Response:
    """Build the JSON error body every route uses; withhold a 5xx detail from anonymous ones."""
    request_id = g.get("request_id")
    if status >= 500 and not public and detail is not None and not authenticated():
        log.warning(
            "answered %s %r to an anonymous request (request_id=%s): %s",
            status,
            error,
            request_id or "-",
            detail,
        )
        detail = WITHHELD
    body = {"error": error, "status": status, "timestamp": utcnow_iso(), "detail": detail}
    if request_id:
        body["request_id"] = request_id
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _http_error(exc: HTTPException) -> Response:
    headers = {}
    if exc.code == 405:
        allow = exc.get_response().headers.get("Allow")
        if allow:
            headers["Allow"] = allow
    return error_response(exc.code or 500, (exc.name or "error").lower(), exc.description, headers)


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.error, exc.detail, exc.headers, public=exc.public)


def _redis_unavailable(exc: Exception) -> Response:
    log.warning("Redis unavailable: %s", exc)
    return error_response(
        503,
        "redis unavailable",
        f"Redis did not answer ({type(exc).__name__}); retry shortly",
        {"Retry-After": "5"},
        public=True,
    )


def _redis_full(exc: Exception) -> Response:
    # Reads still work; only writes are refused until keys expire (maxmemory-policy noeviction).
    log.error("Redis refused a write (maxmemory reached): %s", exc)
    return error_response(
        503,
        "redis out of memory",
        "Redis is at its maxmemory and refuses new writes; retry later",
        {"Retry-After": "30"},
        public=True,
    )


def _ledger_unavailable(exc: Exception) -> Response:
    # The driver's own message: SQLAlchemy's wraps it with the statement and a link.
    cause = getattr(exc, "orig", None) or exc
    log.error("the forecast ledger's database failed: %s", str(cause).strip() or type(cause))
    return error_response(
        503,
        "ledger unavailable",
        "the forecast ledger's database did not answer or is not migrated "
        "(`make ledger-upgrade`); retry shortly",
        {"Retry-After": "5"},
        public=True,
    )


def _damaged_version(exc: Exception) -> Response:
    log.error("%s", exc)
    return error_response(500, MODEL_UNREADABLE, str(exc))


def _damaged_job(exc: Exception) -> Response:
    log.error("%s", exc)
    return error_response(500, "job record damaged", str(exc))


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error: %s", exc)
    return error_response(
        500,
        "internal server error",
        "the error was logged to error.log with this request_id",
        public=True,
    )


def register_error_handlers(app: Flask) -> None:
    """Answer HTTP errors, ApiError and unexpected exceptions with the JSON error shape."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(redis.ConnectionError, _redis_unavailable)
    app.register_error_handler(redis.TimeoutError, _redis_unavailable)
    app.register_error_handler(redis.exceptions.OutOfMemoryError, _redis_full)
    app.register_error_handler(DBAPIError, _ledger_unavailable)
    app.register_error_handler(DamagedVersion, _damaged_version)
    app.register_error_handler(DamagedJobRecord, _damaged_job)
    app.register_error_handler(Exception, _unexpected)
