"""A flood of work-creating requests from several clients against the real process set.

While `chaos_budget.clients` clients (each its own address, behind a trusted proxy) send
uncached predictions, historical refreshes of many symbols, storage status refreshes and
authenticated training and backup requests for `chaos_budget.flood_seconds`, one more client
reads a cached prediction. Small limits and bounds make every refusal happen: cached answers
keep coming, no queue grows past its bound, 429s carry Retry-After, and the only 5xx answers
are 503s the OpenAPI document declares.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from stockpred.infra.redis_client import connect
from stockpred.settings import load_settings
from stockpred.telemetry.queue_facts import queue_depths
from tests.chaos.conftest import ChaosBudget
from tests.conftest import SMALL_ML_CONFIG
from tests.contract import assert_conforms, document
from tests.process_set import RunningSet, process_set, wait_healthy
from tests.support import wait_for

BOUNDS = {"inference": 6, "training": 1, "maintenance": 4}
LIMITS = {"RATE_LIMIT_READS": "1200/minute", "RATE_LIMIT_WORK": "15/minute"}
SLOW_CACHED_ANSWER = 5.0  # seconds: generous, two cores shared with TensorFlow trainings
TRAINABLE = ("TSLA", "AAPL", "MSFT", "AMZN")  # embedded data; NVDA is trained before the flood


@dataclass
class Answer:
    """One request's outcome."""

    method: str
    template: str
    status: int
    seconds: float
    headers: dict[str, str]
    body: Any


@dataclass
class Tally:
    """Every answer of the flood, from every thread."""

    answers: list[Answer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)


def request(
    base: str,
    method: str,
    path: str,
    template: str,
    address: str,
    token: str | None = None,
    body: dict[str, Any] | None = None,
) -> Answer:
    """One request from `address` (as the proxy forwards it); HTTP errors are answers."""
    headers = {"X-Forwarded-For": address}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            status, raw, got = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        status, raw, got = err.code, err.read(), dict(err.headers)
    seconds = time.monotonic() - started
    return Answer(method, template, status, seconds, got, json.loads(raw) if raw else None)


@pytest.fixture(scope="module")
def flooded_set() -> Iterator[RunningSet]:
    """`make run` behind a trusted proxy, with small limits and bounds and NVDA trained."""
    env = {
        "WEB_TRUSTED_PROXIES": "1",
        "PREDICT_WAIT": "2",
        "HISTORICAL_WAIT": "2",
        **LIMITS,
        **{f"QUEUE_MAX_{queue.upper()}": str(bound) for queue, bound in BOUNDS.items()},
    }
    with process_set(env) as running:
        wait_healthy(running)
        config = {**SMALL_ML_CONFIG, "epochs": 1, "max_horizon": 30}
        (running.data_dir / "ml_config.json").write_text(json.dumps(config))
        trained = request(
            running.web, "POST", "/api/v1/train/NVDA", "", "203.0.113.1", running.token(), {}
        )
        assert trained.status == 202, trained.body
        status_url = running.web + trained.body["status_url"]

        def finished() -> dict[str, Any] | None:
            with urllib.request.urlopen(status_url, timeout=10) as response:
                job: dict[str, Any] = json.loads(response.read())
            return job if job["state"] in ("succeeded", "failed") else None

        job = wait_for(finished, 300, interval=1, what="the NVDA training job")
        assert job["state"] == "succeeded", job
        first = request(running.web, "GET", "/api/v1/predict/NVDA", "", "203.0.113.2")
        if first.status == 202:  # a busy machine: the first model load outlasted PREDICT_WAIT
            status_url = running.web + first.body["status_url"]
            predicted = wait_for(finished, 120, interval=1, what="the first NVDA prediction")
            assert predicted["state"] == "succeeded", predicted
        cached = request(running.web, "GET", "/api/v1/predict/NVDA", "", "203.0.113.2")
        assert cached.status == 200 and cached.body["cached"] is True, cached.body
        yield running


def flood_requests(running: RunningSet, token: str) -> list[Callable[[str], Answer]]:
    """The work-creating requests a flooding client picks from."""
    web = running.web
    predict = "/api/v1/predict/{symbol}"
    historical = "/api/v1/historical/{symbol}"

    def uncached_prediction(address: str) -> Answer:
        horizon = random.randint(2, 30)
        path = f"/api/v1/predict/{random.choice(('NVDA', 'NVDA', 'TSLA'))}?horizon={horizon}"
        return request(web, "GET", path, predict, address)

    def refresh(address: str) -> Answer:
        symbol = "ZQ" + "".join(random.choices("ABCDEFGHJKLMNPRSTUVWXY", k=3))
        return request(web, "GET", f"/api/v1/historical/{symbol}?days=5", historical, address)

    def storage_refresh(address: str) -> Answer:
        path = "/api/v1/storage/status?refresh=true"
        return request(web, "GET", path, "/api/v1/storage/status", address)

    def train(address: str) -> Answer:
        symbol = random.choice(TRAINABLE)
        path = f"/api/v1/train/{symbol}"
        return request(web, "POST", path, "/api/v1/train/{symbol}", address, token, {})

    def backup(address: str) -> Answer:
        body = {"categories": ["config"]}
        path = "/api/v1/storage/backup"
        return request(web, "POST", path, path, address, token, body)

    return [
        uncached_prediction,
        uncached_prediction,
        refresh,
        refresh,
        storage_refresh,
        train,
        backup,
    ]


def run_flood(running: RunningSet, budget: ChaosBudget) -> tuple[Tally, Tally, dict[str, int]]:
    """Flood, read cached predictions and sample queue depths; (flood, reads, deepest)."""
    token = running.token()
    choices = flood_requests(running, token)
    flood, reads = Tally(), Tally()
    deepest: Counter[str] = Counter()
    stop = threading.Event()
    redis_client = connect(load_settings(running.env))

    def guarded(tally: Tally, body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except Exception as exc:  # reported by the test, never lost in a thread
                with tally.lock:
                    tally.failures.append(repr(exc))

        return run

    def flooder(index: int) -> None:
        address = f"198.51.100.{index + 10}"
        while not stop.is_set():
            flood.add(random.choice(choices)(address))

    def reader() -> None:
        while not stop.is_set():
            reads.add(
                request(
                    running.web,
                    "GET",
                    "/api/v1/predict/NVDA",
                    "/api/v1/predict/{symbol}",
                    "203.0.113.9",
                )
            )
            time.sleep(0.2)

    def sampler() -> None:
        while not stop.is_set():
            for queue, depth in queue_depths(redis_client).items():
                deepest[queue] = max(deepest[queue], depth)
            time.sleep(0.1)

    threads = [
        threading.Thread(target=guarded(flood, lambda i=i: flooder(i)))  # type: ignore[misc]
        for i in range(budget.clients)
    ]
    threads += [
        threading.Thread(target=guarded(reads, reader)),
        threading.Thread(target=guarded(flood, sampler)),
    ]
    for thread in threads:
        thread.start()
    time.sleep(budget.flood_seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    redis_client.close()
    return flood, reads, dict(deepest)


def test_a_flood_of_work_leaves_cached_predictions_answering_and_queues_bounded(
    flooded_set: RunningSet, chaos_budget: ChaosBudget
) -> None:
    flood, reads, deepest = run_flood(flooded_set, chaos_budget)
    assert not flood.failures and not reads.failures, (flood.failures, reads.failures)

    # The reader: every cached prediction answered, none slow.
    assert reads.answers
    assert {a.status for a in reads.answers} == {200}, Counter(a.status for a in reads.answers)
    assert all(a.body["cached"] is True for a in reads.answers)
    slowest = max(a.seconds for a in reads.answers)
    assert slowest < SLOW_CACHED_ANSWER, f"a cached prediction took {slowest:.2f} s"

    # The queues: never past their bounds.
    for queue, bound in BOUNDS.items():
        assert deepest.get(queue, 0) <= bound, (queue, deepest)

    # The flood: refused with 429 (Retry-After) or documented 503s, never another 5xx.
    statuses = Counter(a.status for a in flood.answers)
    errors = Counter(a.body["error"] for a in flood.answers if a.status >= 500)
    print(
        f"flood {dict(statuses)} 5xx {dict(errors)} deepest {deepest} slowest read {slowest:.3f}s"
    )
    assert statuses[429] > 0, statuses
    for answer in flood.answers:
        if answer.status == 429:
            assert int(answer.headers["Retry-After"]) >= 1
        if answer.status >= 500:
            assert answer.status == 503, (answer.template, answer.body)
            documented = document()["paths"][answer.template][answer.method.lower()]["responses"]
            assert "503" in documented, answer.template
        if answer.status >= 400:
            assert_conforms(answer.template, answer.method, answer.status, answer.body)
        if answer.status == 503 and answer.body["error"] == "queue full":
            assert int(answer.headers["Retry-After"]) >= 1

    # Still healthy afterwards.
    health = request(flooded_set.web, "GET", "/api/v1/health", "", "203.0.113.3")
    assert health.status in (200, 206), health.body
