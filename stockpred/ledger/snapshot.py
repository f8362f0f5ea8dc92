"""Consistent copies of the SQLite ledger with SQLite's online backup API (stdlib `sqlite3`).

`snapshot` copies a live database (WAL or not, writers running) into a new file as of one
moment, in rollback-journal mode so the copy is one self-contained file. `load_into` writes a
verified copy into the live database through the same API, under SQLite's own locks: open
connections see the restored content, and no stale -wal file is left to replay over it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

BUSY_TIMEOUT_S = 30.0


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)


def snapshot(live: Path, copy: Path) -> None:
    """Write a consistent copy of the database at `live` to the new file `copy` (fsynced)."""
    with (
        contextlib.closing(_read_only(live)) as source,
        contextlib.closing(sqlite3.connect(copy, timeout=BUSY_TIMEOUT_S)) as target,
    ):
        source.backup(target)
        target.execute("PRAGMA journal_mode = DELETE")
        target.commit()
    with open(copy, "rb") as handle:
        os.fsync(handle.fileno())


def snapshot_sha256(live: Path, scratch: Path) -> str:
    """The sha256 a snapshot of `live` taken now has (the copy is made at `scratch`, then removed).

    The live file itself is no measure: its -wal file may hold committed pages, and its header
    says WAL where a snapshot says rollback journal. Two snapshots of an unchanged database
    are identical byte for byte.
    """
    try:
        snapshot(live, scratch)
        return hashlib.sha256(scratch.read_bytes()).hexdigest()
    finally:
        scratch.unlink(missing_ok=True)


def load_into(copy: Path, live: Path) -> None:
    """Replace the content of the database at `live` with that of `copy`, under SQLite's locks."""
    with (
        contextlib.closing(_read_only(copy)) as source,
        contextlib.closing(sqlite3.connect(live, timeout=BUSY_TIMEOUT_S)) as target,
    ):
        target.execute("PRAGMA synchronous = FULL")
        source.backup(target)
