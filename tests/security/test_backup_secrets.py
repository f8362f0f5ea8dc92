"""Secrets through backup and restore: owner-only backups, 600 secret files on both sides, a
rotated secret never reverted silently, and a monitor that flags a readable secret file."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from stockpred.ops.provision import run_setup
from stockpred.paths import DataTree
from stockpred.settings import Settings, load_settings, read_env_file
from stockpred.storage.backup import create_backup
from stockpred.storage.monitor import build_report
from stockpred.storage.restore import restore_backup
from tests.support import BIN, ROOT

TOKEN = "STOCKPRED_API_TOKEN"
DAY = timedelta(days=1)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def tree(settings: Settings) -> DataTree:
    """A set-up tree (persistent.env with generated secrets) with a model pointer."""
    built = DataTree.from_settings(settings)
    (built.ml_models / "NVDA").mkdir(parents=True)
    (built.ml_models / "NVDA" / "current").write_text("v1\n")
    return built


def rotate_token(tree: DataTree, token: str) -> None:
    """Replace the API token line in persistent.env, as an operator rotating it would."""
    lines = [
        f"{TOKEN}={token}" if line.startswith(f"{TOKEN}=") else line
        for line in tree.persistent_env.read_text().splitlines()
    ]
    tree.persistent_env.write_text("\n".join(lines) + "\n")
    os.chmod(tree.persistent_env, 0o600)


def test_backups_and_every_file_beside_them_are_owner_only(tree: DataTree) -> None:
    key = Fernet.generate_key().decode()
    create_backup(tree, categories=["config"])
    create_backup(tree, categories=["config", "models"], key=key, encrypt=True)
    (tree.ml_models / "NVDA" / "current").write_text("v9\n")
    restored = restore_backup(tree, categories=["models"], key=key)
    assert restored.safety_backup is not None
    assert mode(tree.backups) == 0o700
    files = [p for p in tree.backups.iterdir() if p != tree.storage_lock]
    assert len(files) >= 9, files  # 3 backups x (archive, metadata, manifest sidecar)
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}


class SnapshotRedis:
    """A Redis that keeps its data in the tree and whose BGSAVE finishes at once."""

    def __init__(self, tree: DataTree) -> None:
        self.tree, self.saves = tree, 0

    def config_get(self, name: str) -> dict[str, str]:
        return {"dir": str(self.tree.redis)}

    def lastsave(self) -> int:
        return self.saves

    def bgsave(self) -> None:
        self.saves += 1

    def info(self, section: str) -> dict[str, object]:
        return {"rdb_bgsave_in_progress": 0, "rdb_last_bgsave_status": "ok"}


def test_a_staged_redis_snapshot_is_owner_only(tree: DataTree) -> None:
    tree.redis_dump.write_bytes(b"REDIS0011 snapshot")
    name = create_backup(tree, categories=["redis"], redis_client=SnapshotRedis(tree)).info.name
    tree.redis_dump.unlink()
    result = restore_backup(tree, name=name, categories=["redis"])
    assert len(result.staged) == 1
    staged = Path(result.staged[0])
    assert staged.parent == tree.backups and staged.read_bytes() == b"REDIS0011 snapshot"
    assert mode(staged) == 0o600


def test_an_old_0755_backups_folder_and_its_0644_files_are_tightened(tree: DataTree) -> None:
    create_backup(tree, categories=["config"])
    os.chmod(tree.backups, 0o755)
    for path in tree.backups.iterdir():
        os.chmod(path, 0o644)
    create_backup(tree, categories=["config"])
    assert mode(tree.backups) == 0o700
    exposed = [
        p.name for p in tree.backups.iterdir() if p != tree.storage_lock and mode(p) != 0o600
    ]
    assert exposed == []


def test_setup_makes_the_backups_folder_owner_only(settings: Settings) -> None:
    tree = DataTree.from_settings(settings)
    assert mode(tree.backups) == 0o700
    os.chmod(tree.backups, 0o755)
    report = run_setup(settings)
    assert report.tightened_dirs == [tree.backups]
    assert mode(tree.backups) == 0o700


def test_secret_files_keep_600_through_backup_and_restore(tree: DataTree) -> None:
    assert mode(tree.persistent_env) == 0o600
    result = create_backup(tree, categories=["config"])
    with tarfile.open(result.path) as tar:
        member = tar.getmember("data/config/persistent.env")
    assert member.mode == 0o600
    before = tree.persistent_env.read_bytes()
    tree.persistent_env.unlink()
    restore_backup(tree, categories=["config"])
    assert tree.persistent_env.read_bytes() == before
    assert mode(tree.persistent_env) == 0o600
    assert mode(tree.redis_conf) == 0o644, "files that are not secret keep the usual 644"


def test_a_rotated_secret_is_kept_and_reported_by_default(
    tree: DataTree, caplog: pytest.LogCaptureFixture
) -> None:
    old_token = read_env_file(tree.persistent_env)[TOKEN]
    with tree.persistent_env.open("a") as env:
        env.write("LOG_LEVEL=DEBUG\n")
    name = create_backup(tree, categories=["config"]).info.name
    rotate_token(tree, "rotated-token-0123456789abcdefghijkl")
    text = tree.persistent_env.read_text().replace("LOG_LEVEL=DEBUG", "LOG_LEVEL=WARNING")
    tree.persistent_env.write_text(text)
    with caplog.at_level(logging.WARNING, logger="stockpred.storage.restore"):
        result = restore_backup(tree, name=name, categories=["config"])
    values = read_env_file(tree.persistent_env)
    assert values[TOKEN] == "rotated-token-0123456789abcdefghijkl" != old_token
    assert values["LOG_LEVEL"] == "DEBUG", "the rest of the file is the backup's"
    assert result.secrets_differed == [TOKEN] and result.secrets_kept == [TOKEN]
    assert (
        TOKEN in caplog.text and "rotated-token" not in caplog.text and old_token not in caplog.text
    )
    assert mode(tree.persistent_env) == 0o600


def test_the_backups_secrets_come_back_only_when_asked_and_are_reported(tree: DataTree) -> None:
    old_token = read_env_file(tree.persistent_env)[TOKEN]
    name = create_backup(tree, categories=["config"]).info.name
    rotate_token(tree, "rotated-token-0123456789abcdefghijkl")
    result = restore_backup(tree, name=name, categories=["config"], restore_secrets=True)
    assert read_env_file(tree.persistent_env)[TOKEN] == old_token
    assert result.secrets_differed == [TOKEN] and result.secrets_kept == []


def stockpred(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "stockpred"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_operators_restore_command_keeps_a_rotated_token_and_says_so(
    data_env: dict[str, str],
) -> None:
    """`stockpred storage backup` then `restore`, as an operator runs them."""
    assert stockpred(["setup", "-q"], data_env).returncode == 0
    tree = DataTree.from_settings(load_settings(data_env))
    assert stockpred(["storage", "backup", "--categories", "config"], data_env).returncode == 0
    rotate_token(tree, "rotated-token-0123456789abcdefghijkl")
    done = stockpred(["storage", "restore", "--categories", "config"], data_env)
    assert done.returncode == 0, done.stderr
    assert f"Kept the current {TOKEN}" in done.stderr
    assert read_env_file(tree.persistent_env)[TOKEN] == "rotated-token-0123456789abcdefghijkl"
    assert mode(tree.persistent_env) == 0o600
    assert mode(tree.backups) == 0o700
    assert "rotated-token" not in done.stdout + done.stderr


@pytest.mark.parametrize("readable", [0o644, 0o640, 0o604])
def test_the_monitor_flags_a_secret_file_others_can_read(tree: DataTree, readable: int) -> None:
    create_backup(tree, categories=["models"])
    healthy = {c.name: c for c in build_report(tree, max_backup_age=DAY).checks}
    assert healthy["secret_files"].ok, healthy["secret_files"]
    os.chmod(tree.persistent_env, readable)
    checks = {c.name: c for c in build_report(tree, max_backup_age=DAY).checks}
    assert not checks["secret_files"].ok
    assert "persistent.env" in checks["secret_files"].detail


def test_the_monitor_flags_readable_backups(tree: DataTree) -> None:
    result = create_backup(tree, categories=["models"])
    os.chmod(result.path, 0o644)
    os.chmod(tree.backups, 0o755)
    report = build_report(tree, max_backup_age=DAY)
    checks = {c.name: c for c in report.checks}
    assert not report.ok
    assert not checks["secret_files"].ok and result.path.name in checks["secret_files"].detail
    assert not checks["dir:backups"].ok and "700" in checks["dir:backups"].detail
