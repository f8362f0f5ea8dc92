"""`/` (service index) and `/api/v1/health`."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from flask import Blueprint, Response, current_app, jsonify, request

from stockpred.infra.clock import utcnow_iso
from web.contract import openapi_document
from web.health import check_health
from web.pages.views import overview_page
from web.services import services

bp = Blueprint("meta", __name__)
SERVICE_NAME = "Stock Prediction API"


def service_version() -> str:
    """The installed distribution's version."""
    try:
        return version("stockpred")
    except PackageNotFoundError:
        return "unknown"


def _endpoints() -> dict[str, str]:
    """Every route with the first line of its view's docstring, from the URL map itself."""
    index: dict[str, str] = {}
    for rule in sorted(current_app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue  # files, not routes
        view = current_app.view_functions[rule.endpoint]
        doc = (view.__doc__ or "").strip().splitlines()
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            index[f"{method} {rule.rule}"] = doc[0] if doc else ""
    return index


def _wants_html() -> bool:
    """A browser asking for a page (text/html ranked above JSON); curl and API clients get JSON."""
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


@bp.get("/")
def index() -> Response:
    """Service name, version and the index of routes; the dashboard's overview to browsers."""
    if _wants_html():
        response = Response(overview_page(), mimetype="text/html")
        response.vary.add("Accept")
        return response
    response = jsonify(
        {
            "service": SERVICE_NAME,
            "version": service_version(),
            "status": "running",
            "timestamp": utcnow_iso(),
            "endpoints": _endpoints(),
        }
    )
    response.vary.add("Accept")
    return response


@bp.get("/api/v1/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document of this API."""
    return Response(openapi_document(), mimetype="application/json")


@bp.get("/api/v1/health")
def health() -> Response:
    """Redis, workers per queue, storage: 200 healthy, 206 degraded, 503 unhealthy."""
    result = check_health(services())
    response = jsonify(
        {
            "status": result.status,
            "timestamp": utcnow_iso(),
            "version": service_version(),
            "services": result.services,
            "checks": result.checks,
        }
    )
    response.status_code = result.http_status
    return response
