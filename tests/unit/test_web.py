"""The web front with fake Redis and Celery: index, health states, errors, auth, CORS, api.log."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from stockpred.infra.logs import API_LOGGER
from stockpred.settings import Settings
from web import create_app
from web.admission import RateLimits
from web.services import Services

TOKEN = "t0ken-for-tests-of-32-characters"  # settings refuse tokens under 32 characters


class FakeRedis:
    """Answers PING, or fails like a server that is down."""

    def __init__(self, up: bool = True) -> None:
        self.up = up

    def ping(self) -> bool:
        if not self.up:
            raise ConnectionError("Connection refused")
        return True

    def info(self, section: str) -> dict[str, Any]:
        """INFO memory of a server without a maxmemory."""
        return {"used_memory": 1 << 20, "maxmemory": 0, "maxmemory_policy": "noeviction"}


class FakeCelery:
    """Answers active_queues like workers on the given queues would."""

    def __init__(self, served: dict[str, list[str]]) -> None:
        replies = {w: [{"name": q} for q in qs] for w, qs in served.items()}
        inspect = type("Inspect", (), {"active_queues": lambda self: replies})()
        self.control = type("Control", (), {"inspect": lambda self, timeout: inspect})()


ALL_QUEUES = {
    "inference@h": ["inference"],
    "training@h": ["training"],
    "maintenance@h": ["maintenance"],
}


def make_app(settings: Settings, redis_up: bool = True, served: Any = None) -> Flask:
    svc = Services(
        settings=settings,
        started_at=time.time(),
        _redis=FakeRedis(redis_up),  # type: ignore[arg-type]
        _celery=FakeCelery(ALL_QUEUES if served is None else served),
        _rate_limits=RateLimits.in_memory(settings),
    )  # type: ignore[arg-type]
    app = create_app({"STOCKPRED_SERVICES": svc, "TESTING": True})

    @app.post("/api/v1/_test/echo")
    def echo() -> dict[str, bool]:
        """A mutating route for the middleware tests."""
        return {"ok": True}

    @app.get("/api/v1/_test/boom")
    def boom() -> None:
        """A route that fails unexpectedly."""
        raise RuntimeError("secret internal detail")

    return app


@pytest.fixture
def client(settings: Settings) -> FlaskClient:

    return make_app(settings.model_copy(update={"api_token": TOKEN})).test_client()


def test_index_has_the_original_keys_and_lists_routes(client: FlaskClient) -> None:
    body = client.get("/").get_json()
    assert body["service"] == "Stock Prediction API"
    assert {"version", "status", "endpoints"} <= set(body)
    assert "GET /api/v1/health" in body["endpoints"]
    assert "GET /api/v1/tasks/<task_id>" in body["endpoints"]


def test_health_is_200_when_redis_workers_and_storage_are_up(client: FlaskClient) -> None:
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "healthy"
    assert body["services"] == {
        "redis": "up",
        "storage": "up",
        "worker_inference": "up",
        "worker_training": "up",
        "worker_maintenance": "up",
    }
    assert body["checks"]["queues"]["training"] == ["training@h"]


def test_health_is_206_when_a_queue_has_no_worker(settings: Settings) -> None:
    served = {"inference@h": ["inference"], "maintenance@h": ["maintenance"]}
    response = make_app(settings, served=served).test_client().get("/api/v1/health")
    assert response.status_code == 206
    assert response.get_json()["status"] == "degraded"
    assert response.get_json()["services"]["worker_training"] == "down"


def test_health_is_503_when_redis_is_down(settings: Settings) -> None:
    response = make_app(settings, redis_up=False).test_client().get("/api/v1/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unhealthy"
    assert body["services"]["redis"] == "down"
    assert "refused" in body["checks"]["redis"]["error"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/no/such/route", 404),
        ("delete", "/api/v1/health", 405),
        ("get", "/api/v1/tasks/bad$id", 400),
    ],
)
def test_errors_are_json_with_the_standard_keys(
    client: FlaskClient, method: str, path: str, status: int
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = getattr(client, method)(path, headers=headers)
    assert response.status_code == status
    body = response.get_json()
    assert {"error", "status", "timestamp", "detail"} <= set(body)
    assert body["status"] == status


def test_405_says_which_methods_are_allowed(client: FlaskClient) -> None:
    response = client.delete("/api/v1/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert "GET" in response.headers["Allow"]


def test_an_unexpected_error_is_a_500_without_internals(client: FlaskClient) -> None:
    response = client.get("/api/v1/_test/boom")
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "secret internal detail" not in text and "Traceback" not in text
    assert response.get_json()["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x"]
)
def test_mutating_routes_refuse_a_missing_or_wrong_token(
    client: FlaskClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.post("/api/v1/_test/echo", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == "authentication required"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_mutating_routes_accept_the_configured_token(client: FlaskClient) -> None:
    response = client.post("/api/v1/_test/echo", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200


def test_without_a_configured_token_mutating_routes_are_disabled(settings: Settings) -> None:

    app = make_app(settings.model_copy(update={"api_token": None}))
    response = app.test_client().post("/api/v1/_test/echo", headers={"Authorization": "Bearer x"})
    assert response.status_code == 503
    assert "stockpred setup" in response.get_json()["detail"]


def test_read_routes_allow_any_origin_without_credentials(client: FlaskClient) -> None:
    response = client.get("/api/v1/health", headers={"Origin": "https://example.org"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    preflight = client.options(
        "/api/v1/health",
        headers={
            "Origin": "https://example.org",
            "Access-Control-Request-Method": "GET",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" not in preflight.headers["Access-Control-Allow-Methods"]


def test_mutating_answers_carry_no_cors_header(client: FlaskClient) -> None:
    response = client.post("/api/v1/_test/echo", headers={"Authorization": f"Bearer {TOKEN}"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_every_request_gets_one_api_log_line_once_it_is_sent(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=API_LOGGER):
        health = client.get("/api/v1/health?verbose=1", environ_base={"REMOTE_ADDR": "10.1.2.3"})
        missing = client.get("/missing")
        assert not [r for r in caplog.records if r.name == API_LOGGER]  # not before it is sent
        health.close()  # what the WSGI server does once it has sent the answer
        missing.close()
    lines = [r.getMessage() for r in caplog.records if r.name == API_LOGGER]
    assert len(lines) == 2
    assert lines[0].startswith("GET /api/v1/health?verbose=1 200 ")
    assert "client=10.1.2.3" in lines[0]
    assert lines[1].startswith("GET /missing 404 ")
