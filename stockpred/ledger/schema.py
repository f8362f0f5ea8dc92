"""The ledger's tables in SQLAlchemy 2 Core: `forecasts` (append-only), `scores` (one per
forecast, written once) and `tracked_symbols` (the API's changes to the tracked list).

The migrations in `migrations/versions/` create exactly these tables (a test compares them);
change both together, with a new migration. Dates are DATE, times timezone-aware UTC, prices
double precision (a price is a measurement, not money: no exact decimal arithmetic is needed,
and a double keeps every value a source reports).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

# Constraint names follow one convention so migrations can name what they change.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
NATURAL_KEY = ("symbol", "as_of", "target_date", "horizon", "forecaster", "model_version")

metadata = MetaData(naming_convention=NAMING)
# SQLite makes only an INTEGER PRIMARY KEY an alias of its rowid (auto-incremented).
RowId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite keeps no offset: UTC is implied)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("a naive datetime has no place in the ledger: give it a timezone")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


forecasts = Table(
    "forecasts",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("symbol", String(15), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("target_date", Date, nullable=False),
    Column("horizon", Integer, nullable=False),
    Column("forecaster", String(32), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("point", Double, nullable=False),
    Column("lower", Double, nullable=True),
    Column("upper", Double, nullable=True),
    Column("level", Double, nullable=True),
    Column("naive", Double, nullable=False),
    Column("requested_at", UtcDateTime, nullable=False),
    Column("origin", String(16), nullable=False),
    UniqueConstraint(*NATURAL_KEY, name="uq_forecasts_natural_key"),
    CheckConstraint("horizon >= 1", name="horizon_positive"),
    CheckConstraint("target_date > as_of", name="target_after_as_of"),
    CheckConstraint(
        "(lower IS NULL AND upper IS NULL AND level IS NULL) OR "
        "(lower IS NOT NULL AND upper IS NOT NULL AND level IS NOT NULL AND lower <= upper "
        "AND level > 0 AND level < 1)",
        name="interval_whole",
    ),
    Index(None, "symbol", "target_date"),
    # Unscored look-ups scan forecasts due by a date; their scores are found by primary key.
    Index(None, "target_date"),
)

scores = Table(
    "scores",
    metadata,
    Column("forecast_id", RowId, ForeignKey("forecasts.id"), primary_key=True),
    Column("actual", Double, nullable=False),
    Column("previous_close", Double, nullable=False),
    Column("abs_error", Double, nullable=False),
    Column("pct_error", Double, nullable=False),
    Column("direction_hit", Boolean, nullable=False),
    Column("inside", Boolean, nullable=True),
    Column("naive_abs_error", Double, nullable=False),
    Column("naive_pct_error", Double, nullable=False),
    Column("naive_direction_hit", Boolean, nullable=False),
    Column("scored_at", UtcDateTime, nullable=False),
)

# One row per symbol the API added or removed: tracked true or false, and when that was said.
# The tracked list is TRACKED_SYMBOLS plus the rows tracked, minus the rows not tracked.
tracked_symbols = Table(
    "tracked_symbols",
    metadata,
    Column("symbol", String(15), primary_key=True),
    Column("tracked", Boolean, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
)
