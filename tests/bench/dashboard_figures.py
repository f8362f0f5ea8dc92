"""Dashboard figures: the symbol page with five years of history, served and drawn.

Measured on the real process set (`make run` on free ports and a temp data root) with a
one-epoch NVDA model and its 1300 cached daily bars: (dashboard-server) the median time to
answer GET /symbols/NVDA over loopback (the server's render: templates, registry, ledger, the
embedded series), and (dashboard-browser) in Debian's chromium, the median time from navigation
start to the chart's first drawing (the page's `chart-drawn` performance mark), with the time to
the forecast drawn beside it. Each against a target a person does not notice as a wait.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from typing import Any

from playwright.sync_api import sync_playwright

from tests.bench.procs import say
from tests.bench.stats import figure, summarize
from tests.browser.conftest import CHROMIUM
from tests.process_set import http_get, process_set, wait_healthy
from tests.supervised_set import train

SYMBOL = "NVDA"
SERVER_SAMPLES = 40
BROWSER_SAMPLES = 8
SERVER_TARGET = "<= 0.25"  # seconds
BROWSER_TARGET = "<= 1.5"  # seconds


def _bars(page: str) -> int:
    """How many daily bars the page embeds for its chart."""
    found = re.search(
        r'<script type="application/json" id="chart-data"[^>]*>(.*?)</script>', page, re.S
    )
    assert found is not None, "no chart data on the page"
    return len(json.loads(found.group(1))["dates"])


def _server_seconds(url: str) -> list[float]:
    samples = []
    for _ in range(SERVER_SAMPLES):
        started = time.perf_counter()
        status, body = http_get(url, {"Accept": "text/html"})
        samples.append(time.perf_counter() - started)
        assert status == 200 and b'id="chart-data"' in body, status
    return samples


def _browser_marks(url: str) -> list[dict[str, float]]:
    marks = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for _ in range(BROWSER_SAMPLES):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()
                page.goto(url)
                page.wait_for_function(
                    "performance.getEntriesByName('forecast-drawn').length > 0", timeout=60_000
                )
                found = page.evaluate(
                    """() => Object.fromEntries(['chart-drawn', 'forecast-drawn']
                        .map((name) => [name, performance.getEntriesByName(name)[0].startTime]))"""
                )
                marks.append({name: float(ms) / 1000 for name, ms in found.items()})
                context.close()
        finally:
            browser.close()
    return marks


def dashboard_figures() -> list[dict[str, Any]]:
    """The server's and the browser's figures for the symbol page with five years of history."""
    with process_set() as running:
        wait_healthy(running)
        train(running, SYMBOL, epochs=1)
        url = f"{running.web}/symbols/{SYMBOL}"
        bars = _bars(http_get(url, {"Accept": "text/html"})[1].decode())
        say(f"symbol page of {SYMBOL} with {bars} daily bars")
        server = _server_seconds(url)
        marks = _browser_marks(url)
    chart = [m["chart-drawn"] for m in marks]
    forecast = [m["forecast-drawn"] for m in marks]
    return [
        figure(
            "dashboard-server: symbol page render with five years of history, median seconds",
            statistics.median(server),
            SERVER_TARGET,
            {"bars": bars, "seconds": summarize(server, 4), "over": "loopback HTTP, sequential"},
        ),
        figure(
            "dashboard-browser: navigation to the first chart in chromium, median seconds",
            statistics.median(chart),
            BROWSER_TARGET,
            {
                "bars": bars,
                "chart_seconds": summarize(chart, 3),
                "forecast_drawn_seconds": summarize(forecast, 3),
            },
        ),
    ]
