"""Forged backup pairs (archive + metadata, checksums made to match) write nothing a restore
did not verify in the same run, nowhere the tree's path→category map does not allow."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask.testing import FlaskClient

from stockpred.paths import DataTree
from stockpred.settings import Settings
from stockpred.storage.backup import create_backup
from stockpred.storage.errors import BackupError
from stockpred.storage.restore import restore_backup
from stockpred.storage.service import StorageService
from tests.support import wait_for

FORGED = "stock_prediction_backup_20990101_000000"
OTHER = "stock_prediction_backup_20990101_000001"
PAYLOAD = b"STOCKPRED_API_TOKEN=attacker\n"


def entry(path: str, data: bytes, category: str, stored_in: str = FORGED) -> dict[str, Any]:
    """A manifest entry whose checksum matches `data`."""
    return {
        "path": path,
        "size": len(data),
        "mtime": 0,
        "sha256": hashlib.sha256(data).hexdigest(),
        "category": category,
        "stored_in": stored_in,
    }


def tar_bytes(members: dict[str, bytes], entries: list[dict[str, Any]] | None) -> bytes:
    """A gzip tar of `members`, closed by a manifest of `entries` (none when None)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if entries is not None:
            manifest = json.dumps({"files": entries}).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(manifest)
            tar.addfile(info, io.BytesIO(manifest))
    return buffer.getvalue()


def forge(
    backups: Path,
    name: str,
    archive: bytes,
    *,
    file: str | None = None,
    meta_name: str | None = None,
    categories: list[str] | None = None,
    depends_on: list[str] | None = None,
) -> None:
    """Write `archive` and metadata that agrees with it (checksum, size) into backups/."""
    file = file or f"{name}.tar.gz"
    (backups / file).write_bytes(archive)
    meta = {
        "name": meta_name or name,
        "file": file,
        "kind": "full",
        "created_at": "2000-01-01T00:00:00+00:00",
        "categories": categories or ["models", "config", "stock_data", "redis"],
        "files": 1,
        "stored_files": 1,
        "bytes": 5,
        "size": len(archive),
        "sha256": hashlib.sha256(archive).hexdigest(),
        "encrypted": False,
        "depends_on": depends_on or [],
    }
    (backups / f"{name}.json").write_text(json.dumps(meta))


@pytest.fixture
def tree(settings: Settings) -> DataTree:
    """A set-up tree with a published model pointer and the backups folder in place."""
    built = DataTree.from_settings(settings)
    (built.ml_models / "NVDA").mkdir(parents=True)
    (built.ml_models / "NVDA" / "current").write_text("v1\n")
    built.backups.mkdir(parents=True, exist_ok=True)
    return built


def test_an_entry_stored_in_an_archive_outside_backups_is_refused(tree: DataTree) -> None:
    """stored_in names a backup the chain does not hold, whose metadata points outside."""
    pwned = b"pwned\n"
    outside = tree.root.parent / "outside.tar.gz"
    outside.write_bytes(tar_bytes({"data/ml_models/NVDA/current": pwned}, None))
    forge(tree.backups, OTHER, outside.read_bytes(), file="../../outside.tar.gz")
    manifest = [entry("ml_models/NVDA/current", pwned, "models", stored_in=OTHER)]
    forge(tree.backups, FORGED, tar_bytes({}, manifest))
    with pytest.raises(BackupError):
        restore_backup(tree, name=FORGED)
    assert (tree.ml_models / "NVDA" / "current").read_text() == "v1\n"


def test_a_base_whose_metadata_points_outside_backups_is_refused(tree: DataTree) -> None:
    """Even in the chain, an archive is only ever `backups/<its name>.tar.gz[.enc]`."""
    pwned = b"pwned\n"
    outside = tree.root.parent / "outside.tar.gz"
    outside.write_bytes(tar_bytes({"data/ml_models/NVDA/current": pwned}, None))
    forge(tree.backups, OTHER, outside.read_bytes(), file="../../outside.tar.gz")
    manifest = [entry("ml_models/NVDA/current", pwned, "models", stored_in=OTHER)]
    forge(tree.backups, FORGED, tar_bytes({}, manifest), depends_on=[OTHER])
    with pytest.raises(BackupError):
        restore_backup(tree, name=FORGED)
    assert (tree.ml_models / "NVDA" / "current").read_text() == "v1\n"


def test_a_parent_path_in_the_manifest_is_refused(tree: DataTree) -> None:
    escape = tree.root.parent / "escape.txt"
    forge(tree.backups, OTHER, tar_bytes({"data/../escape.txt": PAYLOAD}, None))
    manifest = [entry("../escape.txt", PAYLOAD, "config", stored_in=OTHER)]
    forge(tree.backups, FORGED, tar_bytes({}, manifest), categories=["config"])
    with pytest.raises(BackupError):
        restore_backup(tree, name=FORGED)
    assert not escape.exists()


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("config/persistent.env", "models"),
        ("redis/appendonly.aof", "models"),
        ("supervisor/supervisord.conf", "config"),
        ("backups/stock_prediction_backup_20990101_000002.json", "config"),
    ],
)
def test_a_file_labelled_with_another_category_is_refused(
    tree: DataTree, path: str, label: str
) -> None:
    before = tree.persistent_env.read_bytes()
    forge(tree.backups, FORGED, tar_bytes({f"data/{path}": PAYLOAD}, [entry(path, PAYLOAD, label)]))
    with pytest.raises(BackupError, match="failed verification"):
        restore_backup(tree, name=FORGED, categories=[label])
    assert tree.persistent_env.read_bytes() == before
    assert not (tree.root / path).exists() or (tree.root / path).read_bytes() != PAYLOAD


def test_a_staging_name_from_metadata_cannot_leave_backups(tree: DataTree) -> None:
    """The metadata's name becomes the staged Redis snapshot's file name: `/` and `..` in it."""
    weird = f"{FORGED}/../../../escape/../{FORGED}"
    dump = b"REDIS0011 forged"
    manifest = [entry("redis/dump.rdb", dump, "redis", stored_in=weird)]
    forge(
        tree.backups,
        FORGED,
        tar_bytes({"data/redis/dump.rdb": dump}, manifest),
        meta_name=weird,
        categories=["redis"],
    )
    with pytest.raises(BackupError):
        restore_backup(tree, name=FORGED, categories=["redis"])
    outside = [p for p in tree.root.parent.rglob("*dump.rdb") if tree.backups not in p.parents]
    assert outside == []
    assert not (tree.root.parent / "escape").exists()


def test_a_member_larger_than_its_manifest_lists_is_refused_unread(tree: DataTree) -> None:
    """A decompression bomb's shape: a small declared size, a huge member (checksum matching)."""
    bomb = bytes(32 * 1024 * 1024)
    path = "stock_data/historical/NVDA/daily.parquet"
    lying = {**entry(path, bomb, "stock_data"), "size": 5}
    forge(tree.backups, FORGED, tar_bytes({f"data/{path}": bomb}, [lying]))
    with pytest.raises(BackupError, match="failed verification"):
        restore_backup(tree, name=FORGED)
    assert not (tree.root / path).exists()


def test_a_large_member_is_streamed_never_held_whole_in_memory(tree: DataTree) -> None:
    large = bytes(40 * 1024 * 1024)
    path = "stock_data/historical/NVDA/daily.parquet"
    forge(
        tree.backups, FORGED, tar_bytes({f"data/{path}": large}, [entry(path, large, "stock_data")])
    )
    del large
    tracemalloc.start()
    try:
        restore_backup(tree, name=FORGED, categories=["stock_data"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (tree.root / path).stat().st_size == 40 * 1024 * 1024
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB for a 40 MiB member"


def test_an_unencrypted_backup_is_refused_when_a_key_is_set(
    settings: Settings, tree: DataTree
) -> None:
    """Anyone able to write backups/ can make a plain archive; only the key can seal one."""
    plain = create_backup(tree, categories=["models"]).info.name
    (tree.ml_models / "NVDA" / "current").write_text("v9\n")
    keyed = StorageService(
        settings.model_copy(update={"backup_encryption_key": Fernet.generate_key().decode()})
    )
    with pytest.raises(BackupError, match="not encrypted"):
        keyed.restore(name=plain)
    assert (tree.ml_models / "NVDA" / "current").read_text() == "v9\n"


def test_an_unencrypted_backup_restores_with_a_key_when_explicitly_allowed(
    settings: Settings, tree: DataTree
) -> None:
    plain = create_backup(tree, categories=["models"]).info.name
    (tree.ml_models / "NVDA" / "current").write_text("v9\n")
    keyed = StorageService(
        settings.model_copy(update={"backup_encryption_key": Fernet.generate_key().decode()})
    )
    result = keyed.restore(name=plain, allow_unencrypted=True)
    assert result["changed"] == ["ml_models/NVDA/current"]
    assert (tree.ml_models / "NVDA" / "current").read_text() == "v1\n"


def test_a_forged_pair_is_refused_by_the_real_maintenance_worker(
    api: FlaskClient, auth: dict[str, str], worker_settings: Settings
) -> None:
    """Through the path the service uses: HTTP → Redis → maintenance worker → restore."""
    tree = DataTree.from_settings(worker_settings)
    before = tree.persistent_env.read_bytes()
    # Dated long ago, and removed afterwards: the session's other tests use the newest backup.
    name = "stock_prediction_backup_20000101_000000"
    path = "config/persistent.env"
    manifest = [entry(path, PAYLOAD, "models", stored_in=name)]
    forge(tree.backups, name, tar_bytes({f"data/{path}": PAYLOAD}, manifest))
    try:
        response = api.post(
            "/api/v1/storage/restore", json={"backup": name, "categories": ["models"]}, headers=auth
        )
        assert response.status_code == 202, response.get_json()
        task_id = response.get_json()["task_id"]

        def finished() -> dict[str, Any] | None:
            job: dict[str, Any] = api.get(f"/api/v1/tasks/{task_id}").get_json()
            return job if job["state"] in {"succeeded", "failed"} else None

        job = wait_for(finished, 120, interval=0.2, what="the restore job")
    finally:
        for forged in tree.backups.glob(f"{name}*"):
            forged.unlink()
        tree.persistent_env.write_bytes(before)
    assert job["state"] == "failed", job
    assert "belongs to 'config'" in json.dumps(job["error"])
    assert tree.persistent_env.read_bytes() == before
