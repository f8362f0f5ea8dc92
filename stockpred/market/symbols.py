"""The one symbol rule of the whole system: normalise, or reject with a message saying why."""

from __future__ import annotations

import re

from stockpred.jobs.errors import ErrorKind

MAX_LENGTH = 15
ALLOWED = (
    "1 to 15 characters: letters, digits, '.', '-', an optional leading '^' (indices) and an "
    "optional '=X' style suffix (e.g. NVDA, BRK-B, ^GSPC, 0700.HK, EURUSD=X)"
)
_SYMBOL = re.compile(r"^\^?[A-Z0-9](?:[A-Z0-9.\-]*[A-Z0-9])?(?:=[A-Z]{1,2})?$")


class InvalidSymbol(ValueError):
    """A symbol that cannot be a ticker."""

    kind = ErrorKind.INVALID_SYMBOL


def normalize_symbol(raw: str) -> str:
    """Upper-case and validate a ticker symbol; raise InvalidSymbol with what is allowed."""
    symbol = (raw or "").strip().upper()
    if not symbol:
        raise InvalidSymbol(f"the symbol is empty; use {ALLOWED}")
    if len(symbol) > MAX_LENGTH:
        raise InvalidSymbol(f"{raw[:40]!r} is too long; use {ALLOWED}")
    if not _SYMBOL.match(symbol):
        raise InvalidSymbol(f"{raw!r} is not a ticker symbol; use {ALLOWED}")
    return symbol
