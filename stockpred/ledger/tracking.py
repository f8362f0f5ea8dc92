"""The tracked-symbol list: TRACKED_SYMBOLS (default the embedded symbols) changed by the API.

The changes live in the ledger's database (`tracked_symbols`), so every host sees one list; the
setting stays the starting point. A symbol added is tracked whatever the setting says, one
removed is not, until the API says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from stockpred.infra.clock import utcnow
from stockpred.ledger.database import write_transaction
from stockpred.ledger.schema import tracked_symbols
from stockpred.ledger.store import UnsupportedDatabase
from stockpred.market.embedded_names import embedded_symbols
from stockpred.settings import Settings


def default_symbols(settings: Settings) -> tuple[str, ...]:
    """TRACKED_SYMBOLS, or every embedded symbol when it is not set."""
    if settings.tracked_symbols is not None:
        return settings.tracked_symbols
    return tuple(embedded_symbols())


@dataclass(frozen=True)
class TrackedSymbol:
    """A tracked symbol and why: "setting" (TRACKED_SYMBOLS or embedded) or "api" (added)."""

    symbol: str
    source: str
    changed_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        changed = None if self.changed_at is None else self.changed_at.isoformat()
        return {"symbol": self.symbol, "source": self.source, "changed_at": changed}


class TrackedSymbols:
    """The tracked list: the defaults with the API's additions and removals applied."""

    def __init__(
        self,
        engine: Engine,
        defaults: Sequence[str],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.defaults = tuple(defaults)
        self.clock = clock

    def entries(self) -> list[TrackedSymbol]:
        """Every tracked symbol, sorted."""
        with self.engine.connect() as connection:
            rows = {row.symbol: row for row in connection.execute(select(tracked_symbols))}
        listed = [
            TrackedSymbol(symbol, "setting", None) for symbol in self.defaults if symbol not in rows
        ]
        listed += [
            TrackedSymbol(
                row.symbol, "setting" if row.symbol in self.defaults else "api", row.changed_at
            )
            for row in rows.values()
            if row.tracked
        ]
        return sorted(listed, key=lambda entry: entry.symbol)

    def symbols(self) -> list[str]:
        """The tracked symbols' names, sorted."""
        return [entry.symbol for entry in self.entries()]

    def is_tracked(self, symbol: str) -> bool:
        return symbol in self.symbols()

    def set(self, symbol: str, tracked: bool) -> bool:
        """Track or stop tracking `symbol` (a normalised symbol); True when the list changed."""
        was = self.is_tracked(symbol)
        values = {"symbol": symbol, "tracked": tracked, "changed_at": self.clock()}
        with write_transaction(self.engine) as connection:
            dialect = connection.dialect.name
            if dialect == "postgresql":
                statement: Any = postgresql.insert(tracked_symbols)
            elif dialect == "sqlite":
                statement = sqlite.insert(tracked_symbols)
            else:
                raise UnsupportedDatabase(f"the ledger runs on SQLite or PostgreSQL, not {dialect}")
            statement = statement.values(values).on_conflict_do_update(
                index_elements=["symbol"],
                set_={"tracked": tracked, "changed_at": values["changed_at"]},
            )
            connection.execute(statement)
        return was != tracked
