"""The price-source protocol and `auto`: operator CSV, then Yahoo, then embedded data offline."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Protocol

from stockpred.market.errors import NoData, SourceUnavailable

if TYPE_CHECKING:
    import pandas as pd

    from stockpred.market.csv_source import CsvSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceFrame:
    """Bars and the name of the source that served them."""

    source: str
    frame: pd.DataFrame


class PriceSource(Protocol):
    """Anything that returns daily bars for a symbol."""

    name: str

    def fetch(self, symbol: str, start: date | None = None) -> SourceFrame:
        """Daily bars of `symbol` from `start` (None: all it has), or a MarketDataError."""
        ...


class AutoSource:
    """CSV files when an operator dropped some, else Yahoo, else embedded data when Yahoo is
    unreachable. An unreachable Yahoo is remembered for `offline_for` seconds so that later
    requests go straight to the embedded data instead of waiting again."""

    name = "auto"

    def __init__(
        self,
        csv: CsvSource,
        yahoo: PriceSource,
        embedded: PriceSource,
        offline_for: float = 60.0,
    ) -> None:
        self.csv = csv
        self.yahoo = yahoo
        self.embedded = embedded
        self.offline_for = offline_for
        self._offline_until = 0.0
        self._lock = threading.Lock()

    def fetch(self, symbol: str, start: date | None = None) -> SourceFrame:
        if self.csv.has(symbol):
            return self.csv.fetch(symbol, start)
        if time.monotonic() >= self._offline_until:
            try:
                return self.yahoo.fetch(symbol, start)
            except SourceUnavailable as exc:
                log.warning(
                    "Yahoo unreachable (%s); using embedded data for %ss",
                    exc,
                    int(self.offline_for),
                )
                with self._lock:
                    self._offline_until = time.monotonic() + self.offline_for
        try:
            return self.embedded.fetch(symbol, start)
        except NoData as exc:
            raise NoData(f"no data for {symbol}: Yahoo is unreachable and {exc}") from None
