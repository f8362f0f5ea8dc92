"""The backup catalog: the metadata JSON and manifest sidecar beside each archive in backups/.

Each backup `<name>` is its archive, `<name>.json` (a `BackupInfo`) and `<name>.manifest.json`
(`.enc` when encrypted): a copy of the archive's manifest, so planning an incremental does not
decompress its base. Here: listing and looking backups up, their history, rotation and the
record of a verification. The archive format is `stockpred.storage.archive`; writing a backup,
`stockpred.storage.backup`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from stockpred.infra.clock import utcnow
from stockpred.infra.files import SECRET_MODE, atomic_write
from stockpred.storage.archive import (
    ENCRYPTED_SUFFIX,
    PLAIN_SUFFIX,
    FileEntry,
    archive_file_name,
    decrypt,
    encrypt,
    parse_manifest,
    read_manifest,
)
from stockpred.storage.errors import BackupError

log = logging.getLogger(__name__)
PREFIX = "stock_prediction_backup_"
MANIFEST_SIDECAR = ".manifest.json"
# What `next_name` makes: the prefix, a UTC timestamp, `_1` per clash. Nothing else is a backup:
# a name from metadata becomes file names, so it may hold no `/`, `..` or other surprise.
NAME_PATTERN = re.compile(re.escape(PREFIX) + r"[0-9]{8}_[0-9]{6}(?:_1)*")


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


def valid_name(name: str) -> bool:
    """True when `name` is a backup name as `next_name` makes them."""
    return NAME_PATTERN.fullmatch(name) is not None


def metadata_path(backups: Path, name: str) -> Path:
    return backups / f"{name}.json"


def archive_path(backups: Path, info: BackupInfo) -> Path:
    """The archive of a backup: a plain file directly in backups/, named after the backup.

    The metadata's `file` is read, not trusted: it must be the name the backup's own name and
    encryption give, so no metadata can point a restore at a file elsewhere.
    """
    expected = archive_file_name(info.name, info.encrypted)
    if info.file != expected:
        raise BackupError(
            f"the metadata of {info.name} names archive {info.file!r}, not {expected}"
        )
    path = backups / expected
    if path.is_symlink():
        raise BackupError(f"{expected} is a symbolic link; archives must be plain files")
    return path


def sidecar_path(backups: Path, info: BackupInfo) -> Path | None:
    """The manifest sidecar of a backup, when its metadata names the one it would have."""
    if info.manifest_file is None:
        return None
    expected = info.name + MANIFEST_SIDECAR + (".enc" if info.encrypted else "")
    if info.manifest_file != expected:
        log.warning("the metadata of %s names sidecar %r; ignored", info.name, info.manifest_file)
        return None
    return backups / expected


def strip_suffix(name: str) -> str:
    """`x.tar.gz`, `x.tar.gz.enc`, `x.json` or a path → `x`."""
    base = Path(name).name
    for suffix in (ENCRYPTED_SUFFIX, PLAIN_SUFFIX, ".json"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def load_info(backups: Path, name: str) -> BackupInfo:
    """The metadata of a backup by name (with or without its file suffix)."""
    name = strip_suffix(name)
    if not valid_name(name):
        raise BackupError(f"{name!r} is not a backup name ({PREFIX}YYYYMMDD_HHMMSS)")
    try:
        raw = json.loads(metadata_path(backups, name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"no backup named {name!r} in {backups}") from None
    except ValueError as exc:
        raise BackupError(f"the metadata of {name} is unreadable: {exc}") from None
    try:
        info = BackupInfo(**raw)
    except TypeError as exc:
        raise BackupError(f"the metadata of {name} is incomplete: {exc}") from None
    if info.name != name:
        raise BackupError(f"the metadata of {name} names another backup, {info.name!r}")
    bad = [d for d in info.depends_on if not isinstance(d, str) or not valid_name(d)]
    if not isinstance(info.encrypted, bool) or bad:
        raise BackupError(f"the metadata of {name} is malformed (encrypted, depends_on)")
    return info


def save_info(backups: Path, info: BackupInfo) -> None:
    """Write (or rewrite) a backup's metadata JSON, atomically."""
    atomic_write(
        metadata_path(backups, info.name), json.dumps(info.to_dict(), indent=2), SECRET_MODE
    )


def next_name(backups: Path, now: datetime) -> str:
    """A name for a backup made at `now` that no metadata in `backups` uses yet."""
    name = f"{PREFIX}{now.strftime('%Y%m%d_%H%M%S')}"
    while metadata_path(backups, name).exists():
        name += "_1"
    return name


def list_backups(backups: Path) -> list[BackupInfo]:
    """Every backup with metadata and an archive, oldest first."""
    found = []
    for meta in sorted(backups.glob(f"{PREFIX}*.json")):
        if meta.name.endswith(MANIFEST_SIDECAR):
            continue
        try:
            info = load_info(backups, meta.stem)
            archive = archive_path(backups, info)
        except BackupError as exc:
            log.warning("%s is not listed as a backup: %s", meta.name, exc)
            continue
        if archive.is_file():
            found.append(info)
    return sorted(found, key=lambda i: (i.created_at, i.name))


def resolve(backups: Path, name: str | None) -> BackupInfo:
    """The backup named `name`, or the newest that is not a safety backup."""
    if name:
        return load_info(backups, name)
    found = [i for i in list_backups(backups) if i.kind != "safety"]
    if not found:
        raise BackupError(f"there are no backups in {backups}")
    return found[-1]


def write_manifest_sidecar(
    backups: Path, name: str, entries: list[FileEntry], key: str | None
) -> tuple[str, str]:
    """Keep a copy of a backup's manifest beside it (sealed when `key`); (file name, sha256)."""
    sidecar = json.dumps({"files": [asdict(e) for e in entries]}).encode()
    if key is not None:
        sidecar = encrypt(sidecar, key)
    file_name = name + MANIFEST_SIDECAR + (".enc" if key is not None else "")
    atomic_write(backups / file_name, sidecar, SECRET_MODE)
    return file_name, hashlib.sha256(sidecar).hexdigest()


def base_manifest(backups: Path, info: BackupInfo, key: str | None) -> list[FileEntry]:
    """A backup's manifest for planning an incremental: the sidecar copy when it is intact
    (no need to decompress the archive), else the one inside the archive."""
    sidecar = sidecar_path(backups, info)
    if sidecar is not None and info.manifest_sha256:
        try:
            data = sidecar.read_bytes()
            if hashlib.sha256(data).hexdigest() == info.manifest_sha256:
                if info.encrypted:
                    assert key is not None
                    data = decrypt(data, key)
                return parse_manifest(data)
        except Exception as exc:  # a damaged sidecar or wrong key: the archive path decides
            log.debug("manifest sidecar of %s unusable (%s); reading the archive", info.name, exc)
    return read_manifest(archive_path(backups, info), key if info.encrypted else None)


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
            sidecar = sidecar_path(backups, info)
            for path in (archive_path(backups, info), metadata_path(backups, info.name), sidecar):
                if path is not None:
                    path.unlink(missing_ok=True)
            removed.append(info.name)
    return removed


def newest_age(backups: list[BackupInfo], now: datetime | None = None) -> timedelta | None:
    """Age of the newest of `backups` (as `list_backups` orders them), or None when empty."""
    if not backups:
        return None
    return (now or utcnow()) - datetime.fromisoformat(backups[-1].created_at)


def describe_history(backups: Path, now_iso: str | None = None) -> list[dict[str, Any]]:
    """Backups newest first with size, age, kind and when each was last verified."""
    now = datetime.fromisoformat(now_iso) if now_iso else utcnow()
    rows = []
    for info in reversed(list_backups(backups)):
        age = now - datetime.fromisoformat(info.created_at)
        rows.append(
            {
                "name": info.name,
                "file": info.file,
                "kind": info.kind,
                "size": info.size,
                "created_at": info.created_at,
                "age_seconds": int(age.total_seconds()),
                "files": info.files,
                "encrypted": info.encrypted,
                "base": info.base,
                "depends_on": info.depends_on,
                "verified_at": info.verified_at,
                "categories": info.categories,
                "skipped": info.skipped,
            }
        )
    return rows


def mark_verified(backups: Path, name: str, when: str) -> None:
    """Record a successful verification in the backup's metadata."""
    info = load_info(backups, name)
    info.verified_at = when
    save_info(backups, info)
