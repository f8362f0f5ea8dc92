"""Operator-supplied daily prices: CSV files in `historical/<SYMBOL>/`.

Format: a header row, then one row per trading day. Columns (case and order free):
`date` (YYYY-MM-DD), `open`, `high`, `low`, `close`, `volume`; an `Adj Close` column, as in
Yahoo's own CSV export, is accepted and ignored. Prices must be positive, high ≥ low, dates
unique across the symbol's files; UTF-8, with or without a byte-order mark. A malformed file
is reported with its name and line.
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pandas as pd

from stockpred.market.bars import COLUMNS, normalize_frame
from stockpred.market.errors import CsvFormatError, NoData
from stockpred.market.sources import SourceFrame

_ALIASES = {"adj close": None, "adj_close": None, "adjclose": None, "timestamp": "date"}


def _read_file(path: Path) -> pd.DataFrame:
    try:
        return _parse_file(path)
    except UnicodeDecodeError as exc:
        raise CsvFormatError(
            f"{path.name}: not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV"
        ) from None
    except OSError as exc:
        raise CsvFormatError(f"{path.name}: cannot be read ({exc.strerror or exc})") from None


def _parse_file(path: Path) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    # utf-8-sig: spreadsheet exports often start with a byte-order mark.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise CsvFormatError(f"{path.name}: the file is empty") from None
        names = [_ALIASES.get(h, h) for h in header]
        missing = [c for c in ["date", *COLUMNS] if c not in names]
        if missing:
            raise CsvFormatError(f"{path.name}: line 1: missing columns {missing}; got {header}")
        for line_no, cells in enumerate(reader, start=2):
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) != len(names):
                raise CsvFormatError(
                    f"{path.name}: line {line_no}: {len(cells)} fields, expected {len(names)}"
                )
            row = {n: c.strip() for n, c in zip(names, cells, strict=True) if n}
            try:
                parsed: dict[str, object] = {"date": date.fromisoformat(str(row["date"]))}
                for column in COLUMNS:
                    parsed[column] = float(str(row[column]))
            except ValueError as exc:
                raise CsvFormatError(f"{path.name}: line {line_no}: {exc}") from None
            prices = [float(str(parsed[c])) for c in ("open", "high", "low", "close")]
            if min(prices) <= 0 or float(str(parsed["volume"])) < 0:
                raise CsvFormatError(f"{path.name}: line {line_no}: prices must be positive")
            if float(str(parsed["high"])) < float(str(parsed["low"])):
                raise CsvFormatError(f"{path.name}: line {line_no}: high is below low")
            rows.append(parsed)
    if not rows:
        raise CsvFormatError(f"{path.name}: no data rows")
    return pd.DataFrame(rows).set_index("date")


class CsvSource:
    """Reads every `*.csv` in the symbol's folder under the historical path."""

    name = "csv"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def files(self, symbol: str) -> list[Path]:
        return sorted((self.directory / symbol).glob("*.csv"))

    def has(self, symbol: str) -> bool:
        return bool(self.files(symbol))

    def fetch(self, symbol: str, start: date | None = None) -> SourceFrame:
        """All rows of the symbol's CSV files (validated) from `start` on."""
        files = self.files(symbol)
        if not files:
            raise NoData(f"no CSV files for {symbol} in {self.directory / symbol}")
        frames = [_read_file(path) for path in files]
        combined = pd.concat(frames)
        duplicated = combined.index[combined.index.duplicated()]
        if len(duplicated):
            raise CsvFormatError(
                f"{symbol}: date {duplicated[0]} appears in more than one row or file"
            )
        frame = normalize_frame(combined, what=f"CSV {symbol}")
        if start is not None:
            frame = frame[frame.index >= pd.Timestamp(start)]
        return SourceFrame(self.name, frame)
