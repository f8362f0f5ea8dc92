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
import re
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from stockpred.infra.files import CHUNK, FILE_MODE, sha256_stream
from stockpred.storage.errors import BackupError, UnsafeArchive

MANIFEST = "manifest.json"
DATA_PREFIX = "data/"
PLAIN_SUFFIX = ".tar.gz"
ENCRYPTED_SUFFIX = ".tar.gz.enc"
# A manifest is a few hundred bytes per file: this allows some 200,000 files, and no more is read.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")
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
        self,
        relative: str,
        path: Path,
        size: int,
        mtime: float,
        advance: Callable[[int], None],
        *,
        mode: int = FILE_MODE,
    ) -> str:
        """Store a file as `data/<relative>`; return the sha256 of the bytes stored."""
        member = tarfile.TarInfo(DATA_PREFIX + relative)
        member.size, member.mtime, member.mode = size, int(mtime), mode
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
        try:
            with tarfile.open(fileobj=io.BytesIO(plain), mode="r:gz") as tar:
                yield tar
        except DAMAGED_ARCHIVE_ERRORS as exc:
            raise BackupError(f"{archive.name} is not a readable archive: {exc}") from None
        return
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            yield tar
    except DAMAGED_ARCHIVE_ERRORS as exc:
        raise BackupError(f"{archive.name} is not a readable archive: {exc}") from None


def parse_manifest(data: bytes) -> list[FileEntry]:
    """The entries of a manifest document; BackupError when it is not one."""
    try:
        files = json.loads(data)["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"the manifest is not a manifest document ({exc})") from None
    if not isinstance(files, list):
        raise BackupError("the manifest's files are not a list")
    return [_entry(number, raw) for number, raw in enumerate(files)]


def _entry(number: int, raw: Any) -> FileEntry:
    """One manifest entry, its fields of the right types (the manifest is read, not trusted)."""
    fields = ("path", "size", "mtime", "sha256", "category", "stored_in")
    if not isinstance(raw, dict) or set(raw) != set(fields):
        raise BackupError(f"manifest entry {number} does not have exactly the fields {fields}")
    texts_ok = all(isinstance(raw[k], str) for k in ("path", "category", "stored_in"))
    size, mtime = raw["size"], raw["mtime"]
    numbers_ok = (
        isinstance(size, int)
        and not isinstance(size, bool)
        and size >= 0
        and isinstance(mtime, int | float)
        and not isinstance(mtime, bool)
    )
    if not (texts_ok and numbers_ok and isinstance(raw["sha256"], str)):
        raise BackupError(f"manifest entry {number} has a field of the wrong type")
    if not _SHA256.fullmatch(raw["sha256"]):
        raise BackupError(f"manifest entry {number} has no sha256 digest")
    return FileEntry(**raw)


def read_manifest(archive: Path, key: str | None) -> list[FileEntry]:
    """The manifest of an archive (the archive must be decryptable with `key` if encrypted)."""
    with open_archive(archive, key) as tar:
        try:
            member = tar.getmember(MANIFEST)
        except KeyError:
            raise BackupError(f"{archive.name} has no {MANIFEST}") from None
        if not member.isreg() or member.size > MAX_MANIFEST_BYTES:
            raise BackupError(
                f"{archive.name}: {MANIFEST} is not a plain file of at most "
                f"{MAX_MANIFEST_BYTES} bytes"
            )
        handle = tar.extractfile(member)
        assert handle is not None
        data = handle.read(member.size)  # at most MAX_MANIFEST_BYTES, checked above
    return parse_manifest(data)


def copy_member(source: IO[bytes], target: IO[bytes], size: int) -> str:
    """Stream exactly `size` bytes from `source` into `target`; return their sha256.

    Reads in chunks, never more than `size` + 1 bytes: a member longer or shorter than its
    manifest says is refused (UnsafeArchive) whatever its header claims.
    """
    digest = hashlib.sha256()
    left = size
    while left > 0:
        chunk = source.read(min(CHUNK, left))
        if not chunk:
            raise UnsafeArchive(f"member is shorter than the {size} bytes its manifest lists")
        digest.update(chunk)
        target.write(chunk)
        left -= len(chunk)
    if source.read(1):
        raise UnsafeArchive(f"member is longer than the {size} bytes its manifest lists")
    return digest.hexdigest()


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
                if relative in seen:
                    raise UnsafeArchive(f"member {member.name!r} appears twice")
                seen.add(relative)
                entry = expected.get(relative)
                if entry is not None and member.size != entry.size:
                    # Not read: a header that claims more than the manifest is a bomb's shape.
                    problems.append(f"{name}: {relative} is not the size its manifest lists")
                    continue
                handle = tar.extractfile(member)
                assert handle is not None
                digest, _ = sha256_stream(handle)
                if entry is None:
                    problems.append(f"{name}: {relative} is not in the manifest")
                elif digest != entry.sha256:
                    problems.append(f"{name}: {relative} does not match its checksum")
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
