"""Disk full during a backup and during a training's publish, on the real process set.

The backups folder and the model folders each live on a small tmpfs of their own (BACKUP_PATH,
ML_MODEL_PATH, SCALERS_PATH), so filling one starves exactly the writer under test while Redis,
logs and the rest of the data root keep working. What the user sees (the job's error), what is
on disk (the previous backup or model intact, no partial file) and the free space are asserted.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import SMALL_ML_CONFIG
from tests.process_set import RunningSet, http_get, process_set, wait_healthy
from tests.support import wait_for

BACKUPS_MB = 160  # the backup's free-space check wants its size + 10 % + 50 MB
MODELS_MB = 16
RANDOM_MB = 30  # incompressible, so writing the archive takes a while and fills real space


@contextlib.contextmanager
def tmpfs(folder: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of `megabytes` mounted at `folder` for the block; always unmounted after."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0755", "tmpfs", str(folder)],
        check=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def free(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def fill(folder: Path) -> Path:
    """Write a file into `folder` until its file system has no byte left."""
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            chunk = b"\0" * size
            try:
                while True:
                    os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    assert free(folder) < 4096
    return filler


@pytest.fixture(scope="module")
def mounts() -> Iterator[dict[str, Path]]:
    """A tmpfs for the backups and one for the model folders, outside the set's data root."""
    with tempfile.TemporaryDirectory(prefix="sp-df-") as directory:
        base = Path(directory)
        with tmpfs(base / "backups", BACKUPS_MB), tmpfs(base / "models", MODELS_MB):
            yield {"backups": base / "backups", "models": base / "models"}


@pytest.fixture(scope="module")
def running(mounts: dict[str, Path]) -> Iterator[RunningSet]:
    """`make run` with its backups and models on the small file systems."""
    env = {
        "BACKUP_PATH": str(mounts["backups"]),
        "ML_MODEL_PATH": str(mounts["models"] / "ml_models"),
        "SCALERS_PATH": str(mounts["models"] / "scalers"),
    }
    with process_set(env) as started:
        wait_healthy(started)
        # A small network, so the two trainings below take seconds (read at each training).
        config = {**SMALL_ML_CONFIG, "epochs": 1}
        (started.data_dir / "ml_config.json").write_text(json.dumps(config))
        yield started


def post(running: RunningSet, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{running.web}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {running.token()}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def finished_job(running: RunningSet, queued: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Poll a job until it has an outcome; the job as the API shows it."""

    def outcome() -> dict[str, Any] | None:
        status, body = http_get(running.web + queued["status_url"])
        assert status == 200, body
        job: dict[str, Any] = json.loads(body)
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(outcome, timeout, interval=0.25, what=f"job {queued['task_id']}")


def writer_of(running: RunningSet, path: Path) -> psutil.Process | None:
    """The process of the set that has `path` open, if any."""
    for proc in psutil.Process(running.proc.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(f.path == str(path) for f in proc.open_files()):
                return proc
    return None


def assert_told_clearly(job: dict[str, Any], *words: str) -> None:
    assert job["state"] == "failed", job
    error = job["error"]
    assert error["kind"] == "disk_full", error
    assert "Traceback" not in json.dumps(job)
    for word in words:
        assert word in error["message"], error


def test_a_backup_the_disk_cannot_hold_fails_clearly_and_the_last_one_stays_good(
    running: RunningSet, mounts: dict[str, Path]
) -> None:
    backups = mounts["backups"]
    noise = running.data_dir / "logs" / "incompressible.log"
    noise.write_bytes(os.urandom(RANDOM_MB << 20))
    first = finished_job(running, post(running, "/api/v1/storage/backup", {}), 180)
    assert first["state"] == "succeeded", first
    good = sorted(p.name for p in backups.iterdir() if p.name != "filler.bin")
    before = free(backups)

    # The free-space check passes, then the disk fills while the archive is written: the test
    # pauses the writer as soon as its partial file appears, fills the disk, and lets it go on.
    queued = post(running, "/api/v1/storage/backup", {})
    # The archive's partial file (`.<name>.tar.gz.*.partial`), not the ledger's snapshot that
    # the backup takes into backups/ first and closes before it writes the archive.
    partial = wait_for(
        lambda: next(iter(backups.glob(".*.tar.gz*.partial")), None),
        60,
        interval=0.005,
        what="the second backup's partial archive",
    )
    writer = wait_for(lambda: writer_of(running, partial), 10, interval=0.01, what="its writer")
    writer.send_signal(signal.SIGSTOP)
    try:
        written = partial.stat().st_size
        filler = fill(backups)
    finally:
        writer.send_signal(signal.SIGCONT)
    assert written < RANDOM_MB << 20, "the archive was already written when the disk filled"
    job = finished_job(running, queued, 180)
    assert_told_clearly(job, "no space left", "partial files were removed")
    assert not list(backups.glob(".*.partial"))
    assert sorted(p.name for p in backups.iterdir() if p.name != "filler.bin") == good
    filler.unlink()
    assert abs(free(backups) - before) <= 64 << 10  # the partial archive's space came back

    # A disk already too full is refused before anything is written.
    filler = fill(backups)
    refused = finished_job(running, post(running, "/api/v1/storage/backup", {}), 120)
    filler.unlink()
    assert_told_clearly(refused, "backup needs about")
    assert sorted(p.name for p in backups.iterdir()) == good

    verified = finished_job(running, post(running, "/api/v1/storage/verify", {}), 120)
    assert verified["state"] == "succeeded" and verified["result"]["ok"] is True, verified
    assert verified["result"]["name"] == first["result"]["name"]
    noise.unlink()


def test_a_model_version_the_disk_cannot_hold_is_not_published_and_the_last_one_serves(
    running: RunningSet, mounts: dict[str, Path]
) -> None:
    models = mounts["models"]
    first = finished_job(running, post(running, "/api/v1/train/NVDA", {"epochs": 1}), 300)
    assert first["state"] == "succeeded", first
    version = first["result"]["version"]
    status, body = http_get(f"{running.web}/api/v1/predict/NVDA")
    assert status == 200 and json.loads(body)["model_version"] == version, body
    on_disk = sorted(str(p.relative_to(models)) for p in models.rglob("*"))
    before = free(models)

    filler = fill(models)
    try:
        queued = post(running, "/api/v1/train/NVDA", {"epochs": 1, "force": True})
        job = finished_job(running, queued, 300)
    finally:
        filler.unlink()
    assert_told_clearly(job, "no space left", f"the current version, {version}, is still served")
    assert sorted(str(p.relative_to(models)) for p in models.rglob("*")) == on_disk
    assert abs(free(models) - before) <= 64 << 10
    status, body = http_get(f"{running.web}/api/v1/predict/NVDA?horizon=2")  # not cached
    assert status == 200 and json.loads(body)["model_version"] == version, body
