"""Parsing of path, query and body values into clean values or 400 answers."""

from __future__ import annotations

from typing import Any

from flask import request

from stockpred.market.symbols import InvalidSymbol, normalize_symbol
from web.errors import ApiError


def parse_symbol(raw: str) -> str:
    """The normalised symbol, or a 400 that says what is allowed."""
    try:
        return normalize_symbol(raw)
    except InvalidSymbol as exc:
        raise ApiError(400, "invalid symbol", str(exc)) from None


def parse_int(name: str, raw: Any, low: int, high: int, default: int | None) -> int | None:
    """A whole number in [low, high]; the default when absent; else (empty too) a 400."""
    if raw is None:
        return default
    text = str(raw).strip()
    if (
        isinstance(raw, bool)
        or not (text.isascii() and text.isdigit())
        or not low <= int(text) <= high
    ):
        raise ApiError(
            400, f"invalid {name}", f"{name} must be a whole number from {low} to {high}"
        )
    return int(text)


def parse_bool(name: str, raw: Any, default: bool = False) -> bool:
    """true/false, 1/0, yes/no; the default when absent; else (empty too) a 400."""
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ApiError(400, f"invalid {name}", f"{name} must be true or false")


def json_body() -> dict[str, Any]:
    """The request's JSON object body ({} when empty); a 400 for anything else."""
    if not request.get_data():
        return {}
    try:
        body = request.get_json(silent=True, force=True)  # clients often omit the Content-Type
    except RecursionError:  # nested deeper than the parser goes: not a body this API takes
        raise ApiError(400, "invalid body", "the body is nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid body", "the body must be a JSON object")
    return body
