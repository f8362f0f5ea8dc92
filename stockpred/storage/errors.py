"""The errors of backup, restore and the storage lock; each says why in its message."""

from __future__ import annotations

from stockpred.jobs.errors import ErrorKind


class BackupError(RuntimeError):
    """A backup could not be made or read; the message says why."""


class StorageBusy(BackupError):
    """Another backup, restore or cleanup holds the storage lock (a scheduled run skips)."""


class StorageLockUnavailable(BackupError):
    """The storage lock lives in a Redis that does not answer, so no run may start."""


class InsufficientSpace(BackupError):
    """Not enough free disk for the backup, found before writing or when the disk filled."""

    kind = ErrorKind.DISK_FULL


class UnsafeArchive(BackupError):
    """An archive member that could write outside the data tree, or is not a plain file."""
