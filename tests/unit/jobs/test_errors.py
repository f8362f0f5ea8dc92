"""Error kinds: named by the exceptions, carried by job records, mapped by the web."""

from __future__ import annotations

import json

import pytest
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from stockpred.jobs.errors import ErrorKind, error_record, kind_of
from stockpred.jobs.submit import QueueUnavailable
from stockpred.market.errors import NoData, RateLimited, SourceUnavailable, UnknownSymbol
from stockpred.market.symbols import InvalidSymbol
from stockpred.ml.predict import HorizonUnsupported, NoModel
from stockpred.ml.registry import DamagedVersion, RegistryError
from tasks.maintenance import RollbackRefused
from tasks.training import TrainingBusy
from tests.support import ROOT
from workers.task_base import job_error


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (NoModel("x"), ErrorKind.NO_MODEL),
        (UnknownSymbol("x"), ErrorKind.UNKNOWN_SYMBOL),
        (NoData("x"), ErrorKind.NO_DATA),
        (InvalidSymbol("x"), ErrorKind.INVALID_SYMBOL),
        (RateLimited("x"), ErrorKind.SOURCE_UNAVAILABLE),
        (SourceUnavailable("x"), ErrorKind.SOURCE_UNAVAILABLE),
        (HorizonUnsupported("x"), ErrorKind.HORIZON_UNSUPPORTED),
        (DamagedVersion("x"), ErrorKind.DAMAGED_VERSION),
        (RollbackRefused("x"), ErrorKind.ROLLBACK_REFUSED),
        (TrainingBusy("x"), ErrorKind.TRAINING_BUSY),
        (QueueUnavailable("x"), ErrorKind.QUEUE_UNAVAILABLE),
        (RegistryError("x"), ErrorKind.INTERNAL),
        (KeyError("x"), ErrorKind.INTERNAL),
    ],
)
def test_each_domain_exception_names_its_kind(exc: Exception, kind: ErrorKind) -> None:
    assert kind_of(exc) is kind
    assert job_error(exc) == {"kind": kind.value, "type": type(exc).__name__, "message": str(exc)}


def test_renaming_an_exception_keeps_its_kind() -> None:
    renamed = type("NothingThere", (NoData,), {})
    assert error_record(renamed("gone"))["kind"] == "no_data"


def test_celery_time_limits_are_the_time_limit_kind_with_the_reason() -> None:
    hard = job_error(TimeLimitExceeded(7200))
    assert hard["kind"] == "time_limit"
    assert hard["message"] == "hard time limit (7200s) exceeded: the task was killed"
    assert job_error(SoftTimeLimitExceeded())["kind"] == "time_limit"


def test_the_openapi_document_lists_every_kind() -> None:
    document = json.loads((ROOT / "web" / "openapi.json").read_text())
    error = document["components"]["schemas"]["Job"]["properties"]["error"]
    assert error["properties"]["kind"]["enum"] == [kind.value for kind in ErrorKind]


def test_a_full_disk_is_its_own_kind_even_when_wrapped() -> None:
    import errno

    from stockpred.jobs.errors import ErrorKind, kind_of

    full = OSError(errno.ENOSPC, "No space left on device")
    assert kind_of(full) == ErrorKind.DISK_FULL
    try:
        try:
            raise full
        except OSError as exc:
            raise ValueError("keras could not save") from exc
    except ValueError as wrapped:
        assert kind_of(wrapped) == ErrorKind.DISK_FULL
    assert kind_of(OSError(errno.EACCES, "denied")) == ErrorKind.INTERNAL
