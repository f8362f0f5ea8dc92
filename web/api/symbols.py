"""`/api/v1/symbols`: the tracked-symbol list the daily run forecasts, shared by every host."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from stockpred.ledger.tracking import TrackedSymbols, default_symbols
from web.errors import ApiError
from web.params import parse_symbol
from web.services import services

bp = Blueprint("symbols", __name__, url_prefix="/api/v1/symbols")


def tracked() -> TrackedSymbols:
    """The tracked list on the ledger's database, from this app's settings."""
    svc = services()
    return TrackedSymbols(svc.ledger_engine, default_symbols(svc.settings))


@bp.get("")
def list_symbols() -> Response:
    """Every tracked symbol, with whether the setting or the API put it there."""
    entries = [entry.to_dict() for entry in tracked().entries()]
    return jsonify({"symbols": entries, "count": len(entries)})


@bp.post("/<path:symbol>")
def track(symbol: str) -> Response:
    """Track a symbol: 201 when added, 200 when it was tracked already."""
    sym = parse_symbol(symbol)
    changed = tracked().set(sym, True)
    response = jsonify({"symbol": sym, "tracked": True, "changed": changed})
    response.status_code = 201 if changed else 200
    return response


@bp.delete("/<path:symbol>")
def untrack(symbol: str) -> Response:
    """Stop tracking a symbol (404 when it is not tracked)."""
    sym = parse_symbol(symbol)
    if not tracked().set(sym, False):
        raise ApiError(404, "symbol not tracked", f"{sym} is not tracked: GET /api/v1/symbols")
    return jsonify({"symbol": sym, "tracked": False, "changed": True})
