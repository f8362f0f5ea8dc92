"""Writing backups of persistent_data: full or incremental, optionally encrypted.

An incremental backup stores only files whose content changed since its base: a file with the
base's size and mtime counts as unchanged, any other is compared by sha256. Archives are written
under a temporary name and renamed only when complete, so a failure never leaves something that
looks like a valid backup; the metadata JSON beside an archive is written last. `backups/` is
never included. The ledger is archived from a consistent copy taken into a `.partial` file in
backups/, never from the live file: SQLite's backup API for the embedded database, pg_dump for
a PostgreSQL one (archived as `ledger/postgresql.dump`). The archive format is
`stockpred.storage.archive`; names, metadata and rotation, `stockpred.storage.catalog`; the
storage lock that serialises backup, restore and cleanup, `stockpred.storage.lock`.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from stockpred.infra.clock import utcnow
from stockpred.infra.files import (
    FILE_MODE,
    PRIVATE_DIR_MODE,
    SECRET_MODE,
    atomic_path,
    sha256_file,
)
from stockpred.jobs.errors import disk_full
from stockpred.ledger.pg_dump import dump as dump_postgresql
from stockpred.ledger.pg_dump import is_postgresql
from stockpred.ledger.snapshot import snapshot as snapshot_ledger
from stockpred.paths import BACKUP_CATEGORIES, DataTree, free_bytes
from stockpred.storage.archive import (
    ArchiveWriter,
    FileEntry,
    archive_file_name,
    encrypt_file,
    write_archive,
)
from stockpred.storage.catalog import (
    BackupInfo,
    base_manifest,
    load_info,
    next_name,
    save_info,
    write_manifest_sidecar,
)
from stockpred.storage.errors import BackupError, InsufficientSpace

log = logging.getLogger(__name__)
SPACE_MARGIN = 50 * 1024 * 1024
Progress = Callable[[int, int], None]


def tool_version() -> str:
    try:
        return version("stockpred")
    except PackageNotFoundError:
        return "unknown"


def dead_partials(tree: DataTree) -> list[Path]:
    """Partial archives a killed backup left; call with the storage lock held.

    Every writer of `backups/` holds that lock, so under it no partial file is still growing.
    """
    return sorted(tree.backups.glob(".*.partial"))


def private_backups_folder(tree: DataTree) -> list[Path]:
    """Make backups/ owner-only (700) and every file in it 600; return the files tightened.

    Backups hold copies of the secret files: nobody but the owner may list or read them,
    including the archives and metadata that versions before this rule wrote 644.
    """
    tree.backups.mkdir(parents=True, exist_ok=True)
    if stat.S_IMODE(tree.backups.stat().st_mode) != PRIVATE_DIR_MODE:
        log.warning("backups folder %s was open to group/others; now 700", tree.backups)
        os.chmod(tree.backups, PRIVATE_DIR_MODE)
    tightened = []
    for path in tree.backups.iterdir():
        if path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o077:
            os.chmod(path, SECRET_MODE)
            tightened.append(path)
    if tightened:
        log.warning("made %d backup file(s) owner-only (600)", len(tightened))
    return tightened


def collect_files(tree: DataTree, categories: list[str], log_days: int) -> list[tuple[str, Path]]:
    """(category, path) of every file to back up, never anything under backups/.

    Each file goes under the category the tree's map gives it (`DataTree.backup_category`),
    the same map a restore checks every path against.
    """
    roots = tree.category_roots()
    cutoff = time.time() - log_days * 86400
    seen: set[Path] = set()
    out: list[tuple[str, Path]] = []
    for category in categories:
        for root in roots[category]:
            candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*"))
            for path in candidates:
                if not path.is_file() or path.is_symlink() or path in seen:
                    continue
                if tree.root not in path.parents:
                    continue
                if tree.backup_category(path.relative_to(tree.root).as_posix()) != category:
                    continue
                if category == "logs" and path.stat().st_mtime < cutoff:
                    continue
                seen.add(path)
                out.append((category, path))
    return out


def snapshot_redis(client: Any, timeout: float = 60.0) -> None:
    """Ask Redis for a BGSAVE and wait until it has finished writing dump.rdb."""
    before = client.lastsave()
    try:
        client.bgsave()
    except Exception as exc:
        if "already in progress" not in str(exc):
            raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        persistence = client.info("persistence")
        if not persistence.get("rdb_bgsave_in_progress") and client.lastsave() != before:
            if persistence.get("rdb_last_bgsave_status") != "ok":
                raise BackupError("Redis reported a failed BGSAVE")
            return
        time.sleep(0.05)
    raise BackupError(f"Redis did not finish its BGSAVE within {timeout:g}s")


def _written_since(path: Path, started: float) -> bool:
    """Whether `path` exists and was written at or after `started` (to the filesystem's second)."""
    try:
        return path.stat().st_mtime >= int(started)
    except FileNotFoundError:
        return False


@dataclass(frozen=True)
class BackupResult:
    """What `create_backup` wrote."""

    info: BackupInfo
    path: Path
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.info.to_dict(), "path": str(self.path), "seconds": round(self.seconds, 3)}


@dataclass
class _Plan:
    """What a backup will contain, decided before anything is written."""

    name: str
    final: Path
    files: list[tuple[str, Path]]
    base_state: dict[str, FileEntry]
    depends: list[str]
    skipped: dict[str, str]
    total: int
    # Files archived under another name than their own: a snapshot -> the live file's name.
    stand_ins: dict[Path, str]


def _ledger_copy(
    tree: DataTree, name: str, ledger_url: str | None
) -> tuple[Path | None, Path, str | None]:
    """A consistent copy of the ledger in backups/ (the caller removes it), the tree path it is
    archived as, and why there is none: a SQLite snapshot, or a PostgreSQL ledger's pg_dump."""
    copy = tree.backups / f".{name}-ledger.partial"
    copy.unlink(missing_ok=True)
    if ledger_url is None:
        if not tree.ledger_db.is_file():
            return None, tree.ledger_db, None
        stand_in = tree.ledger_db
    elif is_postgresql(ledger_url):
        stand_in = tree.ledger_pg_dump
    else:
        return None, tree.ledger_db, "the ledger's database is neither SQLite nor PostgreSQL"
    try:
        if ledger_url is None:
            snapshot_ledger(tree.ledger_db, copy)
        else:
            dump_postgresql(ledger_url, copy)
    except Exception as exc:
        copy.unlink(missing_ok=True)
        log.error("no consistent copy of the ledger could be taken: %s", exc)
        return None, stand_in, f"no consistent copy of the ledger could be taken: {exc}"
    return copy, stand_in, None


def _plan(
    tree: DataTree,
    chosen: list[str],
    *,
    base: str | None,
    key: str | None,
    encrypt: bool,
    log_days: int,
    redis_client: Any,
    disk_free: Callable[[Path], int],
    now: datetime | None,
    ledger_url: str | None,
) -> _Plan:
    backups = tree.backups
    skipped: dict[str, str] = {}
    name = next_name(backups, now or utcnow())
    if "redis" in chosen:
        if redis_client is None:
            skipped["redis"] = "no Redis connection: no consistent snapshot could be taken"
        else:
            try:
                # Judged by where the snapshot lands, not by CONFIG GET dir: the project's
                # Redis refuses CONFIG (see stockpred.ops.redis_server.COMMAND_RULES).
                started = time.time()
                snapshot_redis(redis_client)
                if not _written_since(tree.redis_dump, started):
                    skipped["redis"] = (
                        f"the Redis server's snapshot did not land in {tree.redis}: it keeps its "
                        "data outside this data tree: back it up where it runs"
                    )
            except Exception as exc:
                skipped["redis"] = f"Redis snapshot failed: {exc}"
    files = collect_files(tree, [c for c in chosen if c not in skipped and c != "ledger"], log_days)
    stand_ins: dict[Path, str] = {}
    if "ledger" in chosen:
        copy, stand_in, why = _ledger_copy(tree, name, ledger_url)
        if why is not None:
            skipped["ledger"] = why
        if copy is not None:
            files.append(("ledger", copy))
            stand_ins[copy] = stand_in.relative_to(tree.root).as_posix()
    base_state: dict[str, FileEntry] = {}
    depends: list[str] = []
    if base is not None:
        base_info = load_info(backups, base)
        base_state = {e.path: e for e in base_manifest(backups, base_info, key)}
        depends = sorted({base_info.name, *base_info.depends_on})
    total = sum(p.stat().st_size for _, p in files)
    needed = int(total * 1.1) + SPACE_MARGIN
    available = disk_free(backups)
    if available < needed:
        for copy in stand_ins:
            copy.unlink(missing_ok=True)
        raise InsufficientSpace(
            f"backup needs about {needed} bytes free in {backups}; only {available} are free"
        )
    final = backups / archive_file_name(name, encrypt)
    return _Plan(name, final, files, base_state, depends, skipped, total, stand_ins)


def _write_archive(
    tree: DataTree, plan: _Plan, manifest: dict[str, Any], tmp: Path, progress: Progress | None
) -> list[FileEntry]:
    """Stream every planned file into a tar.gz at `tmp`; the manifest goes last."""
    entries: list[FileEntry] = []
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, plan.total)

    with write_archive(tmp) as archive:
        for category, path in plan.files:
            entries.append(
                _add_file(
                    archive,
                    path,
                    plan.stand_ins.get(path) or str(path.relative_to(tree.root)),
                    category,
                    name=plan.name,
                    base_state=plan.base_state,
                    secret_files=tree.secret_files,
                    advance=advance,
                )
            )
        archive.add_manifest(manifest, entries)
    return entries


def create_backup(
    tree: DataTree,
    *,
    categories: list[str] | None = None,
    base: str | None = None,
    kind: str | None = None,
    key: str | None = None,
    encrypt: bool = False,
    log_days: int = 7,
    redis_client: Any = None,
    progress: Progress | None = None,
    disk_free: Callable[[Path], int] = free_bytes,
    now: datetime | None = None,
    ledger_url: str | None = None,
) -> BackupResult:
    """Write a backup of `categories` (all by default); incremental against `base` if given.

    `ledger_url`: DATABASE_URL when it is set (the ledger is then that database, dumped with
    pg_dump); None for the tree's SQLite ledger.
    """
    started = time.perf_counter()
    chosen = list(categories or BACKUP_CATEGORIES)
    unknown = [c for c in chosen if c not in BACKUP_CATEGORIES]
    if unknown:
        raise BackupError(f"unknown categories {unknown}; choose from {list(BACKUP_CATEGORIES)}")
    if encrypt and not key:
        raise BackupError("encryption was asked for but BACKUP_ENCRYPTION_KEY is not set")
    private_backups_folder(tree)
    plan = _plan(
        tree,
        chosen,
        base=base,
        key=key,
        encrypt=encrypt,
        log_days=log_days,
        redis_client=redis_client,
        disk_free=disk_free,
        now=now,
        ledger_url=ledger_url,
    )
    manifest: dict[str, Any] = {
        "name": plan.name,
        "kind": kind or ("incremental" if base else "full"),
        "created_at": utcnow().isoformat(),
        "base": base,
        "tool_version": tool_version(),
        "host": socket.gethostname(),
        "categories": chosen,
        "skipped": plan.skipped,
    }
    try:
        info = _write(
            tree,
            plan,
            manifest=manifest,
            chosen=chosen,
            seal=key if encrypt else None,
            progress=progress,
        )
    except Exception as exc:
        if not disk_full(exc):
            raise
        raise InsufficientSpace(
            f"the disk holding {tree.backups} filled while backup {plan.name} was written "
            f"(no space left on device); its partial files were removed, "
            f"{free_bytes(tree.backups)} bytes are free now, earlier backups are untouched"
        ) from exc
    finally:
        for copy in plan.stand_ins:
            copy.unlink(missing_ok=True)
    return BackupResult(info, plan.final, time.perf_counter() - started)


def _write(
    tree: DataTree,
    plan: _Plan,
    *,
    manifest: dict[str, Any],
    chosen: list[str],
    seal: str | None,
    progress: Progress | None,
) -> BackupInfo:
    """Write the archive, its manifest sidecar and its metadata; on failure, none of them."""
    sidecar: Path | None = None
    try:
        with atomic_path(plan.final, SECRET_MODE, suffix=".partial") as tmp:
            entries = _write_archive(tree, plan, manifest, tmp, progress)
            if seal is not None:
                encrypt_file(tmp, seal)
            digest = sha256_file(tmp)
        stored = [e for e in entries if e.stored_in == plan.name]
        sidecar_name, sidecar_sha256 = write_manifest_sidecar(
            tree.backups, plan.name, entries, seal
        )
        sidecar = tree.backups / sidecar_name
        info = BackupInfo(
            name=plan.name,
            file=plan.final.name,
            kind=manifest["kind"],
            created_at=manifest["created_at"],
            categories=chosen,
            files=len(entries),
            stored_files=len(stored),
            bytes=sum(e.size for e in stored),
            size=plan.final.stat().st_size,
            sha256=digest,
            encrypted=seal is not None,
            base=manifest["base"],
            depends_on=sorted(
                {e.stored_in for e in entries if e.stored_in != plan.name} | set(plan.depends)
            ),
            tool_version=tool_version(),
            host=socket.gethostname(),
            skipped=plan.skipped,
            manifest_file=sidecar_name,
            manifest_sha256=sidecar_sha256,
        )
        save_info(tree.backups, info)
    except BaseException:
        for path in (plan.final, sidecar):
            if path is not None:
                path.unlink(missing_ok=True)
        raise
    return info


def _add_file(
    archive: ArchiveWriter,
    path: Path,
    relative: str,
    category: str,
    *,
    name: str,
    base_state: dict[str, FileEntry],
    secret_files: tuple[Path, ...],
    advance: Callable[[int], None],
) -> FileEntry:
    found = path.stat()
    previous = base_state.get(relative)
    # Same size and mtime: unchanged (rsync's quick check); otherwise compare checksums.
    if (
        previous is not None
        and previous.size == found.st_size
        and (previous.mtime == found.st_mtime or sha256_file(path) == previous.sha256)
    ):
        advance(found.st_size)
        return FileEntry(
            relative, found.st_size, found.st_mtime, previous.sha256, category, previous.stored_in
        )
    mode = SECRET_MODE if path in secret_files else FILE_MODE
    digest = archive.add_file(relative, path, found.st_size, found.st_mtime, advance, mode=mode)
    return FileEntry(relative, found.st_size, found.st_mtime, digest, category, name)
