"""Backups and restores on real files: round trip, chains, rotation, encryption, refusals."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from stockpred.paths import DataTree
from stockpred.settings import Settings
from stockpred.storage.backup import create_backup
from stockpred.storage.catalog import list_backups, load_info, metadata_path, rotate
from stockpred.storage.errors import BackupError, InsufficientSpace
from stockpred.storage.restore import restore_backup
from stockpred.storage.service import StorageService
from stockpred.storage.verify import verify_backup


def fill(tree: DataTree) -> None:
    """A small but realistic tree: a model version, scalers, prices, config, logs."""
    version = tree.ml_models / "NVDA" / "v1"
    version.mkdir(parents=True)
    (version / "model.keras").write_bytes(bytes(range(256)) * 40)
    (version / "metadata.json").write_text('{"version": "v1"}')
    (tree.ml_models / "NVDA" / "current").write_text("v1\n")
    (tree.scalers / "NVDA" / "v1").mkdir(parents=True)
    (tree.scalers / "NVDA" / "v1" / "scaler.joblib").write_bytes(b"scaler" * 100)
    (tree.stock_historical / "NVDA").mkdir(parents=True)
    (tree.stock_historical / "NVDA" / "daily.parquet").write_bytes(b"parquet" * 500)
    (tree.logs_application / "api.log").write_text("GET / 200\n" * 50)


def digests(root: Path, sub: str) -> dict[str, str]:
    base = root / sub
    return {
        str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(base.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def tree(settings: Settings) -> DataTree:
    built = DataTree.from_settings(settings)
    fill(built)
    return built


def at(minutes: int) -> datetime:
    return datetime(2026, 11, 23, 2, 0, tzinfo=UTC) + timedelta(minutes=minutes)


def test_backup_wipe_restore_is_byte_identical(tree: DataTree) -> None:
    before = {s: digests(tree.root, s) for s in ("ml_models", "scalers", "stock_data", "config")}
    result = create_backup(tree)
    assert result.path.name.startswith("stock_prediction_backup_") and result.path.suffix == ".gz"
    assert result.info.files > 5 and (tree.backups / f"{result.info.name}.json").is_file()
    with tarfile.open(result.path) as tar:
        names = tar.getnames()
    assert names[-1] == "manifest.json" and not any("backups/" in n for n in names)
    shutil.rmtree(tree.ml_models)
    shutil.rmtree(tree.scalers)
    (tree.root / "config" / "redis.conf").write_text("edited after the backup")
    restored = restore_backup(tree)
    assert restored.added and restored.safety_backup is not None
    after = {s: digests(tree.root, s) for s in before}
    assert after == before


def test_a_dry_run_lists_changes_and_touches_nothing(tree: DataTree) -> None:
    create_backup(tree)
    (tree.ml_models / "NVDA" / "current").write_text("v9\n")
    (tree.stock_historical / "NVDA" / "daily.parquet").unlink()
    plan = restore_backup(tree, dry_run=True)
    assert plan.changed == ["ml_models/NVDA/current"]
    assert plan.added == ["stock_data/historical/NVDA/daily.parquet"]
    assert (tree.ml_models / "NVDA" / "current").read_text() == "v9\n"
    assert len(list_backups(tree.backups)) == 1, "a dry run takes no safety backup"


def test_a_selective_restore_touches_only_its_categories(tree: DataTree) -> None:
    create_backup(tree)
    (tree.ml_models / "NVDA" / "current").write_text("v9\n")
    (tree.root / "config" / "redis.conf").write_text("mine")
    restore_backup(tree, categories=["models"])
    assert (tree.ml_models / "NVDA" / "current").read_text() == "v1\n"
    assert (tree.root / "config" / "redis.conf").read_text() == "mine"


def test_an_incremental_chain_stores_only_changes_and_restores_the_full_state(
    tree: DataTree,
) -> None:
    full = create_backup(tree, now=at(0)).info
    (tree.stock_historical / "NVDA" / "daily.parquet").write_bytes(b"new prices" * 300)
    first = create_backup(tree, base=full.name, now=at(1)).info
    assert first.kind == "incremental" and first.stored_files == 1
    assert first.depends_on == [full.name]
    (tree.ml_models / "NVDA" / "current").write_text("v1 \n")
    second = create_backup(tree, base=first.name, now=at(2)).info
    assert second.stored_files == 1 and set(second.depends_on) == {full.name, first.name}
    expected = digests(tree.root, "stock_data") | digests(tree.root, "ml_models")
    shutil.rmtree(tree.stock_historical)
    shutil.rmtree(tree.ml_models)
    restore_backup(tree, name=second.name)
    assert digests(tree.root, "stock_data") | digests(tree.root, "ml_models") == expected


def test_rotation_keeps_the_newest_and_the_bases_they_need(tree: DataTree) -> None:
    full = create_backup(tree, now=at(0)).info
    for minute in range(1, 13):
        (tree.logs_application / "api.log").write_text(f"minute {minute}\n")
        create_backup(tree, base=full.name, now=at(minute))
    removed = rotate(tree.backups, keep=10)
    names = [i.name for i in list_backups(tree.backups)]
    assert full.name in names, "the base of kept incrementals survives"
    assert len(names) == 11 and len(removed) == 2
    assert verify_backup(tree, names[-1], None).ok


def test_an_encrypted_backup_round_trips_and_a_wrong_key_is_refused(tree: DataTree) -> None:
    key = Fernet.generate_key().decode()
    result = create_backup(tree, encrypt=True, key=key)
    assert result.path.name.endswith(".tar.gz.enc")
    assert b"scaler" not in result.path.read_bytes()
    assert verify_backup(tree, None, key).ok
    wrong = verify_backup(tree, None, Fernet.generate_key().decode())
    assert not wrong.ok and "wrong key" in wrong.problems[0]
    (tree.ml_models / "NVDA" / "current").write_text("v9\n")
    with pytest.raises(BackupError, match="wrong key"):
        restore_backup(tree, key=Fernet.generate_key().decode())
    assert (tree.ml_models / "NVDA" / "current").read_text() == "v9\n"
    restored = restore_backup(tree, key=key)
    assert (tree.ml_models / "NVDA" / "current").read_text() == "v1\n"
    safety = next(i for i in list_backups(tree.backups) if i.name == restored.safety_backup)
    assert safety.file.endswith(".tar.gz.enc"), "the safety copy of replaced files is encrypted"
    assert b"scaler" not in (tree.backups / safety.file).read_bytes()


def flip_one_byte(path: Path, offset_from_end: int) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_backup_is_refused_and_nothing_changes(tree: DataTree, damage: str) -> None:
    result = create_backup(tree)
    if damage == "flip":
        flip_one_byte(result.path, 200)
    else:
        result.path.write_bytes(result.path.read_bytes()[: result.info.size // 2])
    (tree.ml_models / "NVDA" / "current").write_text("v9\n")
    before = digests(tree.root, "ml_models")
    assert not verify_backup(tree, None, None).ok
    with pytest.raises(BackupError, match="failed verification"):
        restore_backup(tree)
    assert digests(tree.root, "ml_models") == before
    assert len(list_backups(tree.backups)) == 1


def positions_that_break_the_stream(archive: bytes) -> list[int]:
    """Offsets where one flipped bit makes zlib itself fail (not just a wrong checksum)."""
    found = []
    for offset in range(10, len(archive) - 8):
        damaged = bytearray(archive)
        damaged[offset] ^= 0x01
        try:
            zlib.decompress(bytes(damaged), wbits=31)
        except zlib.error as exc:
            if "incorrect data check" not in str(exc):
                found.append(offset)
    return found


def test_a_stream_zlib_cannot_decode_is_a_refusal_not_a_traceback(tree: DataTree) -> None:
    """zlib.error is not an OSError: a flip in a block header must still read as damage."""
    # Incompressible bytes make stored blocks, whose length fields are what CI once hit.
    (tree.stock_historical / "NVDA" / "noise.bin").write_bytes(
        hashlib.shake_256(b"incompressible").digest(3000)
    )
    result = create_backup(tree)
    original = result.path.read_bytes()
    offsets = positions_that_break_the_stream(original)
    assert offsets, "the archive has block headers to damage"
    (tree.ml_models / "NVDA" / "current").write_text("v9\n")
    before = digests(tree.root, "ml_models")
    meta = metadata_path(tree.backups, result.info.name)
    for offset in offsets[:: max(1, len(offsets) // 6)]:
        damaged = bytearray(original)
        damaged[offset] ^= 0x01
        result.path.write_bytes(bytes(damaged))
        # Make the archive checksum agree, as if the damage came before it was taken, so that
        # verification has to find it by reading the stream.
        raw = json.loads(meta.read_text())
        raw["sha256"] = hashlib.sha256(bytes(damaged)).hexdigest()
        meta.write_text(json.dumps(raw))
        check = verify_backup(tree, None, None)
        assert not check.ok and check.problems, offset
        with pytest.raises(BackupError, match="failed verification"):
            restore_backup(tree)
        assert digests(tree.root, "ml_models") == before


def evil_archive(tree: DataTree, member_name: str, kind: bytes = tarfile.REGTYPE) -> str:
    """A backup whose archive tries to write outside the tree (metadata made to match)."""
    name = "stock_prediction_backup_20990101_000000"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(member_name)
        info.type = kind
        payload = b"owned"
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        manifest = json.dumps(
            {
                "files": [
                    {
                        "path": member_name.removeprefix("data/"),
                        "size": 5,
                        "mtime": 0,
                        "sha256": hashlib.sha256(b"owned").hexdigest(),
                        "category": "config",
                        "stored_in": name,
                    }
                ]
            }
        ).encode()
        entry = tarfile.TarInfo("manifest.json")
        entry.size = len(manifest)
        tar.addfile(entry, io.BytesIO(manifest))
    archive = tree.backups / f"{name}.tar.gz"
    archive.write_bytes(buffer.getvalue())
    meta = {
        "name": name,
        "file": archive.name,
        "kind": "full",
        "created_at": at(0).isoformat(),
        "categories": ["config"],
        "files": 1,
        "stored_files": 1,
        "bytes": 5,
        "size": archive.stat().st_size,
        "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
        "encrypted": False,
    }
    (tree.backups / f"{name}.json").write_text(json.dumps(meta))
    return name


@pytest.mark.parametrize(
    ("member", "kind"),
    [
        ("data/../../evil.txt", tarfile.REGTYPE),
        ("/etc/evil.txt", tarfile.REGTYPE),
        ("data/config/link", tarfile.SYMTYPE),
        ("data/config/dev", tarfile.CHRTYPE),
    ],
)
def test_path_traversal_links_and_devices_are_refused(
    tree: DataTree, member: str, kind: bytes
) -> None:
    name = evil_archive(tree, member, kind)
    result = verify_backup(tree, name, None)
    assert not result.ok
    with pytest.raises(BackupError):
        restore_backup(tree, name=name)
    assert not (tree.root.parent.parent / "evil.txt").exists()
    assert not (tree.root / "config" / "link").exists()


def test_too_little_free_space_is_refused_before_writing(tree: DataTree) -> None:
    with pytest.raises(InsufficientSpace, match="free"):
        create_backup(tree, disk_free=lambda path: 1024)
    assert list(tree.backups.iterdir()) == []


def test_logs_older_than_the_window_are_left_out(tree: DataTree) -> None:
    import os
    import time

    old = tree.logs_application / "old.log"
    old.write_text("ancient\n")
    past = time.time() - 30 * 86400
    os.utime(old, (past, past))
    info = create_backup(tree, categories=["logs"], log_days=7).info
    assert info.files == 1
    assert load_info(tree.backups, info.name).categories == ["logs"]


def test_a_damaged_manifest_sidecar_falls_back_to_the_archive(tree: DataTree) -> None:
    full = create_backup(tree, now=at(0)).info
    assert full.manifest_file is not None
    (tree.backups / full.manifest_file).write_text('{"files": []}')
    (tree.stock_historical / "NVDA" / "daily.parquet").write_bytes(b"changed" * 10)
    incremental = create_backup(tree, base=full.name, now=at(1)).info
    assert incremental.stored_files == 1, "the intact archive manifest was used"
    rotate(tree.backups, keep=1)
    names = {p.name for p in tree.backups.iterdir()}
    assert full.manifest_file in names, "a kept base keeps its sidecar"


def test_the_next_backup_removes_what_a_killed_backup_left(settings: Settings) -> None:
    tree = DataTree.from_settings(settings)
    fill(tree)
    partial = tree.backups / ".stock_prediction_backup_20261129_010000.tar.gz.x1.partial"
    partial.write_bytes(b"half an archive")
    result = StorageService(settings).backup(categories=["config"])
    assert not partial.exists()
    assert verify_backup(tree, result["name"], None).ok


def test_a_restore_without_room_for_its_files_is_refused_before_writing(tree: DataTree) -> None:
    name = create_backup(tree).info.name
    shutil.rmtree(tree.ml_models)
    with pytest.raises(InsufficientSpace, match="nothing was restored"):
        restore_backup(tree, name=name, disk_free=lambda path: 1024)
    assert not tree.ml_models.exists()
    assert len(list_backups(tree.backups)) == 1, "no safety backup either"
