"""Verify and restore backups: every checksum first, then an atomic swap of each file.

Verification reads every archive a restore needs (an incremental backup and the archives its
unchanged files live in) and checks each stored file's sha256 against the manifest; anything
wrong (a flipped byte, a truncated file, a wrong key, a member that is not a plain file under
`data/`, an absolute path or `..`) refuses the restore before live data is touched. Then a safety
backup of the categories being restored is taken, and each file is written to a temporary name
beside its target and renamed over it, model `current` pointers last, so running workers switch
to restored models at their next prediction with no restart. Files that exist live but not in
the backup are left alone, and logs are restored only when named. The Redis snapshot is not
swapped under a running server: it is staged in backups/ with instructions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stockpred.infra.files import FILE_MODE, atomic_path, sha256_file
from stockpred.paths import DataTree
from stockpred.storage.archive import (
    DATA_PREFIX,
    FileEntry,
    check_archive,
    open_archive,
    read_manifest,
)
from stockpred.storage.backup import CATEGORIES, create_backup
from stockpred.storage.catalog import load_info, resolve
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


def verify_backup(backups: Path, name: str | None, key: str | None) -> VerifyResult:
    """Check a backup (default: the newest) and every archive it depends on."""
    started = time.perf_counter()
    info = resolve(backups, name)
    problems: list[str] = []
    files = total = 0
    archives = [info.name, *info.depends_on]

    def refused(problem: str) -> VerifyResult:
        return VerifyResult(
            info.name, False, archives, 0, 0, time.perf_counter() - started, [problem]
        )

    if (backups / info.file).is_file() and sha256_file(backups / info.file) != info.sha256:
        # Say what is wrong before trying to read a manifest out of a damaged stream.
        return refused(f"{info.name}: the archive's checksum does not match its metadata")
    try:
        manifest = read_manifest(backups / info.file, key)
    except (BackupError, KeyError, ValueError) as exc:
        return refused(f"{info.name}: manifest unreadable ({exc})")
    by_archive: dict[str, dict[str, FileEntry]] = {}
    for entry in manifest:
        by_archive.setdefault(entry.stored_in, {})[entry.path] = entry
    for archive_name in archives:
        try:
            archive_info = load_info(backups, archive_name)
        except BackupError as exc:
            problems.append(str(exc))
            continue
        path = backups / archive_info.file
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
        files, total, problems = files + count, total + size, problems + found
    return VerifyResult(
        info.name, not problems, archives, files, total, time.perf_counter() - started, problems
    )


@dataclass
class RestoreResult:
    """What a restore changed (or, dry-run, would change)."""

    name: str
    dry_run: bool
    categories: list[str]
    changed: list[str]
    added: list[str]
    unchanged: int
    safety_backup: str | None
    staged: list[str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def restore_backup(
    tree: DataTree,
    *,
    name: str | None = None,
    categories: list[str] | None = None,
    dry_run: bool = False,
    key: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RestoreResult:
    """Restore a verified backup (default: the newest) into the live tree."""
    started = time.perf_counter()
    info = resolve(tree.backups, name)
    # Logs are an audit trail, not state: rewinding them would drop lines written since the
    # backup, so they are restored only when asked for by name.
    chosen = list(categories or [c for c in info.categories if c != "logs"])
    unknown = [c for c in chosen if c not in CATEGORIES]
    if unknown:
        raise BackupError(f"unknown categories {unknown}; choose from {list(CATEGORIES)}")
    check = verify_backup(tree.backups, info.name, key)
    if not check.ok:
        raise BackupError(
            f"{info.name} failed verification; nothing was restored: "
            + "; ".join(check.problems[:5])
        )
    wanted = [e for e in read_manifest(tree.backups / info.file, key) if e.category in chosen]
    changed, added, same = _differences(tree, wanted)
    if dry_run:
        return RestoreResult(
            info.name, True, chosen, changed, added, same, None, [], time.perf_counter() - started
        )
    safety = None
    if changed:
        # Encrypted like the backups it protects: it holds the files a restore replaces.
        safety = create_backup(
            tree,
            categories=[c for c in chosen if c != "redis"],
            kind="safety",
            key=key,
            encrypt=key is not None,
        ).info.name
    todo = set(changed) | set(added)
    staged = _apply(tree, info.name, [e for e in wanted if e.path in todo], key, progress)
    return RestoreResult(
        info.name,
        False,
        chosen,
        changed,
        added,
        same,
        safety,
        staged,
        time.perf_counter() - started,
    )


def _differences(tree: DataTree, wanted: list[FileEntry]) -> tuple[list[str], list[str], int]:
    """(changed, added, unchanged count) of the live tree against the backup's files."""
    changed, added, same = [], [], 0
    for entry in wanted:
        live = tree.root / entry.path
        if not live.is_file():
            added.append(entry.path)
        elif live.stat().st_size != entry.size or sha256_file(live) != entry.sha256:
            changed.append(entry.path)
        else:
            same += 1
    return changed, added, same


def _apply(
    tree: DataTree,
    name: str,
    entries: list[FileEntry],
    key: str | None,
    progress: Callable[[int, int], None] | None,
) -> list[str]:
    """Swap each file in atomically, model `current` pointers last; return staged files."""
    by_archive: dict[str, dict[str, FileEntry]] = {}
    for entry in entries:
        by_archive.setdefault(entry.stored_in, {})[DATA_PREFIX + entry.path] = entry
    staged: list[str] = []
    pointers: list[tuple[FileEntry, bytes]] = []
    done = 0

    def write(entry: FileEntry, data: bytes) -> None:
        nonlocal done
        target = tree.root / entry.path
        if target == tree.redis_dump:
            # A running Redis would overwrite it; stage it for the operator instead.
            target = tree.backups / f"restored-{name}-dump.rdb"
            staged.append(str(target))
        _replace(target, data, entry.mtime)
        done += 1
        if progress is not None:
            progress(done, len(entries))

    for archive_name, members in by_archive.items():
        with open_archive(tree.backups / load_info(tree.backups, archive_name).file, key) as tar:
            for member in tar:
                found = members.get(member.name)
                if found is None:
                    continue
                handle = tar.extractfile(member)
                assert handle is not None
                if Path(found.path).name == "current":
                    pointers.append((found, handle.read()))
                else:
                    write(found, handle.read())
    for entry, data in pointers:
        write(entry, data)
    return staged


def _replace(target: Path, data: bytes, mtime: float) -> None:
    """Write `data` to a temp file beside `target`, then rename it over `target`."""
    with atomic_path(target, FILE_MODE) as tmp:
        tmp.write_bytes(data)
        os.utime(tmp, (mtime, mtime))
