"""The backup archive format: a gzip tar of `data/<path>` members and a closing manifest.

An archive holds each stored file under `data/<path relative to the data root>` and, as its last
member, `manifest.json`: every file of the backed-up state with its size, mtime, sha256 and
category, and the name of the archive that stores its bytes (this one, or a base). Checksums
are computed from the very bytes written into the archive (one read per file). An encrypted
archive is the whole `.tar.gz` sealed with Fernet from `cryptography` (AES-128-CBC +
HMAC-SHA256, a vetted recipe). Which archives exist and their metadata live in
`stockpred.storage.catalog`; what goes into one, in `stockpred.storage.backup`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from stockpred.infra.files import FILE_MODE, sha256_stream
from stockpred.storage.errors import BackupError, UnsafeArchive

MANIFEST = "manifest.json"
DATA_PREFIX = "data/"
PLAIN_SUFFIX = ".tar.gz"
ENCRYPTED_SUFFIX = ".tar.gz.enc"
# Level 6 is gzip's (and `tar czf`'s) default; tarfile's own default of 9 is ~3x slower.
GZIP_LEVEL = 6

# What reading a damaged gzip tar can raise: zlib.error is not an OSError, and a flipped byte
# deep in the stream surfaces as one only when the reader gets there.
DAMAGED_ARCHIVE_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)


@dataclass(frozen=True)
class FileEntry:
    """One file of a backed-up state, as the manifest lists it."""

    path: str
    size: int
    mtime: float
    sha256: str
    category: str
    stored_in: str  # name of the archive holding its bytes (this one, or a base)


def archive_file_name(name: str, encrypted: bool) -> str:
    """The file name of backup `name`'s archive."""
    return name + (ENCRYPTED_SUFFIX if encrypted else PLAIN_SUFFIX)


def encrypt(data: bytes, key: str) -> bytes:
    """Seal bytes with the Fernet key."""
    # Deferred: cryptography loads only for encrypted backups.
    from cryptography.fernet import Fernet

    return Fernet(key.encode()).encrypt(data)


def decrypt(data: bytes, key: str) -> bytes:
    """Open bytes sealed with the Fernet key (InvalidToken: wrong key, or altered)."""
    # Deferred: cryptography loads only for encrypted backups.
    from cryptography.fernet import Fernet

    return Fernet(key.encode()).decrypt(data)


def encrypt_file(path: Path, key: str) -> None:
    """Replace a finished (still temporary) archive by its encrypted form."""
    path.write_bytes(encrypt(path.read_bytes(), key))


class _HashingReader:
    """Reads a file while hashing exactly the bytes handed to tarfile."""

    def __init__(self, handle: IO[bytes], progress: Callable[[int], None]) -> None:
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


class ArchiveWriter:
    """Adds data members, then the manifest, to an open gzip tar."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self._tar = tar

    def add_file(
        self, relative: str, path: Path, size: int, mtime: float, advance: Callable[[int], None]
    ) -> str:
        """Store a file as `data/<relative>`; return the sha256 of the bytes stored."""
        member = tarfile.TarInfo(DATA_PREFIX + relative)
        member.size, member.mtime, member.mode = size, int(mtime), FILE_MODE
        with path.open("rb") as handle:
            reader = _HashingReader(handle, advance)
            # tarfile only calls read() on the file object it is given.
            self._tar.addfile(member, reader)
        if reader.count != size:
            raise BackupError(f"{relative} changed size while being backed up; try again")
        return reader.digest.hexdigest()

    def add_manifest(self, manifest: dict[str, Any], entries: list[FileEntry]) -> None:
        """Close the archive's content with its manifest (header fields plus every entry)."""
        data = json.dumps({**manifest, "files": [asdict(e) for e in entries]}, indent=1).encode()
        member = tarfile.TarInfo(MANIFEST)
        member.size, member.mtime, member.mode = len(data), int(time.time()), FILE_MODE
        self._tar.addfile(member, io.BytesIO(data))


@contextlib.contextmanager
def write_archive(path: Path) -> Iterator[ArchiveWriter]:
    """Write a plain gzip tar at `path` (a temporary name: the caller publishes it)."""
    with (
        open(path, "wb") as raw,
        tarfile.open(fileobj=raw, mode="w:gz", compresslevel=GZIP_LEVEL) as tar,
    ):
        yield ArchiveWriter(tar)


@contextlib.contextmanager
def open_archive(archive: Path, key: str | None) -> Iterator[tarfile.TarFile]:
    """Open a plain or Fernet-encrypted archive for reading."""
    if archive.name.endswith(".enc"):
        if not key:
            raise BackupError(f"{archive.name} is encrypted: set BACKUP_ENCRYPTION_KEY")
        # Deferred: cryptography loads only for encrypted backups.
        from cryptography.fernet import InvalidToken

        try:
            plain = decrypt(archive.read_bytes(), key)
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


def parse_manifest(data: bytes) -> list[FileEntry]:
    """The entries of a manifest document."""
    return [FileEntry(**entry) for entry in json.loads(data)["files"]]


def read_manifest(archive: Path, key: str | None) -> list[FileEntry]:
    """The manifest of an archive (the archive must be decryptable with `key` if encrypted)."""
    with open_archive(archive, key) as tar:
        member = tar.getmember(MANIFEST)
        handle = tar.extractfile(member)
        assert handle is not None
        data = handle.read()
    return parse_manifest(data)


def safe_member_path(name: str) -> str:
    """The data-root-relative path of a member, or UnsafeArchive."""
    if not name.startswith(DATA_PREFIX):
        raise UnsafeArchive(f"member {name!r} is outside data/")
    relative = PurePosixPath(name[len(DATA_PREFIX) :])
    if relative.is_absolute() or not relative.parts or ".." in relative.parts:
        raise UnsafeArchive(f"member {name!r} has an absolute or parent path")
    return str(relative)


def check_archive(
    archive: Path, key: str | None, expected: dict[str, FileEntry], name: str
) -> tuple[int, int, list[str]]:
    """Read every member; compare stored files with the manifest. (files, bytes, problems)."""
    problems: list[str] = []
    seen: set[str] = set()
    files = total = 0
    with open_archive(archive, key) as tar:
        try:
            for member in tar:
                if member.name == MANIFEST:
                    continue
                if not member.isreg():
                    raise UnsafeArchive(
                        f"member {member.name!r} is not a regular file "
                        "(links and devices are refused)"
                    )
                relative = safe_member_path(member.name)
                handle = tar.extractfile(member)
                assert handle is not None
                digest, _ = sha256_stream(handle)
                entry = expected.get(relative)
                if entry is None:
                    problems.append(f"{name}: {relative} is not in the manifest")
                elif digest != entry.sha256:
                    problems.append(f"{name}: {relative} does not match its checksum")
                seen.add(relative)
                files += 1
                total += member.size
            # Read on to the end of the gzip stream, as `gzip -t` does: the tar reader stops at
            # the end-of-archive marker, so damage in the padding and the trailing CRC would
            # otherwise go unseen.
            stream = tar.fileobj
            while stream is not None and stream.read(1 << 20):
                pass
        except DAMAGED_ARCHIVE_ERRORS as exc:
            problems.append(f"{name}: the archive is truncated or corrupt ({exc})")
    missing = sorted(set(expected) - seen)
    if missing:
        problems.append(f"{name}: {len(missing)} file(s) missing, e.g. {missing[0]}")
    return files, total, problems
