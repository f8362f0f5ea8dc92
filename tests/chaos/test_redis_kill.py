"""Redis SIGKILLed under prediction traffic, and crashed processes: the supervised set recovers.

One `make run` for the module. A model is trained once; then each round kills redis-server
with SIGKILL while clients ask for cached and uncached predictions, and checks that the set is
healthy and predicting again within 30 s with no operator, that every process is running, and
that what Redis held for over two seconds before the kill (AOF `everysec`) is still there.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.chaos.conftest import ChaosBudget
from tests.process_set import RunningSet, http_get, process_set, wait_healthy
from tests.supervised_set import (
    all_running,
    pid_of,
    predict,
    recover,
    redis_client,
    redis_server_pid,
    sigkill,
    supervisor_status,
    train,
)
from tests.support import wait_for

SYMBOL = "NVDA"
RECOVERY_BUDGET = 30.0  # seconds, the target
AOF_WINDOW = 2.5  # seconds: AOF `everysec` may lose the last second before a kill
PRIMED = (1, 2, 3)  # horizons cached before the first kill; traffic only reads the first
KEPT_PREFIXES = ("stockpred:job:", "stockpred:prediction:")
CLEANUP_EVERY = "5s"  # beat's cache cleanup, often enough to see beat send after a kill


@pytest.fixture(scope="module")
def running() -> Iterator[RunningSet]:
    """`make run` with a model trained and a few predictions cached."""
    with process_set({"CACHE_CLEANUP_INTERVAL": CLEANUP_EVERY}) as running:
        wait_healthy(running)
        TRAINED.update(train(running, SYMBOL, epochs=1))
        for horizon in PRIMED:
            status, answer = predict(running, SYMBOL, horizon)
            assert status == 200, answer
        yield running


TRAINED: dict[str, Any] = {}  # the job record of the module's training


class Traffic:
    """A client asking for a cached prediction and for varied (at first uncached) ones."""

    def __init__(self, running: RunningSet, varied: Iterator[int]) -> None:
        self.running = running
        self.varied = varied
        self.answers: list[tuple[float, str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for kind, horizon in (("cached", PRIMED[0]), ("varied", next(self.varied))):
                status = predict(self.running, SYMBOL, horizon)[0]
                self.answers.append((time.monotonic(), kind, status))
            self._stop.wait(0.5)

    def answered_after(self, moment: float) -> int:
        return sum(1 for at, _, _ in self.answers if at > moment)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def kept_keys(running: RunningSet) -> dict[str, str]:
    """Job records and cached predictions now in Redis, with their types."""
    client = redis_client(running)
    try:
        return {
            key: client.type(key)
            for prefix in KEPT_PREFIXES
            for key in client.scan_iter(match=f"{prefix}*", count=1000)
        }
    finally:
        client.close()


def missing_keys(running: RunningSet, keys: dict[str, str]) -> list[str]:
    client = redis_client(running)
    try:
        return [key for key in keys if not client.exists(key)]
    finally:
        client.close()


def log_size(running: RunningSet) -> int:
    return main_log(running).stat().st_size


def main_log(running: RunningSet) -> Path:
    return running.data_dir / "logs" / "application" / "stock-prediction.log"


def logged_since(running: RunningSet, offset: int) -> str:
    with main_log(running).open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def test_a_redis_sigkill_under_traffic_is_recovered_from_within_30s_losing_nothing_older(
    running: RunningSet, chaos_budget: ChaosBudget
) -> None:
    checks = iter(range(4, 4 + chaos_budget.rounds))  # asked first after each kill
    # Each horizon is uncached the first time traffic asks for it, cached after that.
    varied = itertools.cycle(range(4 + chaos_budget.rounds, 31))
    for round_number in range(chaos_budget.rounds):
        check_horizon = next(checks)
        before = all_running(running)
        assert before is not None, supervisor_status(running)
        with Traffic(running, varied) as traffic:
            time.sleep(1.0)
            kept = kept_keys(running)
            assert any(key.startswith("stockpred:prediction:") for key in kept)
            time.sleep(AOF_WINDOW)  # everything in `kept` is now older than the AOF's window
            offset = log_size(running)
            killed = redis_server_pid(running)
            sigkill(killed)
            killed_at = time.monotonic()
            recovery = recover(running, SYMBOL, check_horizon, killed_at)
            seconds = recovery.seconds
            assert seconds <= RECOVERY_BUDGET, (round_number, recovery, running.tail(6000))
            recovered_at = killed_at + seconds
            wait_for(
                lambda since=recovered_at: traffic.answered_after(since + 1.0) >= 4,
                60,
                what="traffic answered after the recovery",
            )
        after = wait_for(lambda: all_running(running), 30, what="every program RUNNING")
        assert set(after) == set(before)
        assert after["redis"].pid != killed
        lost = missing_keys(running, kept)
        assert not lost, f"round {round_number}: lost {lost}"
        answers = [(round(at - killed_at, 1), kind, status) for at, kind, status in traffic.answers]
        # 503 while Redis is away; 429 if a rate limit refuses the client: neither is a crash.
        assert {status for _, _, status in answers} <= {200, 202, 429, 503}, answers
        late = [answer for answer in answers if answer[0] > seconds + 1.0]
        assert late and all(status in (200, 202, 429) for _, _, status in late), (seconds, answers)
        wait_for(
            lambda since=offset: "Sending due task cache-cleanup" in logged_since(running, since),
            30,
            what="beat sending its cache cleanup after the kill",
        )
        status, body = http_get(f"{running.web}/api/v1/tasks/{TRAINED['id']}")
        assert status == 200 and b'"succeeded"' in body, body
        models = http_get(f"{running.web}/api/v1/models/{SYMBOL}")[1].decode()
        assert TRAINED["result"]["version"] in models


def test_a_killed_web_master_or_beat_is_restarted_by_the_supervisor(running: RunningSet) -> None:
    web = pid_of(running, "web")
    web_workers = psutil.Process(web).children()
    beat = pid_of(running, "beat")
    offset = log_size(running)
    sigkill(web)
    sigkill(beat)

    def restarted() -> dict[str, int] | None:
        programs = all_running(running)
        if programs is None or programs["web"].pid == web or programs["beat"].pid == beat:
            return None
        return {name: p.pid for name, p in programs.items() if p.pid is not None}

    wait_for(restarted, 90, interval=0.5, what="web and beat RUNNING again with new pids")
    wait_healthy(running, timeout=60)
    status, answer = predict(running, SYMBOL, PRIMED[0])
    assert status == 200, answer
    _, alive = psutil.wait_procs(web_workers, timeout=30)
    assert not alive, "the killed master's workers left behind"
    wait_for(
        lambda: "Sending due task cache-cleanup" in logged_since(running, offset),
        30,
        what="the restarted beat sending its cache cleanup",
    )
