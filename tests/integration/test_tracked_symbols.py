"""The tracked-symbol list through the HTTP API, on SQLite and on a real PostgreSQL server.

Two apps on one database stand for two hosts: a change made through one is seen by the other.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from stockpred.ledger.migrate import upgrade_database
from stockpred.market.embedded_names import embedded_symbols
from stockpred.settings import Settings, load_settings
from tests.contract import assert_conforms
from tests.postgres import PostgresServer
from web import create_app


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_settings(
    request: pytest.FixtureRequest, worker_env: dict[str, str], tmp_path: Path
) -> Settings:
    """The session's settings on a fresh, migrated ledger, with TRACKED_SYMBOLS=AAPL,msft."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger' / 'forecasts.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(f"symbols_{uuid.uuid4().hex[:12]}")
    settings = load_settings({**worker_env, "DATABASE_URL": url, "TRACKED_SYMBOLS": "AAPL,msft"})
    upgrade_database(settings)
    return settings


@pytest.fixture
def host(ledger_settings: Settings) -> Iterator[Callable[[], FlaskClient]]:
    """Test clients of separate apps (hosts) on the same ledger database."""
    apps: list[Flask] = []

    def make() -> FlaskClient:
        apps.append(create_app({"STOCKPRED_SETTINGS": ledger_settings, "TESTING": True}))
        return apps[-1].test_client()

    yield make
    for app in apps:
        app.extensions["stockpred"].close()


def listed(client: FlaskClient) -> dict[str, str]:
    response = client.get("/api/v1/symbols")
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    assert_conforms("/api/v1/symbols", "get", 200, body)
    assert body["count"] == len(body["symbols"])
    return {entry["symbol"]: entry["source"] for entry in body["symbols"]}


def change(client: FlaskClient, method: str, symbol: str, auth: dict[str, str], status: int) -> Any:
    response = client.open(f"/api/v1/symbols/{symbol}", method=method, headers=auth)
    body = response.get_json()
    assert response.status_code == status, body
    assert_conforms("/api/v1/symbols/{symbol}", method, status, body)
    return body


def test_symbols_added_and_removed_on_one_host_are_seen_by_another(
    host: Callable[[], FlaskClient], auth: dict[str, str]
) -> None:
    one, other = host(), host()
    assert listed(one) == {"AAPL": "setting", "MSFT": "setting"}
    assert change(one, "POST", "nvda", auth, 201) == {
        "symbol": "NVDA",
        "tracked": True,
        "changed": True,
    }
    assert change(one, "POST", "NVDA", auth, 200)["changed"] is False
    assert change(one, "DELETE", "AAPL", auth, 200)["tracked"] is False
    assert listed(other) == {"MSFT": "setting", "NVDA": "api"}
    change(other, "DELETE", "AAPL", auth, 404)
    assert change(other, "POST", "AAPL", auth, 201)["changed"] is True  # back, as the setting
    assert listed(one) == {"AAPL": "setting", "MSFT": "setting", "NVDA": "api"}


def test_changes_need_the_token_and_a_valid_symbol(
    host: Callable[[], FlaskClient], auth: dict[str, str]
) -> None:
    client = host()
    for method in ("POST", "DELETE"):
        change(client, method, "NVDA", {}, 401)
        change(client, method, "NOT A SYMBOL", auth, 400)
    assert listed(client) == {"AAPL": "setting", "MSFT": "setting"}


def test_a_ledger_not_migrated_is_a_json_503(
    worker_env: dict[str, str], tmp_path: Path, auth: dict[str, str]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    app = create_app({"STOCKPRED_SETTINGS": load_settings({**worker_env, "DATABASE_URL": url})})
    try:
        response = app.test_client().get("/api/v1/symbols")
        assert response.status_code == 503
        assert response.get_json()["error"] == "ledger unavailable"
        assert_conforms("/api/v1/symbols", "get", 503, response.get_json())
    finally:
        app.extensions["stockpred"].close()


def test_the_web_lists_the_embedded_default_without_loading_pandas(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**worker_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'forecasts.db'}"}
    upgrade_database(load_settings(env))
    code = (
        "import json, sys, web; "
        "body = web.create_app().test_client().get('/api/v1/symbols').get_json(); "
        "print(json.dumps([body, 'pandas' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    body, pandas_loaded = json.loads(out.stdout.splitlines()[-1])
    assert [entry["symbol"] for entry in body["symbols"]] == embedded_symbols()
    assert pandas_loaded is False, "the web image has no pandas"
