"""Chromium (Debian's, driven by Playwright) against the whole process set on a throw-away root."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.conftest import SMALL_ML_CONFIG
from tests.process_set import RunningSet, http_get, process_set, wait_healthy
from tests.supervised_set import train
from tests.support import wait_for

CHROMIUM = "/usr/bin/chromium"
# Room for a browser's bursts of reads and the tests' actions: limits are tested elsewhere.
BROWSER_ENV = {
    "RATE_LIMIT_READS": "100000/minute",
    "RATE_LIMIT_WORK": "100000/minute",
    "RATE_LIMIT_MUTATIONS": "100000/minute",
}


@pytest.fixture(scope="session")
def running() -> Iterator[RunningSet]:
    """`make run` on free ports with small, real trainings (the suite's ml_config)."""
    with process_set(BROWSER_ENV) as started:
        wait_healthy(started)
        # Read at each training (tasks/context.py): in force from the first one on.
        config = started.data_dir / "ml_config.json"
        staged = config.with_suffix(".tmp")
        staged.write_text(json.dumps({**SMALL_ML_CONFIG, "epochs": 3}))
        os.replace(staged, config)
        yield started


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's chromium, headless (`make install` installs it; no browser download)."""
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: `make install` installs it (apt-get install chromium)")
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    yield launched
    launched.close()


def prices_cached(running: RunningSet, symbol: str) -> None:
    """Wait until the web serves the symbol's bars from its cache (a refresh queued once)."""

    def cached() -> bool:
        status, body = http_get(f"{running.web}/api/v1/historical/{symbol}?days=1")
        return status == 200 and json.loads(body)["count"] == 1

    wait_for(cached, 60, interval=0.5, what=f"{symbol}'s prices in the daily cache")


def ensure_trained(running: RunningSet, symbol: str) -> None:
    """A model for `symbol`: the operator's test trains it from the page; run alone, the API."""
    if http_get(f"{running.web}/api/v1/models/{symbol}")[0] != 200:
        train(running, symbol, epochs=1)
