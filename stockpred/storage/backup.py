"""Backups of persistent_data: full or incremental `.tar.gz`, optional encryption, rotation.

An incremental backup stores only files whose content changed since its base: a file with the
base's size and mtime counts as unchanged, any other is compared by sha256. An archive holds the
files under `data/<path relative to the data root>` and, as its last member,
`manifest.json`: every file of the backed-up state with its size, mtime, sha256 and category, and
for an incremental backup the name of the archive that stores each unchanged file. Checksums are
computed from the very bytes written into the archive (one read per file). A metadata JSON sits
beside each archive. Archives are written under a temporary name and renamed only when complete,
so a failure never leaves something that looks like a valid backup. `backups/` is never included.
Encryption uses Fernet from `cryptography` (AES-128-CBC + HMAC-SHA256, a vetted recipe).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import socket
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from stockpred.infra.clock import utcnow
from stockpred.infra.files import (
    FILE_MODE,
    LockBusy,
    atomic_path,
    atomic_write,
    file_lock,
    sha256_file,
)
from stockpred.paths import DataTree, free_bytes

log = logging.getLogger(__name__)
PREFIX = "stock_prediction_backup_"
CATEGORIES = ("models", "ml_cache", "stock_data", "config", "logs", "redis", "monitoring")
MANIFEST = "manifest.json"
DATA_PREFIX = "data/"
CHUNK = 1 << 20
GZIP_LEVEL = 6
SPACE_MARGIN = 50 * 1024 * 1024
Progress = Callable[[int, int], None]


class BackupError(RuntimeError):
    """A backup could not be made or read; the message says why."""


class StorageBusy(BackupError):
    """Another backup, restore or cleanup holds the storage lock (a scheduled run skips)."""


class InsufficientSpace(BackupError):
    """Not enough free disk for the backup."""


def tool_version() -> str:
    try:
        return version("stockpred")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class FileEntry:
    """One file of a backed-up state."""

    path: str
    size: int
    mtime: float
    sha256: str
    category: str
    stored_in: str  # name of the archive holding its bytes (this one, or a base)


@dataclass
class BackupInfo:
    """The metadata JSON written beside an archive."""

    name: str
    file: str
    kind: str  # full | incremental | safety
    created_at: str
    categories: list[str]
    files: int
    stored_files: int
    bytes: int
    size: int
    sha256: str
    encrypted: bool
    base: str | None = None
    depends_on: list[str] = field(default_factory=list)
    tool_version: str = ""
    host: str = ""
    skipped: dict[str, str] = field(default_factory=dict)
    verified_at: str | None = None
    manifest_file: str | None = None
    manifest_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def metadata_path(backups: Path, name: str) -> Path:
    return backups / f"{name}.json"


def load_info(backups: Path, name: str) -> BackupInfo:
    """The metadata of a backup by name (with or without its file suffix)."""
    name = strip_suffix(name)
    try:
        raw = json.loads(metadata_path(backups, name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"no backup named {name!r} in {backups}") from None
    except ValueError as exc:
        raise BackupError(f"the metadata of {name} is unreadable: {exc}") from None
    try:
        return BackupInfo(**raw)
    except TypeError as exc:
        raise BackupError(f"the metadata of {name} is incomplete: {exc}") from None


def strip_suffix(name: str) -> str:
    """`x.tar.gz`, `x.tar.gz.enc`, `x.json` or a path → `x`."""
    base = Path(name).name
    for suffix in (".tar.gz.enc", ".tar.gz", ".json"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def list_backups(backups: Path) -> list[BackupInfo]:
    """Every backup with metadata and an archive, oldest first."""
    found = []
    for meta in sorted(backups.glob(f"{PREFIX}*.json")):
        if meta.name.endswith(".manifest.json"):
            continue
        try:
            info = load_info(backups, meta.stem)
        except BackupError:
            continue
        if (backups / info.file).is_file():
            found.append(info)
    return sorted(found, key=lambda i: (i.created_at, i.name))


@contextlib.contextmanager
def storage_lock(backups: Path, wait: bool = True) -> Iterator[None]:
    """Serialise backup, restore and cleanup across processes on this host."""
    try:
        with file_lock(backups / ".storage.lock", blocking=wait):
            yield
    except LockBusy:
        raise StorageBusy("another backup, restore or cleanup is running") from None


def category_roots(tree: DataTree) -> dict[str, list[Path]]:
    """The folders (or files) each category covers."""
    return {
        "models": [tree.ml_models, tree.scalers],
        "ml_cache": [tree.ml_cache],
        "stock_data": [tree.stock_historical, tree.stock_cache, tree.predictions],
        "config": [tree.config, tree.root / "ml_config.json"],
        "logs": [tree.logs],
        "redis": [tree.redis / "dump.rdb"],
        "monitoring": [tree.monitoring, tree.grafana],
    }


def _excluded(path: Path, tree: DataTree) -> bool:
    name = path.name
    if name.endswith((".lock", ".tmp", ".partial", ".sock")) or name.startswith(".staging-"):
        return True
    parts = set(path.parts)
    return any(p.startswith(".staging-") for p in parts) or (
        tree.stock_cache / "yfinance" in path.parents
    )


def collect_files(tree: DataTree, categories: list[str], log_days: int) -> list[tuple[str, Path]]:
    """(category, path) of every file to back up, never anything under backups/."""
    roots = category_roots(tree)
    cutoff = time.time() - log_days * 86400
    seen: set[Path] = set()
    out: list[tuple[str, Path]] = []
    for category in categories:
        for root in roots[category]:
            candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*"))
            for path in candidates:
                if not path.is_file() or path.is_symlink() or path in seen:
                    continue
                if tree.backups == path or tree.backups in path.parents:
                    continue
                if tree.root not in path.parents or _excluded(path, tree):
                    continue
                if category == "logs" and path.stat().st_mtime < cutoff:
                    continue
                seen.add(path)
                out.append((category, path))
    return out


class _HashingReader:
    """Reads a file while hashing exactly the bytes handed to tarfile."""

    def __init__(self, handle: io.BufferedReader, progress: Callable[[int], None]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.count = 0
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        self.count += len(data)
        self.progress(len(data))
        return data


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


def base_manifest(backups: Path, info: BackupInfo, key: str | None) -> list[FileEntry]:
    """A backup's manifest for planning an incremental: the sidecar copy when it is intact
    (no need to decompress the archive), else the one inside the archive."""
    if info.manifest_file and info.manifest_sha256:
        try:
            data = (backups / info.manifest_file).read_bytes()
            if hashlib.sha256(data).hexdigest() == info.manifest_sha256:
                if info.encrypted:
                    from cryptography.fernet import Fernet

                    assert key is not None
                    data = Fernet(key.encode()).decrypt(data)
                return [FileEntry(**entry) for entry in json.loads(data)["files"]]
        except Exception as exc:  # a damaged sidecar or wrong key: the archive path decides
            log.debug("manifest sidecar of %s unusable (%s); reading the archive", info.name, exc)
    return read_manifest(backups / info.file, key if info.encrypted else None)


def read_manifest(archive: Path, key: str | None) -> list[FileEntry]:
    """The manifest of an archive (the archive must be decryptable with `key` if encrypted)."""
    with open_archive(archive, key) as tar:
        member = tar.getmember(MANIFEST)
        handle = tar.extractfile(member)
        assert handle is not None
        raw = json.loads(handle.read())
    return [FileEntry(**entry) for entry in raw["files"]]


# What reading a damaged gzip tar can raise: zlib.error is not an OSError, and a flipped byte
# deep in the stream surfaces as one only when the reader gets there.
DAMAGED_ARCHIVE_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)


@contextlib.contextmanager
def open_archive(archive: Path, key: str | None) -> Iterator[tarfile.TarFile]:
    """Open a plain or Fernet-encrypted archive for reading."""
    if archive.name.endswith(".enc"):
        if not key:
            raise BackupError(f"{archive.name} is encrypted: set BACKUP_ENCRYPTION_KEY")
        from cryptography.fernet import Fernet, InvalidToken

        try:
            plain = Fernet(key.encode()).decrypt(archive.read_bytes())
        except InvalidToken:
            raise BackupError(f"{archive.name}: wrong key, or the archive was altered") from None
        with tarfile.open(fileobj=io.BytesIO(plain), mode="r:gz") as tar:
            yield tar
        return
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            yield tar
    except DAMAGED_ARCHIVE_ERRORS as exc:
        raise BackupError(f"{archive.name} is not a readable archive: {exc}") from None


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
) -> _Plan:
    backups = tree.backups
    skipped: dict[str, str] = {}
    if "redis" in chosen:
        if redis_client is None:
            skipped["redis"] = "no Redis connection: no consistent snapshot could be taken"
        else:
            try:
                where = Path(str(redis_client.config_get("dir").get("dir", "")))
                if where.resolve() != tree.redis.resolve():
                    skipped["redis"] = (
                        f"the Redis server keeps its data in {where}, outside "
                        "this data tree: back it up where it runs"
                    )
                else:
                    snapshot_redis(redis_client)
            except Exception as exc:
                skipped["redis"] = f"Redis snapshot failed: {exc}"
    files = collect_files(tree, [c for c in chosen if c not in skipped], log_days)
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
        raise InsufficientSpace(
            f"backup needs about {needed} bytes free in {backups}; only {available} are free"
        )
    name = f"{PREFIX}{(now or utcnow()).strftime('%Y%m%d_%H%M%S')}"
    while metadata_path(backups, name).exists():
        name += "_1"
    final = backups / (f"{name}.tar.gz.enc" if encrypt else f"{name}.tar.gz")
    return _Plan(name, final, files, base_state, depends, skipped, total)


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

    # Level 6 is gzip's (and `tar czf`'s) default; tarfile's own default of 9 is ~3x slower.
    with (
        open(tmp, "wb") as raw,
        tarfile.open(fileobj=raw, mode="w:gz", compresslevel=GZIP_LEVEL) as tar,
    ):
        for category, path in plan.files:
            entries.append(
                _add_file(
                    tar,
                    path,
                    str(path.relative_to(tree.root)),
                    category,
                    name=plan.name,
                    base_state=plan.base_state,
                    advance=advance,
                )
            )
        data = json.dumps({**manifest, "files": [asdict(e) for e in entries]}, indent=1).encode()
        member = tarfile.TarInfo(MANIFEST)
        member.size, member.mtime, member.mode = len(data), int(time.time()), FILE_MODE
        tar.addfile(member, io.BytesIO(data))
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
) -> BackupResult:
    """Write a backup of `categories` (all by default); incremental against `base` if given."""
    started = time.perf_counter()
    chosen = list(categories or CATEGORIES)
    unknown = [c for c in chosen if c not in CATEGORIES]
    if unknown:
        raise BackupError(f"unknown categories {unknown}; choose from {list(CATEGORIES)}")
    if encrypt and not key:
        raise BackupError("encryption was asked for but BACKUP_ENCRYPTION_KEY is not set")
    tree.backups.mkdir(parents=True, exist_ok=True)
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
    with atomic_path(plan.final, FILE_MODE, suffix=".partial") as tmp:
        entries = _write_archive(tree, plan, manifest, tmp, progress)
        if encrypt:
            from cryptography.fernet import Fernet

            assert key is not None
            tmp.write_bytes(Fernet(key.encode()).encrypt(tmp.read_bytes()))
        digest = sha256_file(tmp)
    stored = [e for e in entries if e.stored_in == plan.name]
    sidecar = json.dumps({"files": [asdict(e) for e in entries]}).encode()
    if encrypt:
        from cryptography.fernet import Fernet

        assert key is not None
        sidecar = Fernet(key.encode()).encrypt(sidecar)
    sidecar_name = f"{plan.name}.manifest.json" + (".enc" if encrypt else "")
    atomic_write(tree.backups / sidecar_name, sidecar)
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
        encrypted=encrypt,
        base=base,
        depends_on=sorted(
            {e.stored_in for e in entries if e.stored_in != plan.name} | set(plan.depends)
        ),
        tool_version=tool_version(),
        host=socket.gethostname(),
        skipped=plan.skipped,
        manifest_file=sidecar_name,
        manifest_sha256=hashlib.sha256(sidecar).hexdigest(),
    )
    atomic_write(metadata_path(tree.backups, plan.name), json.dumps(info.to_dict(), indent=2))
    return BackupResult(info, plan.final, time.perf_counter() - started)


def _add_file(
    tar: tarfile.TarFile,
    path: Path,
    relative: str,
    category: str,
    *,
    name: str,
    base_state: dict[str, FileEntry],
    advance: Callable[[int], None],
) -> FileEntry:
    stat = path.stat()
    previous = base_state.get(relative)
    # Same size and mtime: unchanged (rsync's quick check); otherwise compare checksums.
    if (
        previous is not None
        and previous.size == stat.st_size
        and (previous.mtime == stat.st_mtime or sha256_file(path) == previous.sha256)
    ):
        advance(stat.st_size)
        return FileEntry(
            relative, stat.st_size, stat.st_mtime, previous.sha256, category, previous.stored_in
        )
    member = tarfile.TarInfo(DATA_PREFIX + relative)
    member.size, member.mtime, member.mode = stat.st_size, int(stat.st_mtime), FILE_MODE
    with path.open("rb") as handle:
        reader = _HashingReader(handle, advance)
        # tarfile only calls read() on the file object it is given.
        tar.addfile(member, reader)
    if reader.count != stat.st_size:
        raise BackupError(f"{relative} changed size while being backed up; try again")
    return FileEntry(
        relative, stat.st_size, stat.st_mtime, reader.digest.hexdigest(), category, name
    )


def rotate(backups: Path, keep: int) -> list[str]:
    """Delete all but the newest `keep` backups, never one a kept backup depends on."""
    all_backups = list_backups(backups)
    kept = {i.name for i in all_backups[-keep:]} if keep > 0 else set()
    by_name = {i.name: i for i in all_backups}
    pending = list(kept)
    while pending:
        for dependency in by_name[pending.pop()].depends_on:
            if dependency in by_name and dependency not in kept:
                kept.add(dependency)
                pending.append(dependency)
    removed = []
    for info in all_backups:
        if info.name not in kept:
            with contextlib.suppress(FileNotFoundError):
                (backups / info.file).unlink()
            with contextlib.suppress(FileNotFoundError):
                metadata_path(backups, info.name).unlink()
            if info.manifest_file:
                with contextlib.suppress(FileNotFoundError):
                    (backups / info.manifest_file).unlink()
            removed.append(info.name)
    return removed


def backup_age(backups: Path, now: datetime | None = None) -> timedelta | None:
    """Age of the newest backup, or None when there is none."""
    found = list_backups(backups)
    if not found:
        return None
    newest = datetime.fromisoformat(found[-1].created_at)
    return (now or utcnow()) - newest
