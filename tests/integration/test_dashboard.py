"""The dashboard's pages and actions (web.pages) on real Redis, real workers and real training.

Each test has its own test client (its own cookie jar); the session's workers do the work.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from stockpred.infra.clock import utcnow
from stockpred.jobs.records import JobStore
from stockpred.ledger.database import create_ledger_engine
from stockpred.ledger.entries import Forecast
from stockpred.ledger.migrate import upgrade_database
from stockpred.ledger.scoring import score
from stockpred.ledger.store import ForecastLedger
from stockpred.ml.registry import ModelRegistry
from stockpred.settings import Settings, load_settings
from tests.support import wait_for
from web import create_app

SYMBOL = "MSFT"  # embedded data; no other module trains it
UNTRAINED = "IBM"
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def app(celery_workers: Celery, worker_settings: Settings) -> Iterator[Flask]:
    """The web app on the session workers' Redis and data root."""
    built = create_app({"STOCKPRED_SETTINGS": worker_settings, "TESTING": True})
    yield built
    built.extensions["stockpred"].close()


@pytest.fixture
def browser(app: Flask) -> FlaskClient:
    """An anonymous visitor with a cookie jar of its own."""
    return app.test_client()


@pytest.fixture
def operator(app: Flask, worker_settings: Settings) -> FlaskClient:
    """A visitor that signed in with the API token."""
    client = app.test_client()
    response = client.post(
        "/signin",
        data={"token": worker_settings.api_token, "csrf_token": csrf(client, "/signin")},
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    return client


def csrf(client: FlaskClient, page: str) -> str:
    """The CSRF token a page's forms carry."""
    response = client.get(page, headers=HTML)
    assert response.status_code == 200, response.get_data(as_text=True)
    found = _CSRF.search(response.get_data(as_text=True))
    assert found is not None, f"no form on {page}"
    return found.group(1)


def html(response: TestResponse) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def flashed(client: FlaskClient, response: TestResponse) -> str:
    """Follow an action's 303 and return the page it led to."""
    assert response.status_code == 303, response.get_data(as_text=True)
    return html(client.get(response.headers["Location"], headers=HTML))


def finish(store: JobStore, job_id: str, timeout: float = 180) -> Any:
    return wait_for(
        lambda: job if (job := store.get(job_id)) is not None and job.finished else None,
        timeout,
        interval=0.2,
        what=f"job {job_id}",
    )


def job_store(app: Flask) -> JobStore:
    store: JobStore = app.extensions["stockpred"].jobs
    return store


def registry(settings: Settings) -> ModelRegistry:
    return ModelRegistry(settings.ml_model_path, settings.scalers_path)


def test_a_browser_gets_the_overview_and_an_api_client_the_json_index(browser: FlaskClient) -> None:
    page = browser.get("/", headers=HTML)
    body = html(page)
    assert "<h1>Overview</h1>" in body and "Queues and workers" in body
    assert ">NVDA</a>" in body  # a tracked symbol (the embedded list), linked to its page
    assert "Accept" in page.headers["Vary"]
    for accept in ({}, {"Accept": "*/*"}, {"Accept": "application/json"}):
        answer = browser.get("/", headers=accept)
        assert answer.mimetype == "application/json", accept
        assert answer.get_json()["service"] == "Stock Prediction API"
        assert "Accept" in answer.headers["Vary"]


def test_anonymous_pages_read_and_offer_no_action(browser: FlaskClient) -> None:
    symbol_page = html(browser.get(f"/symbols/{UNTRAINED}", headers=HTML))
    assert f"{UNTRAINED} has no trained model yet" in symbol_page
    assert f"make train SYMBOL={UNTRAINED}" in symbol_page
    assert "/train" not in symbol_page and "Sign out" not in symbol_page
    data = re.search(r'id="chart-data"[^>]*>(.*?)</script>', symbol_page, re.S)
    assert data is not None and json.loads(data.group(1))["symbol"] == UNTRAINED
    assert "<h1>Jobs</h1>" in html(browser.get("/jobs", headers=HTML))
    assert "Cancel" not in html(browser.get("/jobs", headers=HTML))
    answer = browser.get("/symbols?symbol=aapl")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/symbols/AAPL")


def test_static_files_are_served_and_javascript_stays_under_150_kb(browser: FlaskClient) -> None:
    total = 0
    for name in ("uPlot.iife.min.js", "dashboard.js", "uPlot.min.css", "dashboard.css"):
        response = browser.get(f"/dashboard/static/{name}")
        assert response.status_code == 200, name
        if name.endswith(".js"):
            total += len(response.get_data())
        response.close()
    assert total < 150 * 1024


def test_bad_input_on_pages_gets_the_json_error_shape(browser: FlaskClient) -> None:
    for url, status in (("/symbols/BAD!!", 400), ("/symbols/NVDA?job=x%20y", 400)):
        answer = browser.get(url, headers=HTML)
        assert answer.status_code == status, url
        assert set(answer.get_json()) >= {"error", "status", "timestamp", "detail"}


def test_posts_without_a_csrf_token_or_a_sign_in_are_refused(
    browser: FlaskClient, operator: FlaskClient, worker_settings: Settings
) -> None:
    # No CSRF token: 403 before anything else, signed in or not, bearer token or not.
    bearer = {"Authorization": f"Bearer {worker_settings.api_token}"}
    for client, headers in ((browser, {}), (operator, {}), (browser, bearer)):
        refused = client.post(f"/symbols/{UNTRAINED}/train", headers=headers)
        assert refused.status_code == 403
        assert refused.get_json()["error"] == "csrf token missing or invalid"
    # A valid token but no sign-in: 403.
    token = csrf(browser, "/signin")
    for action in (f"/symbols/{UNTRAINED}/train", "/backup", "/cache/clear", "/signout"):
        refused = browser.post(action, data={"csrf_token": token})
        assert refused.status_code == 403, action
        assert refused.get_json()["error"] == "sign-in required"
    # The JSON API never takes the session cookie: the operator still needs the bearer token.
    assert operator.post(f"/api/v1/train/{UNTRAINED}", json={}).status_code == 401
    assert registry(worker_settings).current_version(UNTRAINED) is None


def test_signing_in_sets_a_strict_http_only_cookie_and_signing_out_ends_it(
    app: Flask, worker_settings: Settings
) -> None:
    client = app.test_client()
    wrong = client.post(
        "/signin", data={"token": "not-the-token", "csrf_token": csrf(client, "/signin")}
    )
    assert wrong.status_code == 403 and "not the API token" in wrong.get_data(as_text=True)
    signed = client.post(
        "/signin?next=/jobs",
        data={"token": worker_settings.api_token, "csrf_token": csrf(client, "/signin")},
    )
    assert signed.status_code == 303 and signed.headers["Location"] == "/jobs"
    cookie = signed.headers["Set-Cookie"]
    assert cookie.startswith("stockpred_session=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert "Sign out" in html(client.get("/jobs", headers=HTML))
    out = client.post("/signout", data={"csrf_token": csrf(client, "/jobs")})
    assert out.status_code == 303
    assert "Sign out" not in html(client.get("/jobs", headers=HTML))
    # Another site as the next page is not followed.
    again = client.post(
        "/signin?next=//evil.example/",
        data={"token": worker_settings.api_token, "csrf_token": csrf(client, "/signin")},
    )
    assert again.headers["Location"] == "/"


def test_the_session_cookie_is_secure_behind_a_trusted_tls_proxy(
    celery_workers: Celery, worker_settings: Settings
) -> None:
    proxied = worker_settings.model_copy(update={"web_trusted_proxies": 1})
    app = create_app({"STOCKPRED_SETTINGS": proxied, "TESTING": True})
    try:
        client = app.test_client()
        tls = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
        page = client.get("/signin", headers={**HTML, **tls}, base_url="http://localhost")
        found = _CSRF.search(page.get_data(as_text=True))
        assert found is not None
        signed = client.post(
            "/signin",
            data={"token": worker_settings.api_token, "csrf_token": found.group(1)},
            headers={**tls, "Referer": "https://localhost/signin"},
        )
        assert signed.status_code == 303, signed.get_data(as_text=True)
        assert "Secure" in signed.headers["Set-Cookie"]
    finally:
        app.extensions["stockpred"].close()


def test_an_operator_trains_rolls_back_clears_the_cache_and_backs_up_from_the_pages(
    app: Flask, operator: FlaskClient, worker_settings: Settings
) -> None:
    store = job_store(app)
    page = html(operator.get(f"/symbols/{SYMBOL}", headers=HTML))
    assert f"Train {SYMBOL}" in page
    versions = []
    for _ in range(2):
        token = csrf(operator, f"/symbols/{SYMBOL}")
        queued = operator.post(
            f"/symbols/{SYMBOL}/train", data={"csrf_token": token, "epochs": "1"}
        )
        assert queued.status_code == 303
        job_id = queued.headers["Location"].split("job=")[1]
        following = flashed(operator, queued)
        assert f'data-job="{job_id}"' in following and "Training of MSFT queued" in following
        done = finish(store, job_id)
        assert done.state == "succeeded", done.error
        versions.append(done.result["version"])
    assert registry(worker_settings).current_version(SYMBOL) == versions[1]
    page = html(operator.get(f"/symbols/{SYMBOL}", headers=HTML))
    assert f"Serving version <code>{versions[1]}</code>" in page
    assert "Hold-out RMSE" in page and f'value="{versions[0]}"' in page

    token = csrf(operator, f"/symbols/{SYMBOL}")
    rolled = operator.post(
        f"/symbols/{SYMBOL}/rollback", data={"csrf_token": token, "version": versions[0]}
    )
    assert f"{SYMBOL} now serves version {versions[0]}" in flashed(operator, rolled)
    assert registry(worker_settings).current_version(SYMBOL) == versions[0]

    token = csrf(operator, f"/symbols/{SYMBOL}")
    cleared = operator.post("/cache/clear", data={"csrf_token": token, "symbol": SYMBOL})
    assert f"Prediction cache cleared for {SYMBOL}" in flashed(operator, cleared)

    backup = operator.post("/backup", data={"csrf_token": csrf(operator, "/")})
    jobs_page = flashed(operator, backup)
    assert "Backup queued" in jobs_page and "<td>backup</td>" in jobs_page
    backup_id = re.search(r"Backup queued \(job ([0-9a-f-]+)\)", jobs_page)
    assert backup_id is not None
    assert finish(store, backup_id.group(1)).state == "succeeded"
    overview = html(operator.get("/", headers=HTML))
    assert "Last backup <code>stock_prediction_backup_" in overview
    assert "There is no backup yet" not in overview


def test_an_operator_cancels_a_running_training_from_the_jobs_page(
    app: Flask, operator: FlaskClient, celery_workers: Celery
) -> None:
    store = job_store(app)
    token = csrf(operator, f"/symbols/{UNTRAINED}")
    queued = operator.post(
        f"/symbols/{UNTRAINED}/train", data={"csrf_token": token, "epochs": "400"}
    )
    job_id = queued.headers["Location"].split("job=")[1]
    jobs_page = html(operator.get("/jobs", headers=HTML))
    assert f'aria-label="Cancel job {job_id[:8]}"' in jobs_page
    cancelled = operator.post(
        f"/jobs/{job_id}/cancel", data={"csrf_token": csrf(operator, "/jobs")}
    )
    assert f"Job {job_id} cancelled" in flashed(operator, cancelled)
    assert store.get(job_id).state == "cancelled"  # type: ignore[union-attr]
    again = operator.post(f"/jobs/{job_id}/cancel", data={"csrf_token": csrf(operator, "/jobs")})
    assert "Job already finished" in flashed(operator, again)

    def training_idle() -> bool:
        active = celery_workers.control.inspect(timeout=1).active() or {}
        return not any(tasks for name, tasks in active.items() if name.startswith("training@"))

    wait_for(training_idle, 120, interval=0.5, what="the cancelled training to stop")


def test_rendering_every_page_imports_no_tensorflow(worker_env: dict[str, str]) -> None:
    script = (
        "import sys\n"
        "from web import create_app\n"
        "client = create_app({'TESTING': True}).test_client()\n"
        "html = {'Accept': 'text/html'}\n"
        "for url in ('/', '/symbols/NVDA', '/jobs', '/signin'):\n"
        "    assert client.get(url, headers=html).status_code == 200, url\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "assert 'pandas' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        env=worker_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_track_record_shows_hits_misses_and_accuracy_beside_naive(
    celery_workers: Celery, worker_env: dict[str, str], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger' / 'forecasts.db'}"
    settings = load_settings({**worker_env, "DATABASE_URL": url})
    upgrade_database(settings)
    engine = create_ledger_engine(url)
    ledger = ForecastLedger(engine)
    # Long past, as a replayed history on the embedded data is: the overview's window ends at
    # the symbol's latest scored forecast, not today.
    recent = date(2013, 2, 19)
    # (as_of, point, previous close = naive, actual, interval): a hit, then a miss.
    for day, point, naive, actual, interval in (
        (recent, 101.0, 100.0, 102.0, (99.0, 103.0)),
        (recent + timedelta(days=1), 103.0, 102.0, 99.0, (101.5, 104.0)),
    ):
        stored = ledger.record(
            Forecast(
                symbol=UNTRAINED,
                as_of=day,
                target_date=day + timedelta(days=1),
                horizon=1,
                forecaster="lstm",
                model_version="v1",
                point=point,
                naive=naive,
                requested_at=datetime.combine(day, datetime.min.time(), UTC),
                lower=interval[0],
                upper=interval[1],
                level=0.8,
            )
        )
        ledger.record_scores(
            [score(stored, actual=actual, previous_close=naive, scored_at=utcnow())]
        )
    engine.dispose()
    app = create_app({"STOCKPRED_SETTINGS": settings, "TESTING": True})
    try:
        client = app.test_client()
        page = html(client.get(f"/symbols/{UNTRAINED}", headers=HTML))
        data = re.search(r'id="chart-data"[^>]*>(.*?)</script>', page, re.S)
        assert data is not None
        realised = json.loads(data.group(1))["realised"]
        assert [(r["actual"], r["hit"]) for r in realised] == [(99.0, False), (102.0, True)]
        # n 2; MAE model (1 + 4) / 2 = 2.5 beside naive (2 + 3) / 2 = 2.5; coverage 1 of 2.
        assert re.search(r"<td>2</td>\s*<td>2.500</td>\s*<td>2.500</td>", page), page
        assert "50 % of 2 (nominal 80 %)" in page
        overview = html(client.get("/", headers=HTML))
        row = re.search(rf">{UNTRAINED}</a>.*?</tr>", overview, re.S)
        assert row is not None
        assert "104.00" in row.group(0) and "lstm" in row.group(0)  # the latest interval
        assert "50 %" in row.group(0) and "<td>2</td>" in row.group(0)
    finally:
        app.extensions["stockpred"].close()
