"""Applying a restore: stream verified members into temp files beside their targets, then swap.

Each wanted member is read once, in chunks, from an archive of the chain verified in the same
run, into a temp file in its target's folder (so the final rename stays on one file system),
never more bytes than the manifest lists and only if they hash to the manifest's sha256. Only
when every file is staged are they renamed over their targets, model `current` pointers last;
any failure before that removes every temp file and leaves the live tree as it was. Secret files
are written 600, everything else 644; the Redis snapshot is staged in backups/ instead of being
swapped under a running server, and a database file is loaded by its loader instead of being
renamed: the SQLite ledger through SQLite's backup API (`stockpred.ledger.snapshot.load_into`),
since open connections and its -wal file still refer to the old file, and a PostgreSQL ledger's
dump through pg_restore (`stockpred.ledger.pg_dump.restore`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from stockpred.infra.files import FILE_MODE, SECRET_MODE, fsync_dir
from stockpred.paths import DataTree
from stockpred.storage.archive import DATA_PREFIX, FileEntry, copy_member, open_archive
from stockpred.storage.errors import BackupError, UnsafeArchive

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StagedFile:
    """A verified file waiting in a temp file beside the place it will be renamed to."""

    entry: FileEntry
    temp: Path
    target: Path
    mode: int


def target_of(tree: DataTree, backup: str, entry: FileEntry) -> Path:
    """Where a restored file goes; a Redis snapshot goes to backups/ for the operator."""
    if tree.backup_category(entry.path) != entry.category:
        # Verification refused such an entry already; this guards every caller.
        raise UnsafeArchive(f"{entry.path!r} is not a {entry.category} path of this tree")
    target = tree.root.joinpath(*entry.path.split("/"))
    if target == tree.redis_dump:
        return tree.backups / f"restored-{backup}-dump.rdb"
    return target


def stage(
    tree: DataTree,
    backup: str,
    entries: list[FileEntry],
    archives: dict[str, Path],
    key: str | None,
) -> list[StagedFile]:
    """Stream every entry's bytes from its verified archive into a temp file; refuse on mismatch."""
    wanted: dict[str, dict[str, FileEntry]] = {}
    for entry in entries:
        if entry.stored_in not in archives:
            raise BackupError(
                f"{entry.path} is stored in {entry.stored_in}, which was not verified"
            )
        wanted.setdefault(entry.stored_in, {})[DATA_PREFIX + entry.path] = entry
    staged: list[StagedFile] = []
    try:
        for archive_name, members in wanted.items():
            with open_archive(archives[archive_name], key) as tar:
                for member in tar:
                    found = members.get(member.name)
                    if found is None:
                        continue
                    del members[member.name]
                    if not member.isreg() or member.size != found.size:
                        raise UnsafeArchive(f"{member.name!r} is not the file its manifest lists")
                    handle = tar.extractfile(member)
                    assert handle is not None
                    staged.append(_stage_one(tree, backup, found, handle))
            if members:
                missing = sorted(members)[0].removeprefix(DATA_PREFIX)
                raise BackupError(f"{archive_name} no longer holds {missing}")
    except BaseException:
        discard(staged)
        raise
    return staged


def _stage_one(tree: DataTree, backup: str, entry: FileEntry, handle: IO[bytes]) -> StagedFile:
    target = target_of(tree, backup, entry)
    mode = (
        SECRET_MODE if target in tree.secret_files or target.parent == tree.backups else FILE_MODE
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = copy_member(handle, out, entry.size)
            out.flush()
            os.fsync(out.fileno())
        if digest != entry.sha256:
            raise BackupError(f"{entry.path} does not match the checksum verified in this run")
        os.utime(temp, (entry.mtime, entry.mtime))
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return StagedFile(entry, temp, target, mode)


def discard(staged: list[StagedFile]) -> None:
    """Remove the temp files of a restore that will not be applied."""
    for item in staged:
        with contextlib.suppress(FileNotFoundError):
            item.temp.unlink()


def swap_in(
    staged: list[StagedFile],
    progress: Callable[[int, int], None] | None,
    loaders: Mapping[Path, Callable[[Path], None]] | None = None,
) -> None:
    """Rename every staged file over its target, model `current` pointers last; a target with
    a loader (a database) is given to it instead, and its staged file removed."""
    loaders = loaders or {}
    ordered = sorted(staged, key=lambda s: Path(s.entry.path).name == "current")
    done = 0
    try:
        for item in ordered:
            load = loaders.get(item.target)
            if load is not None:
                load(item.temp)
                item.temp.unlink()
            else:
                os.chmod(item.temp, item.mode)
                os.replace(item.temp, item.target)
            fsync_dir(item.target.parent)
            done += 1
            if progress is not None:
                progress(done, len(ordered))
    except BaseException:
        log.error("restore stopped after %d of %d files were swapped in", done, len(ordered))
        discard(ordered[done:])
        raise
