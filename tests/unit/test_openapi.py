"""The OpenAPI document: valid, served, and in step with the routes the app really has."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from stockpred.settings import Settings
from tests.contract import assert_conforms, document
from tests.unit.test_web import TOKEN, make_app

METHODS = {"get", "post", "put", "patch", "delete"}


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(document())
    assert document()["openapi"].startswith("3.1")


def test_every_route_is_documented_and_every_documented_route_exists(settings: Settings) -> None:
    app = make_app(settings)
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/api/v1/_test/"):
            continue
        if rule.endpoint.startswith("pages."):  # the dashboard's HTML pages are not the API
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        routed |= {(path, m.lower()) for m in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    documented = {
        (path, method)
        for path, item in document()["paths"].items()
        for method in item
        if method in METHODS
    }
    assert routed == documented


def test_mutating_operations_declare_the_bearer_token() -> None:
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if method in METHODS - {"get"}:
                assert operation.get("security") == [{"bearerAuth": []}], (method, path)
                assert "401" in operation["responses"], (method, path)


def test_the_app_serves_the_document(settings: Settings) -> None:
    client = make_app(settings).test_client()
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == document()
    assert response.headers["Access-Control-Allow-Origin"] == "*"


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return make_app(settings.model_copy(update={"api_token": TOKEN})).test_client()


@pytest.mark.parametrize(
    ("method", "url", "path", "status"),
    [
        ("get", "/", "/", 200),
        ("get", "/api/v1/predict/BAD!!", "/api/v1/predict/{symbol}", 400),
        ("get", "/api/v1/predict/NVDA?horizon=31", "/api/v1/predict/{symbol}", 400),
        ("get", "/api/v1/historical/NVDA?days=0", "/api/v1/historical/{symbol}", 400),
        ("get", "/api/v1/tasks/bad%20id", "/api/v1/tasks/{task_id}", 400),
        ("post", "/api/v1/train/NVDA", "/api/v1/train/{symbol}", 401),
        ("post", "/api/v1/tasks/abc/cancel", "/api/v1/tasks/{task_id}/cancel", 401),
        ("post", "/api/v1/storage/cleanup", "/api/v1/storage/cleanup", 401),
    ],
)
def test_answers_without_redis_state_match_the_document(
    client: FlaskClient, method: str, url: str, path: str, status: int
) -> None:
    response = client.open(url, method=method.upper())
    assert response.status_code == status
    assert_conforms(path, method, status, response.get_json())


def test_the_contract_check_rejects_an_answer_missing_the_originals_keys() -> None:
    incomplete = {"symbol": "NVDA", "current_price": 1.0, "trading_signal": "MAYBE"}
    with pytest.raises(AssertionError, match=r"predicted_price|MAYBE"):
        assert_conforms("/api/v1/predict/{symbol}", "get", 200, incomplete)
    with pytest.raises(AssertionError, match="does not document status 418"):
        assert_conforms("/api/v1/predict/{symbol}", "get", 418, {})
