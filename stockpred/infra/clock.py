"""UTC time: the one way the service reads the clock for timestamps and renders them."""

from __future__ import annotations

from datetime import UTC, datetime

# Job stamps to the microsecond: a prediction waits and runs for a few milliseconds.
MICROSECONDS = "microseconds"


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def utcnow_iso(timespec: str = "milliseconds") -> str:
    """The current UTC time in RFC 3339 with a Z suffix."""
    return iso_z(utcnow(), timespec)


def iso_z(moment: datetime, timespec: str = "milliseconds") -> str:
    """An aware datetime in RFC 3339 with a Z suffix."""
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    """Parse an ISO 8601 timestamp; one without an offset is taken as UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
