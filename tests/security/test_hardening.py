"""Issue 12, finding 5: the smaller ones, each pinned on the real web stack.

Bounded metric labels, api.log lines that cannot be forged, nested and oversized bodies, the
API token's length, no internal detail in anonymous 5xx answers, CORS only on public reads,
model files loaded in Keras's safe mode, and task ids matched whole.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from stockpred.infra.logs import API_LOGGER
from stockpred.settings import Settings, SettingsError, load_settings
from tests.conftest import clean_environ
from tests.contract import assert_conforms
from tests.support import BIN
from tests.unit.test_web import TOKEN, make_app
from web.errors import ApiError
from web.metrics import web_metrics

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "/srv/persistent_data/models/NVDA/model.keras: OSError errno 5"
METHOD_LABELS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}


@pytest.fixture
def app(settings: Settings) -> Flask:
    """The web app (fake Redis and Celery) with a token and a route failing with internals."""
    built = make_app(settings.model_copy(update={"api_token": TOKEN}))

    @built.get("/api/v1/_test/unavailable")
    def unavailable() -> None:
        """A route whose 503 carries internal detail, as a failed submission's does."""
        raise ApiError(503, "prediction failed", SECRET)

    @built.get("/api/v1/_test/redis-away")
    def redis_away() -> None:
        """A route whose Redis is away."""
        raise redis.ConnectionError(f"Error 111 connecting to unix://{SECRET}")

    return built


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _method_labels() -> set[str]:
    return {
        sample.labels["method"]
        for metric in web_metrics().requests.collect()
        for sample in metric.samples
    }


def test_unknown_method_tokens_are_one_label_value(client: FlaskClient) -> None:
    for n in range(40):
        client.open(f"/api/v1/health/{n}", method=f"FUZZ{n}").close()
        client.open("/api/v1/health", method=f"BREW{n}").close()
    assert _method_labels() <= METHOD_LABELS
    assert "OTHER" in _method_labels()
    scraped = client.get("/metrics").get_data(as_text=True)
    assert 'method="OTHER"' in scraped and "FUZZ" not in scraped and "BREW" not in scraped


def test_unmatched_paths_are_one_endpoint_label(client: FlaskClient) -> None:
    for n in range(20):
        client.get(f"/nothing/here/{n}").close()
    endpoints = {
        sample.labels["endpoint"]
        for metric in web_metrics().requests.collect()
        for sample in metric.samples
    }
    assert not any(e.startswith("/nothing") for e in endpoints)
    assert "unmatched" in endpoints


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/predict/%0A2026-01-01%20INFO%20forged",
        "/nothing%0D%0Aforged",
        "/api/v1/tasks/a%1B%5B2J",
        "/api/v1/historical/x%E2%80%A8forged",  # U+2028, a line separator to some readers
    ],
)
def test_control_characters_in_a_path_cannot_forge_api_log_lines(
    client: FlaskClient, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    with caplog.at_level(logging.INFO, logger=API_LOGGER):
        client.get(path, environ_base={"HTTP_USER_AGENT": 'agent\n" forged="1'}).close()
    [line] = [r.getMessage() for r in caplog.records if r.name == API_LOGGER]
    assert line.isprintable(), line
    assert '\\n\\" forged=\\"1"' in line


def test_api_log_lines_stay_one_line_in_the_real_file(settings: Settings) -> None:
    """Through the real handler into persistent_data/logs: one request, one line."""
    script = (
        "from stockpred.infra.logs import configure_logging\n"
        "from stockpred.settings import get_settings\n"
        "from tests.unit.test_web import make_app\n"
        "configure_logging(get_settings(), role='web')\n"
        "client = make_app(get_settings()).test_client()\n"
        "client.get('/api/v1/predict/%0Aforged%20line').close()\n"
        "import logging; logging.shutdown()\n"
    )
    env = clean_environ()
    env["STOCKPRED_DATA_DIR"] = str(settings.data_dir)
    subprocess.run([str(BIN / "python"), "-c", script], env=env, check=True, timeout=120)
    api_log = next(Path(settings.log_path).rglob("api.log"))
    lines = api_log.read_text().splitlines()
    assert len(lines) == 1, lines
    assert "/api/v1/predict/\\nforged line 400" in lines[0]


@pytest.mark.parametrize("depth", [2_000, 20_000])
def test_deeply_nested_json_is_a_400_not_a_500(client: FlaskClient, depth: int) -> None:
    body = '{"dry_run": ' + "[" * depth + "]" * depth + "}"
    response = client.post(
        "/api/v1/storage/cleanup", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.get_json()
    assert_conforms("/api/v1/storage/cleanup", "post", 400, response.get_json())


def test_bodies_over_the_cap_are_413(client: FlaskClient) -> None:
    body = '{"symbol": "' + "A" * 100_000 + '"}'
    response = client.post(
        "/api/v1/cache/clear", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert_conforms("/api/v1/cache/clear", "post", 413, response.get_json())


@pytest.mark.parametrize("token", ["short", "x" * 31, " " * 3 + "y" * 31])
def test_tokens_under_32_characters_are_refused(token: str) -> None:
    with pytest.raises(SettingsError, match="STOCKPRED_API_TOKEN must be at least 32 characters"):
        load_settings({"STOCKPRED_API_TOKEN": token})


def test_a_32_character_token_and_the_generated_one_are_accepted(settings: Settings) -> None:
    assert load_settings({"STOCKPRED_API_TOKEN": "z" * 32}).api_token == "z" * 32
    assert settings.api_token is not None and len(settings.api_token) >= 32  # `stockpred setup`


def test_the_service_does_not_start_with_a_short_token(data_env: dict[str, str]) -> None:
    env = {**data_env, "STOCKPRED_API_TOKEN": "too-short-a-token"}
    started = subprocess.run(
        [str(BIN / "stockpred"), "settings"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode != 0
    assert "STOCKPRED_API_TOKEN must be at least 32 characters" in started.stderr
    assert "too-short-a-token" not in started.stderr + started.stdout  # a secret is not echoed


def test_an_anonymous_503_names_a_request_id_not_the_cause(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="web.errors"):
        response = client.get("/api/v1/_test/unavailable")
    body = response.get_json()
    assert response.status_code == 503
    assert SECRET not in response.get_data(as_text=True)
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert "request_id" in body["detail"]
    logged = [r.getMessage() for r in caplog.records if r.name == "web.errors"]
    assert any(SECRET in line and body["request_id"] in line for line in logged), logged


def test_the_operator_with_the_token_gets_the_cause(client: FlaskClient) -> None:
    response = client.get("/api/v1/_test/unavailable", headers=AUTH)
    assert response.status_code == 503
    assert response.get_json()["detail"] == SECRET


def test_an_anonymous_503_of_redis_trouble_keeps_its_public_advice(client: FlaskClient) -> None:
    response = client.get("/api/v1/_test/redis-away")
    body = response.get_json()
    assert response.status_code == 503, body
    assert "retry shortly" in body["detail"] and SECRET not in body["detail"]


@pytest.mark.parametrize(
    "path", ["/metrics", "/api/v1/stats", "/api/v1/storage/backup", "/api/v1/storage/status"]
)
def test_operator_reads_carry_no_cors_header(client: FlaskClient, path: str) -> None:
    response = client.get(path, headers={"Origin": "https://example.org"})
    assert "Access-Control-Allow-Origin" not in response.headers, response.status_code
    preflight = client.options(
        path,
        headers={"Origin": "https://example.org", "Access-Control-Request-Method": "GET"},
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Methods" not in preflight.headers


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api/v1/health",
        "/api/v1/openapi.json",
        "/api/v1/predict/BAD!!",
        "/api/v1/historical/BAD!!",
        "/api/v1/models",
        "/api/v1/tasks/bad$id",
    ],
)
def test_public_reads_still_allow_any_origin(client: FlaskClient, path: str) -> None:
    response = client.get(path, headers={"Origin": "https://example.org"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize("task_id", ["abc%0A", "abc%0D", "abc%0A%0A"])
def test_a_task_id_with_a_trailing_newline_is_refused(client: FlaskClient, task_id: str) -> None:
    response = client.get(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == "invalid task id"


class _FakeModels:
    """Records how a model file is loaded."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def load_model(self, path: str, **options: object) -> str:
        self.calls.append({"path": path, **options})
        return "model"


def test_model_files_are_loaded_with_safe_mode_said_explicitly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from stockpred.ml import model

    models = _FakeModels()
    fake_tf = SimpleNamespace(keras=SimpleNamespace(models=models))
    monkeypatch.setattr(model, "tensorflow", lambda: fake_tf)
    assert model.load_keras_model("/m/model.keras") == "model"
    assert models.calls == [{"path": "/m/model.keras", "compile": False, "safe_mode": True}]


@pytest.mark.parametrize("suffix", ["keras", "h5"])
def test_a_model_file_carrying_code_is_refused(tmp_path: Path, suffix: str) -> None:
    from stockpred.infra.tf_runtime import tensorflow
    from stockpred.ml.model import load_keras_model

    keras = tensorflow().keras
    inputs = keras.Input(shape=(3,))
    carrier = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    path = tmp_path / f"model.{suffix}"
    carrier.save(path)
    with pytest.raises(ValueError, match="arbitrary code execution"):
        load_keras_model(str(path))
