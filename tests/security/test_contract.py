"""Issue 12, finding 6: the OpenAPI document and the service agree, request side included.

Bodies the document refuses are refused (400) before any work is queued; each path answers and
advertises in `Allow` exactly the methods the document gives it; cancelling a job is an action
that keeps the record, not a DELETE that leaves it answering 200.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from stockpred.settings import Settings
from tests.contract import assert_conforms, document
from tests.unit.test_web import TOKEN, make_app

AUTH = {"Authorization": f"Bearer {TOKEN}"}
OPERATIONS = {"get", "post", "put", "patch", "delete"}


class RecordingCelery:
    """A Celery client that records what would have been queued (nothing must be)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_task(self, name: str, **options: Any) -> None:
        self.sent.append(name)


@pytest.fixture
def app(settings: Settings) -> Flask:
    """The web app with a token; its Celery records every task it is asked to queue."""
    built = make_app(settings.model_copy(update={"api_token": TOKEN}))
    built.extensions["stockpred"]._celery = RecordingCelery()
    return built


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/storage/verify", {"backup": None}),
        ("/api/v1/storage/verify", {"backup": 7}),
        ("/api/v1/storage/verify", {"bakup": "stock_prediction_backup_20250801_120000"}),
        ("/api/v1/storage/restore", {"backup": None}),
        ("/api/v1/storage/restore", {"dry_run": "yes please"}),
        ("/api/v1/storage/restore", {"categories": []}),
        ("/api/v1/storage/backup", {"base": None}),
        ("/api/v1/storage/backup", {"categories": ["models", "everything"]}),
        ("/api/v1/storage/backup", {"incremental": 1}),
        ("/api/v1/storage/cleanup", {"dry_run": None}),
        ("/api/v1/storage/cleanup", {"dryrun": True}),  # a typo must not run a real cleanup
        ("/api/v1/storage/cleanup", {"scope": "everything"}),
        ("/api/v1/cache/clear", {"symbol": {}}),
        ("/api/v1/cache/clear", {"symbol": None}),
        ("/api/v1/cache/clear", {"symbol": "BAD!!"}),
        ("/api/v1/train/NVDA", {"epochs": None}),
        ("/api/v1/train/NVDA", {"epochs": 2.5}),
        ("/api/v1/train/NVDA", {"force": "true"}),
        ("/api/v1/train/NVDA", {"epoch": 5}),
        ("/api/v1/models/NVDA/rollback", {"version": None}),
        ("/api/v1/models/NVDA/rollback", {"versoin": "x"}),
    ],
)
def test_a_body_the_document_refuses_is_a_400_and_queues_nothing(
    app: Flask, client: FlaskClient, path: str, body: dict[str, Any]
) -> None:
    response = client.post(path, json=body, headers=AUTH)
    assert response.status_code == 400, response.get_json()
    answer = response.get_json()
    assert answer["error"] == "invalid body", answer
    template = re.sub(r"/NVDA(?=/|$)", "/{symbol}", path)
    assert_conforms(template, "post", 400, answer)
    assert app.extensions["stockpred"].celery.sent == []


@pytest.mark.parametrize("body", ["[]", '"backup"', "null", "{not json"])
def test_a_body_that_is_not_a_json_object_is_a_400(client: FlaskClient, body: str) -> None:
    response = client.post(
        "/api/v1/storage/verify",
        data=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 400


def test_an_empty_symbol_does_not_mean_every_symbol(client: FlaskClient) -> None:
    assert client.post("/api/v1/cache/clear?symbol=", headers=AUTH).status_code == 400


@pytest.mark.parametrize(
    "url", ["/api/v1/storage/status?refresh=", "/api/v1/predict/NVDA?horizon="]
)
def test_an_empty_query_value_is_not_the_default(client: FlaskClient, url: str) -> None:
    assert client.get(url).status_code == 400


def test_the_document_forbids_unknown_body_keys_and_documents_413() -> None:
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if method in OPERATIONS and "requestBody" in operation:
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                assert schema.get("additionalProperties") is False, (method, path)
                assert "413" in operation["responses"], (method, path)


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_rollback_answers_and_advertises_only_post(client: FlaskClient, method: str) -> None:
    response = client.open("/api/v1/models/NVDA/rollback", method=method, headers=AUTH)
    assert response.status_code == 405, response.get_json()
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed - {"HEAD", "OPTIONS"} == {"POST"}


def test_options_on_rollback_lists_only_the_documented_method(client: FlaskClient) -> None:
    response = client.options("/api/v1/models/NVDA/rollback")
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed - {"HEAD", "OPTIONS"} == {"POST"}


def test_a_task_is_cancelled_by_an_action_and_never_deleted(client: FlaskClient) -> None:
    tasks = document()["paths"]["/api/v1/tasks/{task_id}"]
    assert "delete" not in tasks
    cancel = document()["paths"]["/api/v1/tasks/{task_id}/cancel"]["post"]
    assert "record stays" in cancel["description"]
    response = client.delete("/api/v1/tasks/abc", headers=AUTH)
    assert response.status_code == 405
    assert "DELETE" not in response.headers["Allow"]
    assert client.post("/api/v1/tasks/abc/cancel").status_code == 401
