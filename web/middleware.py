"""Cross-cutting request handling: request ids, api.log lines, rate limit refusals, bearer auth,
CORS for the public reads."""

from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, Response, g, request

from stockpred.infra.logs import API_LOGGER
from web.admission import MUTATING_METHODS, refuse_if_over_limit
from web.auth import PAGES, authenticated, session_signed_in, token_matches
from web.contract import refuse_what_the_contract_refuses
from web.errors import ApiError
from web.metrics import record_request_metrics
from web.services import services

READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})
READ_METHODS = "GET, HEAD, OPTIONS"
# Cross-origin reads are for what a public page may show: not /metrics, /stats or storage.
PUBLIC_READ_PATHS = frozenset({"/", "/api/v1/health", "/api/v1/openapi.json", "/api/v1/models"})
PUBLIC_READ_PREFIXES = (
    "/api/v1/predict/",
    "/api/v1/historical/",
    "/api/v1/models/",
    "/api/v1/tasks/",
)
access_log = logging.getLogger(API_LOGGER)


def printable(text: str) -> str:
    """`text` with control characters (and backslashes) escaped: one log line stays one line."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(
        ch if ch.isprintable() and ch != "\\" else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def public_read(path: str) -> bool:
    """Whether `path` is one of the public read routes that any origin may read."""
    return path in PUBLIC_READ_PATHS or path.startswith(PUBLIC_READ_PREFIXES)


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
        printable(method),
        printable(path),
        status,
        elapsed_ms,
        printable(client),
        printable(request_id),
        printable(agent[:120]).replace('"', '\\"'),
    )


def record_request(
    method: str,
    endpoint: str,
    status: int,
    elapsed: float,
    *,
    path: str,
    client: str,
    request_id: str,
    agent: str,
) -> None:
    """Request metrics and the api.log line of one answered request (route or fast path)."""
    record_request_metrics(method, endpoint, status, elapsed)
    log_request(
        method,
        path,
        status,
        elapsed_ms=elapsed * 1000,
        client=client,
        request_id=request_id,
        agent=agent,
    )


def answer_headers(method: str, path: str, request_id: str) -> list[tuple[str, str]]:
    """Headers every answer carries: CORS for public reads (never with credentials), the id."""
    if method in READ_ONLY and public_read(path):
        return [("Access-Control-Allow-Origin", "*"), ("X-Request-ID", request_id)]
    return [("X-Request-ID", request_id)]


def _start_request() -> None:
    g.started = time.perf_counter()
    g.request_id = request_id_for(request.headers.get("X-Request-ID", ""))
    g.authenticated = token_matches(
        request.headers.get("Authorization", ""), services().settings.api_token
    ) or (request.blueprint == PAGES and session_signed_in())


def _require_token() -> None:
    """Mutating routes need `Authorization: Bearer <STOCKPRED_API_TOKEN>`."""
    if request.method not in MUTATING_METHODS or request.blueprint == PAGES:
        return  # the pages check a CSRF token and the operator's session instead (web.pages)
    if not services().settings.api_token:
        raise ApiError(
            503,
            "mutating routes are disabled",
            "no STOCKPRED_API_TOKEN is configured; run `stockpred setup` to generate one",
            public=True,
        )
    if not authenticated():
        raise ApiError(
            401,
            "authentication required",
            "send the header Authorization: Bearer <STOCKPRED_API_TOKEN>",
            {"WWW-Authenticate": 'Bearer realm="stockpred"'},
        )


def _finish_request(response: Response) -> Response:
    method, status = request.method, response.status_code
    request_id = g.get("request_id", "")
    for name, value in answer_headers(method, request.path, request_id):
        response.headers[name] = value
    if method == "OPTIONS" and public_read(request.path):
        response.headers["Access-Control-Allow-Methods"] = READ_METHODS
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
    path = request.full_path.rstrip("?") if request.query_string else request.path
    client = request.remote_addr or "-"
    agent = request.user_agent.string or "-"

    def record() -> None:
        """Once the server has sent the answer."""
        record_request(
            method,
            endpoint,
            status,
            elapsed,
            path=path,
            client=client,
            request_id=request_id or "-",
            agent=agent,
        )

    response.call_on_close(record)
    return response


def install_middleware(app: Flask) -> None:
    """Register the request hooks in the order they must run."""
    app.before_request(_start_request)
    app.before_request(refuse_if_over_limit)  # before auth: token guessing is limited too
    app.before_request(_require_token)
    app.before_request(refuse_what_the_contract_refuses)  # after auth: 401 before any 400
    app.after_request(_finish_request)
