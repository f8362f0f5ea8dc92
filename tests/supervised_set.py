"""Working with a running `make run` under its supervisor: status, pids, training, predictions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import psutil
import redis

from stockpred.settings import load_settings
from tests.process_set import RunningSet, http_get
from tests.support import BIN, wait_for


@dataclass(frozen=True)
class Program:
    """One line of `stockpred ctl status`."""

    name: str
    full_name: str
    state: str
    pid: int | None


def ctl(running: RunningSet, *args: str) -> str:
    """What `stockpred ctl ARGS` prints for the running set."""
    out = subprocess.run(
        [str(BIN / "stockpred"), "ctl", *args],
        env=running.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return out.stdout + out.stderr


def supervisor_status(running: RunningSet) -> dict[str, Program]:
    """Every program of the set by its name (`redis`, `web`, ...), as supervisorctl reports it."""
    text = ctl(running, "status")
    programs = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        name = fields[0].rpartition(":")[2]
        pid = int(fields[3].rstrip(",")) if fields[1] == "RUNNING" else None
        programs[name] = Program(name, fields[0], fields[1], pid)
    if not programs:
        raise AssertionError(f"stockpred ctl status said nothing: {text}")
    return programs


def all_running(running: RunningSet) -> dict[str, Program] | None:
    """The programs when every one of them is RUNNING, else None."""
    programs = supervisor_status(running)
    return programs if all(p.state == "RUNNING" for p in programs.values()) else None


def pid_of(running: RunningSet, name: str) -> int:
    """The pid of a started program (RUNNING, or STARTING within its startsecs)."""
    full_name = supervisor_status(running)[name].full_name
    answer = ctl(running, "pid", full_name).strip()
    if not answer.isdigit() or answer == "0":
        raise AssertionError(f"{name} has no process: {answer}")
    return int(answer)


def redis_server_pid(running: RunningSet) -> int:
    """The redis-server process itself (`stockpred redis-server` execs it under the supervisor)."""
    pid = pid_of(running, "redis")
    assert "redis-server" in " ".join(psutil.Process(pid).cmdline())
    return pid


def sigkill(pid: int) -> None:
    """`kill -9 pid`."""
    os.kill(pid, signal.SIGKILL)


def redis_client(running: RunningSet) -> redis.Redis:
    """A direct client of the set's Redis (its private socket)."""
    url = load_settings(running.env).redis_client_url
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)


def post(running: RunningSet, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """An authenticated JSON POST; (status, answer)."""
    request = urllib.request.Request(
        running.web + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {running.token()}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def train(running: RunningSet, symbol: str, epochs: int) -> dict[str, Any]:
    """Train through the API and wait for the job; its finished record."""
    status, answer = post(running, f"/api/v1/train/{symbol}", {"epochs": epochs})
    assert status == 202, answer
    task_url = running.web + answer["status_url"]

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = json.loads(http_get(task_url)[1])
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None

    job = wait_for(finished, 300, interval=1, what=f"the {symbol} training job")
    assert job["state"] == "succeeded", job
    return job


def predict(running: RunningSet, symbol: str, horizon: int) -> tuple[int, dict[str, Any]]:
    """GET /api/v1/predict/{symbol}?horizon=...; (status, answer or {} when not JSON)."""
    status, body = http_get(f"{running.web}/api/v1/predict/{symbol}?horizon={horizon}")
    try:
        answer: dict[str, Any] = json.loads(body)
    except ValueError:
        answer = {}
    return status, answer


@dataclass
class Recovery:
    """When health first answered 200 and a new prediction first succeeded after a fault."""

    health_s: float | None = None
    prediction_s: float | None = None
    timeline: list[tuple[float, str, int]] | None = None

    @property
    def seconds(self) -> float:
        """Until both had happened (the set is back)."""
        assert self.health_s is not None and self.prediction_s is not None
        return max(self.health_s, self.prediction_s)


def recover(running: RunningSet, symbol: str, horizon: int, since: float) -> Recovery:
    """Poll health and a prediction not asked before until both have answered 200."""
    found = Recovery(timeline=[])
    assert found.timeline is not None

    def back() -> bool:
        if found.health_s is None:
            status = http_get(f"{running.web}/api/v1/health")[0]
            found.timeline.append((round(time.monotonic() - since, 2), "health", status))
            if status == 200:
                found.health_s = time.monotonic() - since
        if found.prediction_s is None:
            status = predict(running, symbol, horizon)[0]
            found.timeline.append((round(time.monotonic() - since, 2), "predict", status))
            if status == 200:
                found.prediction_s = time.monotonic() - since
        return found.health_s is not None and found.prediction_s is not None

    wait_for(back, 120, interval=0.2, what=f"health 200 and a new prediction: {found.timeline}")
    return found
