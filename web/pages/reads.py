"""What the dashboard's pages show, read with the helpers the JSON API reads with.

Read-only: the daily price cache, the model registry, the forecast ledger, job records, queue
depths, worker pings and the backup catalog. A part that does not answer is logged and named
as a problem on the page instead of failing it. Nothing here writes or queues work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError

from stockpred.infra.clock import utcnow
from stockpred.jobs.records import Job
from stockpred.ledger.accuracy import Accuracy, accuracy
from stockpred.ledger.entries import LedgerEntry
from stockpred.ledger.store import MAX_PAGE, MAX_SCORED, ForecastLedger
from stockpred.ledger.tracking import TrackedSymbols, default_symbols
from stockpred.market.daily_cache import CachedPrices, DailyCache
from stockpred.ml.registry import ModelRegistry, RegistryError
from stockpred.paths import DataTree
from stockpred.storage.catalog import list_backups
from stockpred.telemetry.queue_facts import queue_depths
from web.health import check_health
from web.services import Services

log = logging.getLogger(__name__)
ACCURACY_DAYS = 90  # the overview's accuracy window: recent enough to say how it does now
STALE_BACKUP = timedelta(days=2)  # the daily backup missed more than once
RECENT_JOBS = 50
MAX_HORIZON = 30


def age(since: str | None, now: datetime | None = None) -> str | None:
    """A timestamp's age in words ("3 h", "2 d"), or None when it is missing or unreadable."""
    if not since:
        return None
    try:
        then = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        return None
    if then.tzinfo is None:
        return None
    seconds = max(0.0, ((now or utcnow()) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def duration(job: Job) -> str | None:
    """How long a job ran (or has run), in words."""
    if not job.started_at:
        return None
    try:
        start = datetime.fromisoformat(job.started_at.replace("Z", "+00:00"))
        end = (
            datetime.fromisoformat(job.finished_at.replace("Z", "+00:00"))
            if job.finished_at
            else utcnow()
        )
    except ValueError:
        return None
    seconds = max(0.0, (end - start).total_seconds())
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


@dataclass(frozen=True)
class SymbolRow:
    """One symbol's line on the overview."""

    symbol: str
    tracked: bool
    last_close: float | None
    as_of: str | None
    forecast: LedgerEntry | None
    forecaster: str | None
    mase: float | None
    coverage: float | None
    n: int
    model_version: str | None
    model_age: str | None
    problem: str | None = None


@dataclass(frozen=True)
class Overview:
    """The overview page: symbols, queues and workers, the last backup, problems in words."""

    symbols: list[SymbolRow]
    health: str
    queues: dict[str, dict[str, Any]]
    last_backup: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)


def _registry(svc: Services) -> ModelRegistry:
    tree = DataTree.from_settings(svc.settings)
    return ModelRegistry(tree.ml_models, tree.scalers)


def _prices(svc: Services, symbol: str) -> CachedPrices | None:
    return DailyCache(DataTree.from_settings(svc.settings).daily_cache).load(symbol)


def _ledger_problem(exc: Exception) -> str:
    log.warning("dashboard: the forecast ledger did not answer: %s", getattr(exc, "orig", exc))
    return "The forecast ledger did not answer (is it migrated? `make ledger-upgrade`)."


def overview(svc: Services) -> Overview:
    """Everything the overview shows, each part read once."""
    problems: list[str] = []
    registry = _registry(svc)
    tracked: list[str] = []
    latest: dict[str, LedgerEntry] = {}
    realised: dict[str, Any] = {}
    try:
        tracked = TrackedSymbols(svc.ledger_engine, default_symbols(svc.settings)).symbols()
        ledger = ForecastLedger(svc.ledger_engine)
        # Each symbol's window ends at its latest scored forecast, so a replayed history
        # (`make backfill` on the embedded data, which ends in the past) shows its figures too.
        for symbol, last in ledger.latest_scored().items():
            since = last - timedelta(days=ACCURACY_DAYS)
            for row in ledger.realised_by_symbol(since=since, symbols=[symbol]):
                realised[symbol] = row
        for symbol in sorted(set(tracked) | set(registry.symbols())):
            found = ledger.history(symbol, horizon=1, limit=1)
            if found:
                latest[symbol] = found[0]
    except DBAPIError as exc:
        problems.append(_ledger_problem(exc))
    rows = [
        _symbol_row(
            svc, registry, symbol, tracked=symbol in tracked, latest=latest, realised=realised
        )
        for symbol in sorted(set(tracked) | set(registry.symbols()))
    ]
    health = check_health(svc)
    depths = queue_depths(svc.probe_redis) if health.services["redis"] != "down" else {}
    queues = {
        name: {"depth": depths.get(name), "workers": workers}
        for name, workers in health.checks["queues"].items()
    }
    for name, state in health.services.items():
        if state != "up":
            problems.append(_in_words(name, state))
    last_backup = _last_backup(svc)
    if last_backup is None:
        problems.append("There is no backup yet.")
    elif last_backup["stale"]:
        problems.append(f"The last backup is {last_backup['age']} old.")
    problems += [f"{row.symbol}: {row.problem}" for row in rows if row.problem]
    return Overview(rows, health.status, queues, last_backup, problems)


def _in_words(name: str, state: str) -> str:
    if name.startswith("worker_"):
        queue = name[len("worker_") :]
        return f"No worker is consuming the {queue} queue."
    return f"{name.capitalize()} is {state.replace('_', ' ')}."


def _symbol_row(
    svc: Services,
    registry: ModelRegistry,
    symbol: str,
    *,
    tracked: bool,
    latest: dict[str, LedgerEntry],
    realised: dict[str, Any],
) -> SymbolRow:
    prices = _prices(svc, symbol)
    problem = None
    version = trained_at = None
    try:
        info = registry.current(symbol)
        if info is not None:
            version, trained_at = info.version, info.metadata.get("trained_at")
    except RegistryError as exc:
        log.warning("dashboard: %s's current model is unreadable: %s", symbol, exc)
        problem = f"the current model is unreadable ({exc}); roll it back or retrain"
    entry = latest.get(symbol)
    figures = realised.get(symbol)
    return SymbolRow(
        symbol=symbol,
        tracked=tracked,
        last_close=float(prices.bars[-1][4]) if prices and prices.bars else None,
        as_of=prices.as_of if prices else None,
        forecast=entry,
        forecaster=entry.stored.forecast.forecaster if entry else None,
        mase=figures.mase if figures else None,
        coverage=figures.coverage if figures else None,
        n=figures.n if figures else 0,
        model_version=version,
        model_age=age(trained_at),
        problem=problem,
    )


def _last_backup(svc: Services) -> dict[str, Any] | None:
    found = list_backups(DataTree.from_settings(svc.settings).backups)
    if not found:
        return None
    newest = found[-1]
    try:
        created = datetime.fromisoformat(newest.created_at.replace("Z", "+00:00"))
        stale = utcnow() - created > STALE_BACKUP
    except ValueError:
        stale = True
    return {
        "name": newest.name,
        "kind": newest.kind,
        "created_at": newest.created_at,
        "age": age(newest.created_at),
        "size": newest.size,
        "stale": stale,
    }


@dataclass(frozen=True)
class SymbolPage:
    """The symbol page: price history, past forecasts scored, accuracy, model versions."""

    symbol: str
    prices: CachedPrices | None
    realised: list[LedgerEntry]
    accuracy: dict[int, Accuracy]
    models: dict[str, Any]
    max_horizon: int | None
    problems: list[str]

    def chart_data(self) -> dict[str, Any]:
        """The chart's series as the page embeds them (dates as ISO strings, closes)."""
        bars = self.prices.bars if self.prices else []
        return {
            "symbol": self.symbol,
            "dates": [row[0] for row in bars],
            "close": [row[4] for row in bars],
            "realised": [
                {
                    "date": entry.stored.forecast.target_date.isoformat(),
                    "actual": entry.score.actual,
                    "point": entry.stored.forecast.point,
                    "hit": entry.score.inside,
                }
                for entry in self.realised
                if entry.score is not None
            ],
            "horizon": min(self.max_horizon or 0, MAX_HORIZON),
        }


def symbol_page(svc: Services, symbol: str) -> SymbolPage:
    """Everything the symbol page shows."""
    problems: list[str] = []
    described = _registry(svc).describe(symbol)
    current = next((row for row in described["versions"] if row["current"]), None)
    max_horizon = None
    if current is not None and "problem" not in current:
        max_horizon = _registry(svc).info(symbol, current["version"]).metadata.get("max_horizon")
    realised: list[LedgerEntry] = []
    figures: dict[int, Accuracy] = {}
    try:
        ledger = ForecastLedger(svc.ledger_engine)
        realised = [
            e for e in ledger.history(symbol, horizon=1, limit=MAX_PAGE) if e.score is not None
        ]
        for horizon in (1, 5):
            scored = ledger.scored(symbol=symbol, horizon=horizon, limit=MAX_SCORED)
            if scored:
                figures[horizon] = accuracy(scored, horizon)
    except DBAPIError as exc:
        problems.append(_ledger_problem(exc))
    return SymbolPage(
        symbol=symbol,
        prices=_prices(svc, symbol),
        realised=realised,
        accuracy=figures,
        models=described,
        max_horizon=max_horizon if isinstance(max_horizon, int) else None,
        problems=problems,
    )


def recent_jobs(svc: Services) -> list[Job]:
    """The newest job records (they expire after JOB_TTL)."""
    return svc.jobs.recent(RECENT_JOBS)
