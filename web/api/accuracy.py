"""`/api/v1/predictions/{history,accuracy,calibration}`: the ledger's track record, read-only.

Every figure stands beside the naive forecast's, with `n`. The window is `?from=&to=` (target
dates, inclusive) or `?days=` (target dates in the last N days); `?origin=live` keeps what was
forecast at the time, `?origin=backfill` the replayed history. The math is
`stockpred.ledger.accuracy` (pure Python: the web has no numpy).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request

from stockpred.infra.clock import utcnow
from stockpred.ledger.accuracy import accuracy
from stockpred.ledger.calibration import calibration
from stockpred.ledger.entries import MAX_FORECASTER, ORIGINS, LedgerEntry
from stockpred.ledger.store import MAX_PAGE, MAX_SCORED, ForecastLedger
from web.errors import ApiError
from web.params import parse_int, parse_symbol
from web.services import services

bp = Blueprint("accuracy", __name__, url_prefix="/api/v1/predictions")
MAX_DAYS = 3650
MAX_HORIZON = 30
MAX_OFFSET = 10_000_000
_FORECASTER = re.compile(rf"^[a-z0-9_\-]{{1,{MAX_FORECASTER}}}$")


@dataclass(frozen=True)
class Window:
    """Target dates from `start` to `end`, both inclusive (None: unbounded)."""

    start: date | None
    end: date | None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "from": None if self.start is None else self.start.isoformat(),
            "to": None if self.end is None else self.end.isoformat(),
        }


def _date(name: str) -> date | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"invalid {name}", f"{name} must be a date as YYYY-MM-DD") from None


def _window() -> Window:
    days = parse_int("days", request.args.get("days"), 1, MAX_DAYS, None)
    start, end = _date("from"), _date("to")
    if days is not None:
        if start is not None or end is not None:
            raise ApiError(400, "invalid window", "give either days or from/to, not both")
        return Window(utcnow().date() - timedelta(days=days), None)
    if start is not None and end is not None and start > end:
        raise ApiError(400, "invalid window", f"from {start} is after to {end}")
    return Window(start, end)


def _forecaster() -> str | None:
    raw = request.args.get("forecaster")
    if raw is not None and not _FORECASTER.match(raw):
        raise ApiError(
            400,
            "invalid forecaster",
            f"forecaster must be 1 to {MAX_FORECASTER} of a-z, 0-9, '_' and '-' (e.g. lstm)",
        )
    return raw


# "live": what was forecast at the time (a user's request or the daily run), not replayed.
ORIGIN_FILTERS = {"live": ("request", "daily"), **{o: (o,) for o in ORIGINS}}


def _origin() -> str | None:
    raw = request.args.get("origin")
    if raw is not None and raw not in ORIGIN_FILTERS:
        raise ApiError(
            400, "invalid origin", f"origin must be one of {', '.join(sorted(ORIGIN_FILTERS))}"
        )
    return raw


def _origins(origin: str | None) -> tuple[str, ...] | None:
    return None if origin is None else ORIGIN_FILTERS[origin]


def _ledger() -> ForecastLedger:
    return ForecastLedger(services().ledger_engine)


def _scored(
    window: Window,
    horizon: int,
    forecaster: str | None,
    origin: str | None,
    symbol: str | None = None,
) -> list[LedgerEntry]:
    rows = _ledger().scored(
        symbol=symbol,
        start=window.start,
        end=window.end,
        horizon=horizon,
        forecaster=forecaster,
        origins=_origins(origin),
        limit=MAX_SCORED + 1,
    )
    if len(rows) > MAX_SCORED:
        raise ApiError(
            400, "window too large", f"more than {MAX_SCORED} scored forecasts: narrow the window"
        )
    return rows


def _horizon() -> int:
    found = parse_int("horizon", request.args.get("horizon"), 1, MAX_HORIZON, 1)
    assert found is not None
    return found


@bp.get("/history/<path:symbol>")
def history(symbol: str) -> Response:
    """A symbol's forecasts with their scores, newest target date first, one page."""
    sym = parse_symbol(symbol)
    window = _window()
    horizon = parse_int("horizon", request.args.get("horizon"), 1, MAX_HORIZON, None)
    limit = parse_int("limit", request.args.get("limit"), 1, MAX_PAGE, 100)
    offset = parse_int("offset", request.args.get("offset"), 0, MAX_OFFSET, 0)
    assert limit is not None and offset is not None
    entries = _ledger().history(
        sym,
        start=window.start,
        end=window.end,
        horizon=horizon,
        forecaster=_forecaster(),
        origins=_origins(_origin()),
        limit=limit,
        offset=offset,
    )
    return jsonify(
        {
            "symbol": sym,
            "window": window.to_dict(),
            "limit": limit,
            "offset": offset,
            "count": len(entries),
            "forecasts": [entry.to_dict() for entry in entries],
        }
    )


def _figures(entries: list[LedgerEntry], horizon: int) -> dict[str, Any]:
    return {
        **accuracy(entries, horizon).to_dict(),
        "forecasters": sorted({e.stored.forecast.forecaster for e in entries}),
    }


@bp.get("/accuracy/summary")
def summary() -> Response:
    """Every symbol's figures and the pooled ones, over one window and horizon."""
    window, horizon, forecaster, origin = _window(), _horizon(), _forecaster(), _origin()
    entries = _scored(window, horizon, forecaster, origin)
    by_symbol: dict[str, list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        by_symbol[entry.stored.forecast.symbol].append(entry)
    return jsonify(
        {
            "window": window.to_dict(),
            "horizon": horizon,
            "forecaster": forecaster,
            "origin": origin,
            "pooled": _figures(entries, horizon),
            "symbols": [
                {"symbol": symbol, **_figures(rows, horizon)}
                for symbol, rows in sorted(by_symbol.items())
            ],
        }
    )


@bp.get("/accuracy/<path:symbol>")
def symbol_accuracy(symbol: str) -> Response:
    """One symbol's figures beside the naive forecast's, over a window and a horizon."""
    sym = parse_symbol(symbol)
    window, horizon, forecaster, origin = _window(), _horizon(), _forecaster(), _origin()
    entries = _scored(window, horizon, forecaster, origin, sym)
    return jsonify(
        {
            "symbol": sym,
            "window": window.to_dict(),
            "horizon": horizon,
            "forecaster": forecaster,
            "origin": origin,
            **_figures(entries, horizon),
        }
    )


@bp.get("/calibration")
def coverage_by_month() -> Response:
    """Nominal against realised interval coverage by symbol and month (?symbol= for one)."""
    raw = request.args.get("symbol")
    sym = None if raw is None else parse_symbol(raw)
    window, horizon, forecaster, origin = _window(), _horizon(), _forecaster(), _origin()
    entries = _scored(window, horizon, forecaster, origin, sym)
    return jsonify(
        {
            "window": window.to_dict(),
            "horizon": horizon,
            "forecaster": forecaster,
            "origin": origin,
            "rows": calibration(entries),
        }
    )
