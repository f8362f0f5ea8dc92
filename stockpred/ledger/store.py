"""`ForecastLedger`: record forecasts append-only, record scores once, read them back.

A forecast is inserted only when its natural key (`schema.NATURAL_KEY`) is absent; otherwise
the stored row wins and is returned unchanged, so re-running a daily run or a backfill never
alters a forecast. The database settles races (INSERT … ON CONFLICT DO NOTHING on its unique
key), so two writers recording the same forecast leave one row. Nothing here updates or
deletes a row.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, Engine, Select, Table, and_, case, func, select
from sqlalchemy.dialects import postgresql, sqlite

from stockpred.ledger.database import write_transaction
from stockpred.ledger.entries import Forecast, LedgerEntry, Score, StoredForecast
from stockpred.ledger.schema import NATURAL_KEY, forecasts, scores

log = logging.getLogger(__name__)
MAX_PAGE = 1000
# Scored forecasts one accuracy figure reads at most (ten years of daily forecasts of 40 symbols
# at 5 horizons); a wider window is refused by the caller rather than read unbounded.
MAX_SCORED = 500_000
_FORECAST_FIELDS = (
    "symbol",
    "as_of",
    "target_date",
    "horizon",
    "forecaster",
    "model_version",
    "point",
    "naive",
    "requested_at",
    "lower",
    "upper",
    "level",
    "origin",
)
_SCORE_FIELDS = tuple(column.name for column in scores.columns)


class UnsupportedDatabase(RuntimeError):
    """The engine's database is neither SQLite nor PostgreSQL."""


@dataclass(frozen=True)
class LedgerCounts:
    """How many forecasts the ledger holds and how many of them are scored."""

    forecasts: int
    scored: int

    def to_dict(self) -> dict[str, int]:
        return {"forecasts": self.forecasts, "scored": self.scored}


def _inserted(
    connection: Connection, table: Table, values: Mapping[str, Any], key: Sequence[str]
) -> bool:
    """INSERT unless a row with the same `key` exists; True when this call inserted it.

    Told by RETURNING (a skipped row returns none): drivers' rowcounts for INSERT vary.
    """
    dialect = connection.dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        statement = sqlite.insert(table)
    else:
        raise UnsupportedDatabase(f"the ledger runs on SQLite or PostgreSQL, not {dialect}")
    returned = table.c[key[0]]
    statement = statement.values(values).on_conflict_do_nothing(index_elements=key)
    return connection.execute(statement.returning(returned)).first() is not None


def _stored(row: Any) -> StoredForecast:
    values = row._mapping
    return StoredForecast(
        id=int(values["id"]), forecast=Forecast(**{f: values[f] for f in _FORECAST_FIELDS})
    )


def _score(row: Any, prefix: str = "") -> Score:
    values = row._mapping
    return Score(**{f: values[prefix + f] for f in _SCORE_FIELDS})


@dataclass(frozen=True)
class RealisedFigures:
    """A symbol's realised figures over a window: MASE against naive, interval coverage, n.

    `mase` is None when the naive forecast made no error; `coverage` None without intervals.
    """

    symbol: str
    n: int
    mase: float | None
    coverage: float | None
    coverage_n: int
    level: float | None


class ForecastLedger:
    """The forecast ledger on one database (the engine chooses which)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, forecast: Forecast) -> StoredForecast:
        """Store `forecast` unless the same one is stored; return the stored row either way."""
        values = {f: getattr(forecast, f) for f in _FORECAST_FIELDS}
        with write_transaction(self.engine) as connection:
            inserted = _inserted(connection, forecasts, values, NATURAL_KEY)
            row = connection.execute(
                select(forecasts).where(
                    and_(*(forecasts.c[name] == values[name] for name in NATURAL_KEY))
                )
            ).one()
        stored = _stored(row)
        if not inserted and stored.forecast != forecast:
            log.info(
                "forecast %s %s→%s by %s %r was stored before; kept the stored one (id %d)",
                forecast.symbol,
                forecast.as_of,
                forecast.target_date,
                forecast.forecaster,
                forecast.model_version,
                stored.id,
            )
        return stored

    def record_many(self, new: Iterable[Forecast]) -> int:
        """Store each forecast unless the same one is stored, in one transaction; return how
        many were new (the rest were kept as stored)."""
        inserted = 0
        with write_transaction(self.engine) as connection:
            for forecast in new:
                values = {f: getattr(forecast, f) for f in _FORECAST_FIELDS}
                inserted += _inserted(connection, forecasts, values, NATURAL_KEY)
        return inserted

    def get(self, forecast_id: int) -> LedgerEntry | None:
        """The forecast with this id and its score, or None."""
        with self.engine.connect() as connection:
            row = connection.execute(
                self._entries().where(forecasts.c.id == forecast_id)
            ).one_or_none()
        return None if row is None else self._entry(row)

    def unscored(
        self, *, through: date | None = None, symbols: Iterable[str] | None = None
    ) -> list[StoredForecast]:
        """Forecasts without a score whose target date is `through` or earlier (None: any)."""
        query = (
            select(forecasts)
            .outerjoin(scores, scores.c.forecast_id == forecasts.c.id)
            .where(scores.c.forecast_id.is_(None))
            .order_by(forecasts.c.symbol, forecasts.c.target_date, forecasts.c.id)
        )
        if through is not None:
            query = query.where(forecasts.c.target_date <= through)
        if symbols is not None:
            query = query.where(forecasts.c.symbol.in_(list(symbols)))
        with self.engine.connect() as connection:
            return [_stored(row) for row in connection.execute(query)]

    def record_scores(self, new_scores: Iterable[Score]) -> int:
        """Store each score unless its forecast has one; return how many were stored."""
        stored = 0
        with write_transaction(self.engine) as connection:
            for score in new_scores:
                values = {f: getattr(score, f) for f in _SCORE_FIELDS}
                stored += _inserted(connection, scores, values, ("forecast_id",))
        return stored

    def history(
        self,
        symbol: str,
        *,
        start: date | None = None,
        end: date | None = None,
        horizon: int | None = None,
        forecaster: str | None = None,
        origins: Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[LedgerEntry]:
        """A symbol's forecasts with their scores, newest target date first, one page of them."""
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise ValueError(f"limit must be 1 to {MAX_PAGE} and offset >= 0")
        query = _filtered(
            self._entries(),
            symbol=symbol,
            start=start,
            end=end,
            horizon=horizon,
            forecaster=forecaster,
            origins=origins,
        )
        query = query.order_by(forecasts.c.target_date.desc(), forecasts.c.id.desc())
        with self.engine.connect() as connection:
            rows = connection.execute(query.limit(limit).offset(offset))
            return [self._entry(row) for row in rows]

    def scored(
        self,
        *,
        symbol: str | None = None,
        start: date | None = None,
        end: date | None = None,
        horizon: int | None = None,
        forecaster: str | None = None,
        origins: Sequence[str] | None = None,
        limit: int = MAX_SCORED,
    ) -> list[LedgerEntry]:
        """Scored forecasts (of one symbol, or all) with target dates in [start, end], oldest
        first; at most `limit` of them."""
        query = self._entries().where(scores.c.forecast_id.is_not(None))
        query = _filtered(
            query,
            symbol=symbol,
            start=start,
            end=end,
            horizon=horizon,
            forecaster=forecaster,
            origins=origins,
        )
        query = query.order_by(forecasts.c.target_date, forecasts.c.symbol, forecasts.c.id)
        with self.engine.connect() as connection:
            return [self._entry(row) for row in connection.execute(query.limit(limit))]

    def latest_scored(self, *, horizon: int = 1) -> dict[str, date]:
        """Each symbol's latest target date with a scored forecast of `horizon`."""
        query = (
            select(forecasts.c.symbol, func.max(forecasts.c.target_date))
            .join(scores, scores.c.forecast_id == forecasts.c.id)
            .where(forecasts.c.horizon == horizon)
            .group_by(forecasts.c.symbol)
        )
        with self.engine.connect() as connection:
            return {symbol: last for symbol, last in connection.execute(query)}

    def realised_by_symbol(
        self, *, since: date, horizon: int = 1, symbols: Iterable[str] | None = None
    ) -> list[RealisedFigures]:
        """Each symbol's realised figures over forecasts of `horizon` with targets from `since`
        (of `symbols`, or all), aggregated by the database (one row per symbol read)."""
        inside = case((scores.c.inside.is_(True), 1), else_=0)
        query = (
            select(
                forecasts.c.symbol,
                func.count(),
                func.sum(scores.c.abs_error),
                func.sum(scores.c.naive_abs_error),
                func.count(scores.c.inside),
                func.sum(inside),
                func.avg(forecasts.c.level),
            )
            .join(scores, scores.c.forecast_id == forecasts.c.id)
            .where(forecasts.c.target_date >= since, forecasts.c.horizon == horizon)
            .group_by(forecasts.c.symbol)
            .order_by(forecasts.c.symbol)
        )
        if symbols is not None:
            query = query.where(forecasts.c.symbol.in_(list(symbols)))
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            RealisedFigures(
                symbol=symbol,
                n=int(n),
                mase=float(model) / float(naive) if naive else None,
                coverage=float(covered) / int(with_interval) if with_interval else None,
                coverage_n=int(with_interval),
                level=None if level is None else float(level),
            )
            for symbol, n, model, naive, with_interval, covered, level in rows
        ]

    def counts(self) -> LedgerCounts:
        """How many forecasts are stored and how many are scored."""
        with self.engine.connect() as connection:
            total = connection.execute(select(func.count()).select_from(forecasts)).scalar_one()
            scored = connection.execute(select(func.count()).select_from(scores)).scalar_one()
        return LedgerCounts(int(total), int(scored))

    @staticmethod
    def _entries() -> Select[Any]:
        labelled = [column.label(f"score_{column.name}") for column in scores.columns]
        return select(forecasts, *labelled).outerjoin(
            scores, scores.c.forecast_id == forecasts.c.id
        )

    @staticmethod
    def _entry(row: Any) -> LedgerEntry:
        scored = row._mapping["score_forecast_id"] is not None
        return LedgerEntry(_stored(row), _score(row, "score_") if scored else None)


def _filtered(
    query: Select[Any],
    *,
    symbol: str | None,
    start: date | None,
    end: date | None,
    horizon: int | None,
    forecaster: str | None,
    origins: Sequence[str] | None,
) -> Select[Any]:
    """`query` narrowed to the forecasts matching every filter given (None: any)."""
    if symbol is not None:
        query = query.where(forecasts.c.symbol == symbol)
    if start is not None:
        query = query.where(forecasts.c.target_date >= start)
    if end is not None:
        query = query.where(forecasts.c.target_date <= end)
    if horizon is not None:
        query = query.where(forecasts.c.horizon == horizon)
    if forecaster is not None:
        query = query.where(forecasts.c.forecaster == forecaster)
    if origins is not None:
        query = query.where(forecasts.c.origin.in_(list(origins)))
    return query
