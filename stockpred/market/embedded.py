"""Real daily prices shipped inside the package (`stockpred/market/data/*.csv.gz`).

Provenance and the split adjustments applied are in `data/PROVENANCE.md`. Offline, this is the
default data set; it is never synthetic.
"""

from __future__ import annotations

import io
from datetime import date
from importlib import resources

import pandas as pd

from stockpred.market.bars import normalize_frame
from stockpred.market.embedded_names import SUFFIX as _SUFFIX
from stockpred.market.embedded_names import embedded_symbols
from stockpred.market.errors import NoData
from stockpred.market.sources import SourceFrame

__all__ = ["EmbeddedSource", "embedded_symbols"]


class EmbeddedSource:
    """Serves the embedded data set."""

    name = "embedded"

    def fetch(self, symbol: str, start: date | None = None) -> SourceFrame:
        """All embedded bars of `symbol` from `start` on."""
        entry = resources.files("stockpred.market").joinpath("data", symbol + _SUFFIX)
        if not entry.is_file():
            raise NoData(
                f"no embedded data for {symbol}; embedded symbols: {', '.join(embedded_symbols())}"
            )
        raw = pd.read_csv(io.BytesIO(entry.read_bytes()), compression="gzip", index_col="date")
        frame = normalize_frame(raw, what=f"embedded {symbol}")
        if start is not None:
            frame = frame[frame.index >= pd.Timestamp(start)]
        return SourceFrame(self.name, frame)
