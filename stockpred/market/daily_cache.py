"""The daily cache: one small JSON file per symbol with freshness metadata and recent bars.

Written by workers after every refresh (atomically); read by the web process to answer
`/api/v1/historical` without pandas. The full history lives in `stockpred.market.history`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stockpred.infra.clock import utcnow
from stockpred.infra.filememo import FileMemo
from stockpred.infra.files import atomic_write
from stockpred.market.calendar import is_fresh

MAX_DAYS = 730  # the most bars /api/v1/historical answers (the original's bound)
# Five years of sessions and a margin: the dashboard's symbol page charts them.
KEEP_BARS = 1300
SCHEMA = 1


@dataclass(frozen=True)
class CacheMeta:
    """When and where a symbol's cached bars came from."""

    symbol: str
    source: str
    fetched_at: datetime
    as_of: str
    first_date: str
    total_rows: int

    def is_fresh(self, now: datetime, intraday_ttl: timedelta) -> bool:
        return is_fresh(self.fetched_at, now, intraday_ttl)


@dataclass(frozen=True)
class CachedPrices(CacheMeta):
    """Recent bars of one symbol and where and when they came from."""

    bars: list[list[Any]]  # [date, open, high, low, close, volume], ascending

    def records(self, days: int) -> list[dict[str, Any]]:
        """The last `days` bars in the original API's row shape."""
        return [
            {
                "symbol": self.symbol,
                "timestamp": row[0],
                "open": row[1],
                "high": row[2],
                "low": row[3],
                "close": row[4],
                "volume": row[5],
            }
            for row in self.bars[-days:]
        ]


def _aware(text: str) -> datetime:
    """A stored time; one written without an offset (by hand) is taken as UTC."""
    when = datetime.fromisoformat(text)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _are_bars(bars: Any) -> bool:
    """True for a list of [date, open, high, low, close, volume] rows, as `store` writes."""
    return isinstance(bars, list) and all(isinstance(r, list) and len(r) == 6 for r in bars)


@functools.lru_cache(maxsize=4096)  # read on every cached prediction: the Path is built once
def _meta_path(directory: Path, symbol: str) -> Path:
    return directory / f"{symbol}.meta.json"


class DailyCache:
    """Reads and writes `<daily_cache>/<SYMBOL>.json`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._memo = FileMemo()

    def path(self, symbol: str) -> Path:
        return self.directory / f"{symbol}.json"

    def meta_path(self, symbol: str) -> Path:
        return _meta_path(self.directory, symbol)

    def meta(self, symbol: str) -> CacheMeta | None:
        """Freshness record from the small sidecar file (re-read only when it changes)."""
        return self._memo.read(self.meta_path(symbol), lambda _: self._read_meta(symbol))

    def _read_meta(self, symbol: str) -> CacheMeta | None:
        try:
            raw = json.loads(self.meta_path(symbol).read_text(encoding="utf-8"))
            return CacheMeta(
                raw["symbol"],
                raw["source"],
                _aware(raw["fetched_at"]),
                raw["as_of"],
                raw["first_date"],
                int(raw["total_rows"]),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def as_of(self, symbol: str) -> str | None:
        """Date of the last cached bar."""
        meta = self.meta(symbol)
        return None if meta is None else meta.as_of

    def load(self, symbol: str) -> CachedPrices | None:
        """The cached entry, or None when absent or unreadable (treated as a miss)."""
        try:
            raw = json.loads(self.path(symbol).read_text(encoding="utf-8"))
            if raw.get("schema") != SCHEMA or not _are_bars(raw["bars"]):
                return None
            return CachedPrices(
                symbol=raw["symbol"],
                source=raw["source"],
                fetched_at=_aware(raw["fetched_at"]),
                as_of=raw["as_of"],
                first_date=raw["first_date"],
                total_rows=int(raw["total_rows"]),
                bars=raw["bars"],
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def store(
        self,
        *,
        symbol: str,
        source: str,
        bars: list[list[Any]],
        first_date: str,
        total_rows: int,
        fetched_at: datetime | None = None,
    ) -> CachedPrices:
        """Write the entry atomically and return it."""
        when = fetched_at or utcnow()
        recent = bars[-KEEP_BARS:]
        entry = CachedPrices(symbol, source, when, recent[-1][0], first_date, total_rows, recent)
        body = {
            "schema": SCHEMA,
            "symbol": symbol,
            "source": source,
            "fetched_at": when.isoformat(),
            "as_of": entry.as_of,
            "first_date": first_date,
            "total_rows": total_rows,
            "bars": recent,
        }
        atomic_write(self.path(symbol), json.dumps(body, separators=(",", ":")))
        meta = {k: v for k, v in body.items() if k != "bars"}
        atomic_write(self.meta_path(symbol), json.dumps(meta, separators=(",", ":")))
        return entry

    def symbols(self) -> list[str]:
        """Symbols with a cache entry."""
        return sorted(
            p.name[: -len(".json")]
            for p in self.directory.glob("*.json")
            if not p.name.endswith(".meta.json")
        )
