"""Redis SIGKILLed while a training and a prediction run: both finish, nothing runs twice.

One `make run` for the module, a model trained once. Then a longer training of the same symbol
and an uncached prediction are started, and redis-server is killed while the training is in its
epochs. Workers keep running tasks through the broker's loss
(`worker_cancel_long_running_tasks_on_connection_loss = False`), so both jobs must reach a
final state within a bounded time, the training with one more published model version. The
message kombu kept unacknowledged for the training is then delivered again as kombu's restore
would do hours later, and must be acknowledged without training again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.process_set import RunningSet, http_get, process_set, wait_healthy
from tests.supervised_set import (
    all_running,
    post,
    redis_client,
    redis_server_pid,
    sigkill,
    supervisor_status,
    train,
)
from tests.support import wait_for

SYMBOL = "NVDA"
EPOCHS = 6  # enough for the training to be mid-epochs when Redis is killed
FINAL_WITHIN = 120.0  # seconds from the kill: the job's last epochs, publish and record
UNACKED = "unacked"  # kombu's Redis transport: delivered, unacknowledged messages by tag
FINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def running() -> Iterator[RunningSet]:
    """`make run` with a first model of SYMBOL published."""
    with process_set() as running:
        wait_healthy(running)
        train(running, SYMBOL, epochs=1)
        yield running


def job(running: RunningSet, job_id: str) -> dict[str, Any]:
    """The job record as the API answers it (the web reads it from Redis)."""
    status, body = http_get(f"{running.web}/api/v1/tasks/{job_id}")
    assert status == 200, body
    record: dict[str, Any] = json.loads(body)
    return record


def final_job(running: RunningSet, job_id: str, within: float) -> dict[str, Any]:
    """Wait until the job has a final state; its record."""

    def finished() -> dict[str, Any] | None:
        try:
            record = job(running, job_id)
        except (AssertionError, OSError, ValueError):
            return None  # the web answering 5xx while Redis restarts
        return record if record["state"] in FINAL else None

    found: dict[str, Any] = wait_for(finished, within, interval=0.5, what=f"job {job_id} final")
    return found


def unacked_message(running: RunningSet, task_id: str) -> tuple[str, str] | None:
    """(delivery tag, kombu's stored [message, exchange, routing key]) of an unacked task."""
    client = redis_client(running)
    try:
        for tag, stored in client.hgetall(UNACKED).items():
            if json.loads(stored)[0]["headers"]["id"] == task_id:
                return tag, stored
        return None
    finally:
        client.close()


def redeliver(running: RunningSet, stored: str) -> None:
    """Put a message back on its queue as kombu's restore of an unacked one does."""
    message, _exchange, routing_key = json.loads(stored)
    message["headers"]["redelivered"] = True
    message["properties"]["delivery_info"]["redelivered"] = True
    client = redis_client(running)
    try:
        client.rpush(routing_key, json.dumps(message))
    finally:
        client.close()


def versions(running: RunningSet) -> list[str]:
    status, body = http_get(f"{running.web}/api/v1/models/{SYMBOL}")
    assert status == 200, body
    return [v["version"] for v in json.loads(body)["versions"]]


def current(running: RunningSet) -> str:
    return str(json.loads(http_get(f"{running.web}/api/v1/models/{SYMBOL}")[1])["current"])


def main_log(running: RunningSet) -> str:
    path = running.data_dir / "logs" / "application" / "stock-prediction.log"
    return path.read_text(errors="replace")


def test_a_training_running_through_a_redis_sigkill_finishes_once_and_is_not_run_again(
    running: RunningSet,
) -> None:
    before = versions(running)
    status, answer = post(running, f"/api/v1/train/{SYMBOL}", {"epochs": EPOCHS, "force": True})
    assert status == 202, answer
    training = answer["task_id"]

    def in_epochs() -> dict[str, Any] | None:
        record = job(running, training)
        assert record["state"] not in FINAL, record
        epoch = (record.get("progress") or {}).get("epoch", 0)
        return record if record["state"] == "progress" and 1 <= epoch < EPOCHS - 1 else None

    wait_for(in_epochs, 180, interval=0.2, what="the training in its epochs")
    held = unacked_message(running, training)
    assert held is not None, "the running training's message is not kombu's unacked"
    status, answer = http_get(f"{running.web}/api/v1/predict/{SYMBOL}?horizon=9&async=true")
    assert status == 202, answer
    prediction = json.loads(answer)["task_id"]
    time.sleep(1.5)  # AOF everysec: the prediction's record and message are on disk
    killed = redis_server_pid(running)
    sigkill(killed)
    killed_at = time.monotonic()

    trained = final_job(running, training, FINAL_WITHIN)
    took = time.monotonic() - killed_at
    assert trained["state"] == "succeeded", (trained, running.tail(6000))
    new_version = trained["result"]["version"]
    predicted = final_job(running, prediction, FINAL_WITHIN)
    assert predicted["state"] == "succeeded", predicted
    after = versions(running)
    assert sorted(after) == sorted([*before, new_version]), (before, after)
    assert current(running) == new_version
    print(f"training final {took:.1f}s after the Redis SIGKILL")

    # The late redelivery: the ack may have been lost with the old connection (then kombu
    # holds the message) or sent on a new one; either way it comes back once, unrun.
    still_held = unacked_message(running, training)
    redeliver(running, (still_held or held)[1])
    wait_for(
        lambda: f"task {training} redelivered, but its job already ended" in main_log(running),
        60,
        what="the redelivered training acknowledged without running",
    )
    wait_for(lambda: unacked_message(running, training) is None, 30, what="the message acked")
    again = job(running, training)
    assert again["state"] == "succeeded" and again["finished_at"] == trained["finished_at"], again
    assert versions(running) == after
    assert current(running) == new_version
    trainings = [
        line
        for line in main_log(running).splitlines()
        if f"task_id={training} " in line and f": trained {SYMBOL}" in line
    ]
    assert len(trainings) == 1, trainings
    status, answer = http_get(f"{running.web}/api/v1/predict/{SYMBOL}?horizon=10")
    assert status == 200 and json.loads(answer)["model_version"] == new_version, answer

    programs = wait_for(lambda: all_running(running), 30, what="every program RUNNING")
    assert programs["redis"].pid != killed, supervisor_status(running)
    # Every web worker's broker connection died with the old Redis: its ping is asked again.
    for _ in range(6):
        status, body = http_get(f"{running.web}/api/v1/health")
        assert status == 200, body
