"""The embedded data: real, split-adjusted, provenance recorded, in the common schema."""

from __future__ import annotations

import hashlib
from importlib import resources

import pandas as pd
import pytest

from stockpred.market.embedded import EmbeddedSource, embedded_symbols


def test_the_seed_tickers_are_embedded() -> None:
    assert {"NVDA", "TSLA", "AAPL"} <= set(embedded_symbols())


@pytest.mark.parametrize("symbol", ["NVDA", "TSLA", "AAPL"])
def test_each_series_is_clean_daily_ohlcv(symbol: str) -> None:
    frame = EmbeddedSource().fetch(symbol).frame
    assert len(frame) >= 200
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert (frame[["open", "high", "low", "close"]] > 0).all().all()
    assert (frame["high"] >= frame["low"]).all()
    assert (frame.index.day_of_week < 5).all()


# Split days (public record) inside the embedded ranges: an unadjusted series would show an
# overnight close ratio near 1/ratio there (0.5 for 2-for-1).
SPLIT_DAYS = {
    "NVDA": ["2000-06-27", "2001-09-17", "2006-04-07", "2007-09-11", "2021-07-20"],
    "AAPL": ["2000-06-21", "2005-02-28"],
    "AMZN": ["1998-06-02", "1999-01-05", "1999-09-02"],
    "MSFT": ["2003-02-18"],
}


@pytest.mark.parametrize(("symbol", "day"), [(s, d) for s, ds in SPLIT_DAYS.items() for d in ds])
def test_no_unadjusted_split_remains(symbol: str, day: str) -> None:
    close = EmbeddedSource().fetch(symbol).frame["close"]
    position = close.index.get_indexer([pd.Timestamp(day)])[0]
    assert position > 0, f"{day} is a trading day in the data"
    ratio = close.iloc[position] / close.iloc[position - 1]
    assert 0.75 < ratio < 1.33, f"{symbol} {day}: overnight ratio {ratio:.3f}"


def test_every_file_has_a_provenance_note_with_its_checksum() -> None:
    folder = resources.files("stockpred.market").joinpath("data")
    notes = folder.joinpath("PROVENANCE.md").read_text(encoding="utf-8")
    for symbol in embedded_symbols():
        digest = hashlib.sha256(folder.joinpath(f"{symbol}.csv.gz").read_bytes()).hexdigest()
        assert symbol in notes and digest in notes, symbol


def test_the_start_date_filters_rows() -> None:
    frame = EmbeddedSource().fetch("NVDA", pd.Timestamp("2024-01-02").date()).frame
    assert frame.index[0] >= pd.Timestamp("2024-01-02")
