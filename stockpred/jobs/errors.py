"""Error kinds: the names a job record's error carries, shared by the worker and the web.

A domain exception states its kind as a class attribute (`kind = ErrorKind.NO_DATA`), the task
base class writes it into the record, and the web maps kinds to status codes. Renaming an
exception class therefore changes no answer. Celery's own exceptions are mapped by the workers.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


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
    WORKER_LOST = "worker_lost"
    INTERNAL = "internal"


def kind_of(exc: BaseException) -> ErrorKind:
    """The kind an exception declares, or INTERNAL for one that declares none."""
    declared = getattr(exc, "kind", None)
    return declared if isinstance(declared, ErrorKind) else ErrorKind.INTERNAL


def error_record(exc: BaseException, *, kind: ErrorKind | None = None) -> dict[str, Any]:
    """The `error` of a job record: kind, the exception's class name (informative) and message."""
    return {
        "kind": str(kind or kind_of(exc)),
        "type": type(exc).__name__,
        "message": str(exc),
    }
