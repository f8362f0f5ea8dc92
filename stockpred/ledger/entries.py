"""The ledger's records: a forecast as computed, as stored, and its score. No database here."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from stockpred.market.symbols import InvalidSymbol, normalize_symbol

# Why a forecast was computed: a user's request, the daily run, or a replay of history.
ORIGINS = ("request", "daily", "backfill")
MAX_FORECASTER = 32
MAX_MODEL_VERSION = 64


class InvalidForecast(ValueError):
    """A forecast the ledger refuses to store; the message names the field and why."""


def _check_price(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidForecast(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise InvalidForecast(f"{name} must be a positive finite price, not {value!r}")


def _check_day(name: str, value: date) -> None:
    # A datetime is a date too; a day column must not silently drop a time of day.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidForecast(f"{name} must be a date, not {type(value).__name__}")


@dataclass(frozen=True)
class Forecast:
    """One forecast as computed: what it used, what it predicts, and the naive forecast beside it.

    `model_version` is "" for a forecaster without a trained model (naive, drift); `lower`,
    `upper` and `level` (e.g. 0.8) are all given or all None.
    """

    symbol: str
    as_of: date
    target_date: date
    horizon: int
    forecaster: str
    model_version: str
    point: float
    naive: float
    requested_at: datetime
    lower: float | None = None
    upper: float | None = None
    level: float | None = None
    origin: str = "request"

    def __post_init__(self) -> None:
        try:
            if normalize_symbol(self.symbol) != self.symbol:
                raise InvalidForecast(f"symbol {self.symbol!r} is not normalised")
        except InvalidSymbol as exc:
            raise InvalidForecast(str(exc)) from None
        _check_day("as_of", self.as_of)
        _check_day("target_date", self.target_date)
        if self.target_date <= self.as_of:
            raise InvalidForecast(
                f"target_date {self.target_date} must come after as_of {self.as_of}"
            )
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or self.horizon < 1:
            raise InvalidForecast(f"horizon must be a whole number >= 1, not {self.horizon!r}")
        if not self.forecaster or len(self.forecaster) > MAX_FORECASTER:
            raise InvalidForecast(f"forecaster must be 1 to {MAX_FORECASTER} characters")
        if len(self.model_version) > MAX_MODEL_VERSION:
            raise InvalidForecast(f"model_version must be at most {MAX_MODEL_VERSION} characters")
        _check_price("point", self.point)
        _check_price("naive", self.naive)
        self._check_interval()
        if self.requested_at.tzinfo is None or self.requested_at.utcoffset() is None:
            raise InvalidForecast("requested_at must be timezone-aware")
        if self.origin not in ORIGINS:
            raise InvalidForecast(f"origin must be one of {', '.join(ORIGINS)}: {self.origin!r}")

    def _check_interval(self) -> None:
        given = [v is not None for v in (self.lower, self.upper, self.level)]
        if not any(given):
            return
        if not all(given):
            raise InvalidForecast("lower, upper and level must be given together")
        assert self.lower is not None and self.upper is not None and self.level is not None
        _check_price("lower", self.lower)
        _check_price("upper", self.upper)
        if self.lower > self.upper:
            raise InvalidForecast(f"lower {self.lower} is above upper {self.upper}")
        if not 0 < self.level < 1:
            raise InvalidForecast(f"level must be a coverage between 0 and 1, not {self.level!r}")

    @property
    def key(self) -> tuple[str, date, date, int, str, str]:
        """The natural key: the same key is the same forecast, stored once."""
        return (
            self.symbol,
            self.as_of,
            self.target_date,
            self.horizon,
            self.forecaster,
            self.model_version,
        )

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["as_of"] = self.as_of.isoformat()
        values["target_date"] = self.target_date.isoformat()
        values["requested_at"] = self.requested_at.isoformat()
        return values


@dataclass(frozen=True)
class StoredForecast:
    """A forecast as the ledger holds it, with its row id."""

    id: int
    forecast: Forecast

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.forecast.to_dict()}


@dataclass(frozen=True)
class Score:
    """How a forecast and the naive forecast fared against the realised close; written once.

    Errors are absolute; `*_pct_error` is in percent of the realised close. A direction hit
    compares the sign of the predicted and the realised move from `previous_close` (the close
    at `as_of`), with no "hold" band: a forecast of no move hits only a close of no move.
    `inside` is None for a forecast without an interval.
    """

    forecast_id: int
    actual: float
    previous_close: float
    abs_error: float
    pct_error: float
    direction_hit: bool
    inside: bool | None
    naive_abs_error: float
    naive_pct_error: float
    naive_direction_hit: bool
    scored_at: datetime

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["scored_at"] = self.scored_at.isoformat()
        return values


@dataclass(frozen=True)
class LedgerEntry:
    """A stored forecast and its score, if it has one yet."""

    stored: StoredForecast
    score: Score | None

    def to_dict(self) -> dict[str, Any]:
        score = None if self.score is None else self.score.to_dict()
        return {**self.stored.to_dict(), "score": score}
