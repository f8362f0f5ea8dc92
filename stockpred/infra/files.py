"""File helpers for persistent_data: atomic replacement, sha256 of a file, inter-process locks.

Every write into the data root goes through `atomic_writer`/`atomic_write` (a temp file in the
same folder, fsync, `os.replace`, fsync of the folder) or, for writers that need a path of
their own (parquet, tar), `atomic_path`. Locks are `filelock` locks: they serialise processes
on one host only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, overload

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)
DIR_MODE = 0o755
PRIVATE_DIR_MODE = 0o700
FILE_MODE = 0o644
SECRET_MODE = 0o600
CHUNK = 1 << 20

__all__ = [
    "CHUNK",
    "DIR_MODE",
    "FILE_MODE",
    "PRIVATE_DIR_MODE",
    "SECRET_MODE",
    "LockBusy",
    "atomic_path",
    "atomic_write",
    "atomic_writer",
    "file_lock",
    "read_json_object",
    "sha256_file",
    "sha256_stream",
]


class LockBusy(RuntimeError):
    """A non-blocking `file_lock` found the lock held by another process."""


@contextlib.contextmanager
def atomic_path(path: Path, mode: int = FILE_MODE, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path beside `path`; once the block ends it is fsynced and renamed over it.

    On any exception the temp file is removed and `path` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


@overload
def atomic_writer(
    path: Path, mode: int = ..., binary: Literal[False] = ...
) -> contextlib.AbstractContextManager[IO[str]]: ...
@overload
def atomic_writer(
    path: Path, mode: int = ..., *, binary: Literal[True]
) -> contextlib.AbstractContextManager[IO[bytes]]: ...
def atomic_writer(path: Path, mode: int = FILE_MODE, binary: bool = False) -> Any:
    """A file that replaces `path` atomically when the block ends without an exception."""
    return _atomic_writer(path, mode, binary)


@contextlib.contextmanager
def _atomic_writer(path: Path, mode: int, binary: bool) -> Iterator[IO[Any]]:
    with atomic_path(path, mode) as tmp, tmp.open("wb" if binary else "w") as handle:
        yield handle


def atomic_write(path: Path, data: str | bytes, mode: int = FILE_MODE) -> None:
    """Write `data` to `path` atomically with the given mode."""
    with atomic_path(path, mode) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object kept in a file, or None when the file is missing or not one (logged)."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s cannot be read as JSON (%s); ignored", path, exc)
        return None
    if not isinstance(found, dict):
        log.warning("%s holds JSON of another shape; ignored", path)
        return None
    return found


def sha256_stream(handle: IO[bytes]) -> tuple[str, int]:
    """The hex sha256 of what is left in `handle`, and how many bytes that was."""
    digest = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: handle.read(CHUNK), b""):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's content."""
    with path.open("rb") as handle:
        return sha256_stream(handle)[0]


@contextlib.contextmanager
def file_lock(path: Path, *, blocking: bool = True, busy: str = "") -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the block.

    With `blocking=False` a held lock raises LockBusy(`busy`) at once instead of waiting.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, mode=FILE_MODE, thread_local=False)
    try:
        lock.acquire(blocking=blocking)
    except Timeout:
        raise LockBusy(busy or f"{path} is locked by another process") from None
    try:
        yield
    finally:
        lock.release()
