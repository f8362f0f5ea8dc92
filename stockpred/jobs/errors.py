"""Error kinds: the names a job record's error carries, shared by the worker and the web.

A domain exception states its kind as a class attribute (`kind = ErrorKind.NO_DATA`), the task
base class writes it into the record, and the web maps kinds to status codes. Renaming an
exception class therefore changes no answer. Celery's own exceptions are mapped by the workers.
"""

from __future__ import annotations

import errno
from enum import StrEnum
from typing import Any

# A full file system, or the user's quota on it.
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class ErrorKind(StrEnum):
    """Why a job failed (the `kind` of a job record's `error`)."""

    NO_MODEL = "no_model"
    UNKNOWN_SYMBOL = "unknown_symbol"
    INVALID_SYMBOL = "invalid_symbol"
    NO_DATA = "no_data"
    SOURCE_UNAVAILABLE = "source_unavailable"
    HORIZON_UNSUPPORTED = "horizon_unsupported"
    DAMAGED_VERSION = "damaged_version"
    ROLLBACK_REFUSED = "rollback_refused"
    TRAINING_BUSY = "training_busy"
    TIME_LIMIT = "time_limit"
    QUEUE_UNAVAILABLE = "queue_unavailable"
    RETRY = "retry"
    REDELIVERY_LIMIT = "redelivery_limit"
    DISK_FULL = "disk_full"
    WORKER_LOST = "worker_lost"
    REDIS_UNAVAILABLE = "redis_unavailable"
    INTERNAL = "internal"


def disk_full(exc: BaseException | None) -> bool:
    """True when `exc`, or an exception it was raised from or during, is ENOSPC or EDQUOT."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def kind_of(exc: BaseException) -> ErrorKind:
    """The kind an exception declares; DISK_FULL for a full disk; else INTERNAL."""
    declared = getattr(exc, "kind", None)
    if isinstance(declared, ErrorKind):
        return declared
    return ErrorKind.DISK_FULL if disk_full(exc) else ErrorKind.INTERNAL


def error_record(exc: BaseException, *, kind: ErrorKind | None = None) -> dict[str, Any]:
    """The `error` of a job record: kind, the exception's class name (informative) and message."""
    return {
        "kind": str(kind or kind_of(exc)),
        "type": type(exc).__name__,
        "message": str(exc),
    }
