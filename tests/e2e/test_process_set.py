"""`make run` as an operator runs it: healthy within 90 s, Flower behind auth, Ctrl-C stops all."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

import celeryconfig
from stockpred.paths import DataTree
from stockpred.settings import load_settings, read_env_file
from tests.process_set import RunningSet, http_get, process_set
from tests.support import ROOT, free_port, stop_group, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def running_set() -> Iterator[RunningSet]:
    """`make run` on free ports and a temp data root, shared by this module's tests."""
    with process_set() as running:
        yield running


def test_make_run_is_healthy_with_all_three_queues_live_within_90s(running_set: RunningSet) -> None:
    started = time.monotonic()

    def healthy() -> dict[str, object] | None:
        if running_set.proc.poll() is not None:
            raise AssertionError(running_set.output.read_text()[-3000:])
        status, body = http_get(f"{running_set.web}/api/v1/health")
        return json.loads(body) if status == 200 else None

    body = wait_for(healthy, 90, interval=0.5, what="GET /api/v1/health = 200")
    assert time.monotonic() - started < 90
    assert body["status"] == "healthy"
    services = body["services"]
    assert isinstance(services, dict)
    assert all(services[f"worker_{q}"] == "up" for q in ("inference", "training", "maintenance"))


def test_historical_prices_are_served_offline_from_the_embedded_data(
    running_set: RunningSet,
) -> None:
    for symbol in ("NVDA", "TSLA", "AAPL"):
        status, body = http_get(f"{running_set.web}/api/v1/historical/{symbol}?days=5")
        answer = json.loads(body)
        assert status == 200, answer
        assert answer["count"] == 5 and answer["source"] == "embedded"
    status, body = http_get(f"{running_set.web}/api/v1/historical/NVDA?days=5")
    assert json.loads(body)["cached"] is True
    assert http_get(f"{running_set.web}/api/v1/historical/INVALID!!")[0] == 400
    assert http_get(f"{running_set.web}/api/v1/historical/ZZZZZZ")[0] == 404


def test_train_then_predict_through_the_running_service(running_set: RunningSet) -> None:
    token = read_env_file(running_set.data_dir / "config" / "persistent.env")["STOCKPRED_API_TOKEN"]
    request = urllib.request.Request(
        f"{running_set.web}/api/v1/train/NVDA",
        data=b'{"epochs": 1}',
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        task_url = running_set.web + json.loads(response.read())["status_url"]

    def finished() -> dict[str, object] | None:
        body = json.loads(http_get(task_url)[1])
        return body if body["state"] in ("succeeded", "failed") else None

    job = wait_for(finished, 240, interval=1, what="the NVDA training job")
    assert job["state"] == "succeeded", job
    status, body = http_get(f"{running_set.web}/api/v1/predict/NVDA")
    prediction = json.loads(body)
    assert status == 200, prediction
    assert prediction["cached"] is False and "skill" in prediction["evaluation"]
    assert json.loads(http_get(f"{running_set.web}/api/v1/predict/NVDA")[1])["cached"] is True


def test_the_cli_trains_with_progress_and_predicts_through_the_service(
    running_set: RunningSet,
) -> None:
    import subprocess

    from tests.support import BIN

    trained = subprocess.run(
        [str(BIN / "stockpred"), "train", "TSLA", "--epochs", "2"],
        env=running_set.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "queued training job" in trained.stdout and '"published": true' in trained.stdout
    predicted = subprocess.run(
        [str(BIN / "stockpred"), "predict", "TSLA", "--horizon", "2"],
        env=running_set.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert json.loads(predicted.stdout)["horizon"] == 2
    listed = subprocess.run(
        [str(ROOT / "manage_ml_models.sh"), "list"],
        env=running_set.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0 and "TSLA" in listed.stdout


def make(target: str, running_set: RunningSet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", target, *args],
        cwd=ROOT,
        env=running_set.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_make_backfill_shows_a_scored_track_record_through_the_api(
    running_set: RunningSet,
) -> None:
    done = make("backfill", running_set, "SYMBOL=AAPL", "ARGS=--no-lstm --days 30")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "AAPL: 30 days 2013-01-17..2013-03-01, 30 forecasts stored" in done.stdout
    status, body = http_get(
        f"{running_set.web}/api/v1/predictions/accuracy/AAPL?origin=backfill&from=2013-01-01"
    )
    accuracy = json.loads(body)
    assert status == 200, accuracy
    # The last day's target (2013-03-04) has no bar in the embedded series yet.
    assert accuracy["n"] == 29 and accuracy["naive"]["mae"] > 0
    assert accuracy["coverage_n"] == 29 and 0 < accuracy["coverage"] <= 1
    status, body = http_get(f"{running_set.web}/api/v1/predictions/history/AAPL?limit=100")
    rows = json.loads(body)["forecasts"]
    assert len(rows) == 30 and {row["origin"] for row in rows} == {"backfill"}
    again = make("backfill", running_set, "SYMBOL=AAPL", "ARGS=--no-lstm --days 30")
    assert "0 forecasts stored (30 were already)" in again.stdout
    assert (
        json.loads(http_get(f"{running_set.web}/api/v1/predictions/history/AAPL?limit=100")[1])[
            "forecasts"
        ]
        == rows
    )


def test_backup_delete_models_restore_and_predict_again_without_restart(
    running_set: RunningSet,
) -> None:
    backup = make("storage-backup", running_set)
    assert backup.returncode == 0, backup.stderr[-2000:]
    archive = sorted((running_set.data_dir / "backups").glob("*.tar.gz"))[-1]
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "data/redis/dump.rdb" in names, "make run's Redis snapshot is in the backup"
    shutil.rmtree(running_set.data_dir / "ml_models")
    token = read_env_file(running_set.data_dir / "config" / "persistent.env")["STOCKPRED_API_TOKEN"]
    clear = urllib.request.Request(
        f"{running_set.web}/api/v1/cache/clear",
        data=b"{}",
        method="POST",
        headers={"Authorization": f"Bearer {token}"},
    )
    urllib.request.urlopen(clear, timeout=10).close()
    assert http_get(f"{running_set.web}/api/v1/predict/NVDA")[0] == 404
    restored = make("storage-restore", running_set, f"BACKUP={archive.name}")
    assert restored.returncode == 0, restored.stderr[-2000:]
    status, body = http_get(f"{running_set.web}/api/v1/predict/NVDA")
    assert status == 200, body
    flipped = bytearray(archive.read_bytes())
    flipped[len(flipped) // 2] ^= 0x01
    archive.write_bytes(bytes(flipped))
    before = sorted(p.name for p in (running_set.data_dir / "ml_models").rglob("*"))
    refused = make("storage-restore", running_set, f"BACKUP={archive.name}")
    assert refused.returncode != 0 and "failed verification" in refused.stderr
    assert sorted(p.name for p in (running_set.data_dir / "ml_models").rglob("*")) == before


def test_a_real_prometheus_scrapes_predictions_and_queue_depth(
    running_set: RunningSet, tmp_path: Path
) -> None:
    import yaml

    config = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())
    local = {
        "web": running_set.web,
        "workers": f"http://127.0.0.1:{running_set.env['METRICS_PORT']}",
        "flower": running_set.flower,
    }
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(ROOT / "docker" / "prometheus" / "alerts.yml")]
    config["scrape_configs"] = [
        {**job, "static_configs": [{"targets": [local[job["job_name"]].split("//")[1]]}]}
        for job in config["scrape_configs"]
        if job["job_name"] in local
    ]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    for url in local.values():  # every /metrics output is valid exposition format
        status, body = http_get(f"{url}/metrics")
        assert status == 200, url
        checked = subprocess.run(
            ["promtool", "check", "metrics"],
            input=body,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert b"error" not in (checked.stdout + checked.stderr).lower(), (
            url,
            checked.stderr[-2000:],
        )
    port = free_port()
    with (tmp_path / "prometheus.log").open("wb") as log:
        prometheus = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:

        def all_up() -> bool:
            targets = json.loads(http_get(f"{api}/targets")[1])["data"]["activeTargets"]
            return len(targets) == 3 and all(t["health"] == "up" for t in targets)

        wait_for(all_up, 60, interval=0.5, what="every scrape target up")
        assert http_get(f"{running_set.web}/api/v1/predict/NVDA")[0] == 200

        def query(expr: str) -> list[dict[str, Any]]:
            body = json.loads(http_get(f"{api}/query?query={urllib.parse.quote(expr)}")[1])
            result: list[dict[str, Any]] = body["data"]["result"]
            return result

        wait_for(lambda: query("sum(predictions_total) > 0"), 30, what="the prediction counter")
        depth = wait_for(lambda: query("stockpred_queue_depth"), 30, what="queue depth")
        assert {row["metric"]["queue"] for row in depth} == {"inference", "training", "maintenance"}
        assert query("flower_worker_online")
    finally:
        stop_group(prometheus)


def test_redis_listens_only_on_the_private_socket(running_set: RunningSet) -> None:
    sock = running_set.data_dir / "redis" / "redis.sock"
    assert sock.is_socket()
    assert oct(sock.stat().st_mode & 0o777) == "0o700"
    client = redis.Redis(unix_socket_path=str(sock))
    try:
        assert client.info("server")["tcp_port"] == 0
    finally:
        client.close()


def test_gunicorns_control_socket_is_this_data_roots_and_owner_only(
    running_set: RunningSet,
) -> None:
    sock = running_set.data_dir / "supervisor" / "gunicorn.ctl"
    assert sock.is_socket()
    assert oct(sock.stat().st_mode & 0o777) == "0o600"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(sock))  # this set's gunicorn answers on it


def test_flower_is_bound_to_loopback_and_asks_for_basic_auth(running_set: RunningSet) -> None:
    wait_for(lambda: http_get(running_set.flower)[0] in (200, 401), 30, what="Flower")
    assert http_get(running_set.flower)[0] == 401
    auth = read_env_file(running_set.data_dir / "config" / "persistent.env")["FLOWER_BASIC_AUTH"]
    token = base64.b64encode(auth.encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    assert http_get(f"{running_set.flower}/workers", headers)[0] == 200

    def three_workers() -> set[str] | None:
        status, body = http_get(f"{running_set.flower}/api/workers?refresh=1", headers)
        names = {name.split("@")[0] for name in json.loads(body)} if status == 200 else set()
        return names if {"inference", "training", "maintenance"} <= names else None

    wait_for(three_workers, 30, interval=1, what="Flower to list the three workers")
    assert http_get(f"{running_set.flower}/api/workers")[0] == 401
    listeners = {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN
        and c.laddr.port == int(running_set.flower.rsplit(":", 1)[1])
    }
    assert listeners == {("127.0.0.1", int(running_set.flower.rsplit(":", 1)[1]))}


def test_every_process_logs_under_persistent_data(running_set: RunningSet) -> None:
    app_logs = running_set.data_dir / "logs" / "application"
    wait_for(
        lambda: "GET /api/v1/health 200" in (app_logs / "api.log").read_text(),
        10,
        what="the health request in api.log",
    )
    everything = (app_logs / "stock-prediction.log").read_text()
    for role in ("inference@", "training@", "maintenance@", "beat", "web"):
        assert f"[{role}" in everything, role
    # Beat keeps its schedule and its lock in Redis (RedBeat), not in a file.
    client = redis.Redis.from_url(load_settings(running_set.env).redis_client_url)
    prefix = celeryconfig.REDBEAT_KEY_PREFIX
    wait_for(
        lambda: client.exists(f"{prefix}:lock") and client.zcard(f"{prefix}:schedule"),
        10,
        what="beat's lock and schedule in Redis",
    )
    client.close()


def test_ctrl_c_stops_every_process_and_redis_flushes_its_aof(running_set: RunningSet) -> None:
    settings = load_settings(running_set.env)
    client = redis.Redis.from_url(settings.redis_client_url)
    client.set("e2e:written-before-shutdown", "kept")
    client.close()
    root = psutil.Process(running_set.proc.pid)
    children = root.children(recursive=True)
    names = " ".join(" ".join(c.cmdline()) for c in children)
    for expected in ("redis-server", "gunicorn", "worker", "beat", "flower"):
        assert expected in names, expected
    os.killpg(running_set.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    assert running_set.proc.wait(timeout=30) is not None
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, [" ".join(p.cmdline()) for p in alive]
    tree = DataTree.from_settings(settings)
    aof_dir = tree.redis / "appendonlydir"
    aof_text = b"".join(p.read_bytes() for p in aof_dir.glob("*.aof"))
    assert b"e2e:written-before-shutdown" in aof_text
    assert not tree.redis_socket.exists()
