"""The whole process set as `make run` starts it, for end-to-end and fault tests."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from stockpred.settings import read_env_file
from tests.conftest import clean_environ
from tests.support import ROOT, free_port, stop_group, wait_for

HEALTHY_WITHIN = 120  # seconds: TensorFlow's import in three workers on two cores


@dataclass
class RunningSet:
    """A running `make run`: its process, environment, data root, URLs and combined output."""

    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    data_dir: Path
    web: str
    flower: str
    output: Path

    def token(self) -> str:
        """The API token `make run`'s setup wrote into config/persistent.env."""
        return read_env_file(self.data_dir / "config" / "persistent.env")["STOCKPRED_API_TOKEN"]

    def tail(self, chars: int = 3000) -> str:
        """The end of the set's combined output (for assertion messages)."""
        return self.output.read_text(errors="replace")[-chars:]


def http_get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    """Status and body of a GET; HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@contextlib.contextmanager
def process_set(extra_env: Mapping[str, str] | None = None) -> Iterator[RunningSet]:
    """`make run` on free ports and a short temp data root (Unix socket paths are limited)."""
    with tempfile.TemporaryDirectory(prefix="sp-set-") as directory:
        data_dir = Path(directory) / "pd"
        env = clean_environ()
        env.update(
            STOCKPRED_DATA_DIR=str(data_dir),
            WEB_PORT=str(free_port()),
            FLOWER_PORT=str(free_port()),
            METRICS_PORT=str(free_port()),
        )
        env.update(extra_env or {})
        output = Path(directory) / "make-run.log"
        with output.open("wb") as log:
            proc = subprocess.Popen(
                ["make", "--no-print-directory", "run"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        running = RunningSet(
            proc,
            env,
            data_dir,
            f"http://127.0.0.1:{env['WEB_PORT']}",
            f"http://127.0.0.1:{env['FLOWER_PORT']}",
            output,
        )
        try:
            yield running
        finally:
            shut_down(proc)


def wait_healthy(running: RunningSet, timeout: float = HEALTHY_WITHIN) -> dict[str, object]:
    """Wait for /api/v1/health = 200 with every worker up; its body."""

    def healthy() -> dict[str, object] | None:
        if running.proc.poll() is not None:
            raise AssertionError(running.tail())
        status, body = http_get(f"{running.web}/api/v1/health")
        if status != 200:
            return None
        answer: dict[str, object] = json.loads(body)
        services = answer.get("services")
        up = isinstance(services, dict) and all(
            services.get(f"worker_{queue}") == "up"
            for queue in ("inference", "training", "maintenance")
        )
        return answer if up else None

    return wait_for(healthy, timeout, interval=0.5, what="GET /api/v1/health with all workers up")


def shut_down(proc: subprocess.Popen[bytes]) -> None:
    """Stop the set as Ctrl-C does, then kill anything left over (a child in its own session)."""
    if proc.poll() is None:
        try:
            family = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        stop_group(proc, signal.SIGINT, timeout=30)
        _, alive = psutil.wait_procs(family, timeout=10)
        for leftover in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()
