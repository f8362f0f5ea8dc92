"""The errors of backup, restore and the storage lock; each says why in its message."""

from __future__ import annotations


class BackupError(RuntimeError):
    """A backup could not be made or read; the message says why."""


class StorageBusy(BackupError):
    """Another backup, restore or cleanup holds the storage lock (a scheduled run skips)."""


class InsufficientSpace(BackupError):
    """Not enough free disk for the backup."""


class UnsafeArchive(BackupError):
    """An archive member that could write outside the data tree, or is not a plain file."""
