"""Verifying a backup: its chain of archives, its manifest against the tree's map, checksums.

A backup is its own archive plus the archives its unchanged files live in (`depends_on`). Each
of them must be the plain file its metadata's name gives, directly in backups/, with the sha256
its metadata records. The manifest is read, not trusted: every entry's path must be one the
data tree's path→category map (`DataTree.backup_category`) files under the category the entry
claims, and name an archive of the chain. Then every member is read to the end and compared with
the manifest: a flipped byte, a truncated stream, a wrong key, a member that is not a plain file
under `data/`, a path with `..`, a member twice or of another size than listed is a problem.
Restoring is `stockpred.storage.restore`; it runs this first, in the same run.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stockpred.infra.files import sha256_file
from stockpred.paths import DataTree
from stockpred.storage.archive import FileEntry, check_archive, read_manifest
from stockpred.storage.catalog import BackupInfo, archive_path, load_info, resolve
from stockpred.storage.errors import BackupError


@dataclass
class VerifyResult:
    """The outcome of checking one backup and the archives it depends on."""

    name: str
    ok: bool
    archives: list[str]
    files: int
    bytes: int
    seconds: float
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CheckedBackup:
    """A verification's result with what it read: the manifest and the chain's archives."""

    result: VerifyResult
    manifest: list[FileEntry]
    archives: dict[str, Path]


def verify_backup(tree: DataTree, name: str | None, key: str | None) -> VerifyResult:
    """Check a backup (default: the newest) and every archive it depends on."""
    return check_backup(tree, resolve(tree.backups, name), key).result


def chain_of(backups: Path, info: BackupInfo) -> dict[str, BackupInfo]:
    """The metadata of a backup and of every backup it depends on, by name (BackupError)."""
    chain = {info.name: info}
    for dependency in info.depends_on:
        chain[dependency] = load_info(backups, dependency)
    return chain


def manifest_problems(tree: DataTree, manifest: list[FileEntry], chain: list[str]) -> list[str]:
    """Entries the tree's map refuses: unsafe paths, wrong categories, archives off the chain."""
    problems: list[str] = []
    seen: set[str] = set()
    for entry in manifest:
        category = tree.backup_category(entry.path)
        if entry.path in seen:
            problems.append(f"{entry.path!r} is listed twice in the manifest")
        elif category is None:
            problems.append(f"{entry.path!r} is not a path a backup holds")
        elif category != entry.category:
            problems.append(
                f"{entry.path} is labelled {entry.category!r} but belongs to {category!r}"
            )
        elif entry.stored_in not in chain:
            problems.append(
                f"{entry.path} is stored in {entry.stored_in!r}, not in this backup's chain"
            )
        seen.add(entry.path)
    return problems


def check_backup(tree: DataTree, info: BackupInfo, key: str | None) -> CheckedBackup:
    """Verify `info`'s backup; return the result with the manifest and archives it checked."""
    started = time.perf_counter()
    backups = tree.backups
    names = [info.name, *info.depends_on]

    def refused(problem: str) -> CheckedBackup:
        result = VerifyResult(
            info.name, False, names, 0, 0, time.perf_counter() - started, [problem]
        )
        return CheckedBackup(result, [], {})

    try:
        own = archive_path(backups, info)
    except BackupError as exc:
        return refused(str(exc))
    if own.is_file() and sha256_file(own) != info.sha256:
        # Say what is wrong before trying to read a manifest out of a damaged stream.
        return refused(f"{info.name}: the archive's checksum does not match its metadata")
    try:
        manifest = read_manifest(own, key)
    except (BackupError, OSError) as exc:
        return refused(f"{info.name}: manifest unreadable ({exc})")
    problems = manifest_problems(tree, manifest, names)
    by_archive: dict[str, dict[str, FileEntry]] = {}
    for entry in manifest:
        by_archive.setdefault(entry.stored_in, {})[entry.path] = entry
    archives: dict[str, Path] = {}
    files = total = 0
    for archive_name in names:
        try:
            archive_info = info if archive_name == info.name else load_info(backups, archive_name)
            path = archive_path(backups, archive_info)
        except BackupError as exc:
            problems.append(str(exc))
            continue
        if not path.is_file():
            problems.append(f"{archive_name}: archive file {path.name} is missing")
            continue
        # The backup's own archive was checked above, before its manifest was read.
        if archive_name != info.name and sha256_file(path) != archive_info.sha256:
            problems.append(f"{archive_name}: the archive's checksum does not match its metadata")
            continue
        try:
            count, size, found = check_archive(
                path, key, by_archive.get(archive_name, {}), archive_name
            )
        except BackupError as exc:
            problems.append(str(exc))
            continue
        if archive_name != info.name:
            # A base also stores files this backup does not use: check only what is used.
            found = [p for p in found if "is not in the manifest" not in p]
        archives[archive_name] = path
        files, total, problems = files + count, total + size, problems + found
    result = VerifyResult(
        info.name, not problems, names, files, total, time.perf_counter() - started, problems
    )
    return CheckedBackup(result, manifest, archives)
