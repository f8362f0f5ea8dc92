"""Recording each computed prediction into the ledger without ever failing the prediction.

A write that fails (database down, locked past its timeout, not migrated) is logged with the
symbol and as_of, counted, and handed to `defer` (in the service: a `maintenance.record_forecasts`
task that retries with backoff, so the forecast lands once the database is back). A result the
ledger refuses (malformed) is logged and counted, never retried. The ledger is built on first
use, in the process that writes (after fork).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from stockpred.ledger.entries import Forecast, InvalidForecast
from stockpred.ledger.recording import forecasts_of
from stockpred.ledger.store import ForecastLedger

log = logging.getLogger(__name__)
Defer = Callable[[list[dict[str, Any]]], None]


class OutcomeCounter(Protocol):
    """Counts recording outcomes (a prometheus Counter with an `outcome` label)."""

    def labels(self, outcome: str) -> Any: ...


class ForecastRecorder:
    """Appends a prediction's forecasts to the ledger; failures are logged, counted, deferred."""

    def __init__(
        self, ledger: Callable[[], ForecastLedger], defer: Defer, outcomes: OutcomeCounter
    ) -> None:
        self._ledger_factory = ledger
        self._ledger: ForecastLedger | None = None
        self.defer = defer
        self.outcomes = outcomes

    def ledger(self) -> ForecastLedger:
        if self._ledger is None:
            self._ledger = self._ledger_factory()
        return self._ledger

    def record_result(self, result: Mapping[str, Any], *, origin: str = "request") -> int:
        """Record every horizon row of `result`; the number of rows handed to the ledger."""
        try:
            made = forecasts_of(result, origin=origin)
        except InvalidForecast as exc:
            log.error(
                "prediction of %s as of %s not recorded in the ledger: %s",
                result.get("symbol"),
                result.get("as_of"),
                exc,
            )
            self.outcomes.labels("refused").inc()
            return 0
        return self.record(made)

    def record(self, made: list[Forecast]) -> int:
        """Record `made`; on a database failure hand them all to `defer` instead of raising.

        Forecasts already stored before the failure are deferred too: recording is idempotent.
        """
        if not made:
            return 0
        try:
            for forecast in made:
                self.ledger().record(forecast)
        except SQLAlchemyError as exc:
            first = made[0]
            log.warning(
                "ledger write of %d forecasts of %s as of %s failed, deferred: %s",
                len(made),
                first.symbol,
                first.as_of,
                str(getattr(exc, "orig", None) or exc).strip(),
            )
            self.outcomes.labels("failed").inc(len(made))
            self._defer(made)
            return 0
        self.outcomes.labels("recorded").inc(len(made))
        return len(made)

    def _defer(self, made: list[Forecast]) -> None:
        try:
            self.defer([forecast.to_dict() for forecast in made])
        except Exception:
            log.exception(
                "could not defer %d forecasts of %s as of %s: they are lost",
                len(made),
                made[0].symbol,
                made[0].as_of,
            )
            self.outcomes.labels("lost").inc(len(made))
        else:
            self.outcomes.labels("deferred").inc(len(made))
