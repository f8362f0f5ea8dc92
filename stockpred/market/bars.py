"""Daily OHLCV frames: one schema for every source, validation, and merging.

A frame has a tz-naive DatetimeIndex named `date` (one row per trading day, ascending, unique)
and float columns open, high, low, close plus an integer volume.
"""

from __future__ import annotations

import pandas as pd

from stockpred.market.errors import BadData

COLUMNS = ["open", "high", "low", "close", "volume"]
PRICE_COLUMNS = ["open", "high", "low", "close"]


def normalize_frame(frame: pd.DataFrame, *, what: str) -> pd.DataFrame:
    """Return `frame` in the common schema; raise BadData when nothing usable remains."""
    renamed = frame.rename(columns={c: str(c).strip().lower().replace(" ", "_") for c in frame})
    missing = [c for c in COLUMNS if c not in renamed.columns]
    if missing:
        raise BadData(f"{what}: missing columns {missing}")
    out = renamed[COLUMNS].apply(pd.to_numeric, errors="coerce")
    index = pd.DatetimeIndex(pd.to_datetime(out.index))
    if index.tz is not None:
        index = index.tz_localize(None)
    out.index = index.normalize().as_unit("ns")
    out.index.name = "date"
    before = len(out)
    out = out.dropna()
    out = out[(out[PRICE_COLUMNS] > 0).all(axis=1) & (out["volume"] >= 0)]
    if out.empty:
        raise BadData(f"{what}: no usable rows (empty, or every row missing or non-positive)")
    if len(out) < before * 0.5:
        raise BadData(f"{what}: {before - len(out)} of {before} rows are missing or invalid")
    out = out[~out.index.duplicated(keep="last")].sort_index()
    out["volume"] = out["volume"].round().astype("int64")
    return out.astype({c: "float64" for c in PRICE_COLUMNS})


def merge_frames(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Union of two frames by date; `new` wins where both have a day."""
    if old is None or old.empty:
        return new
    merged = pd.concat([old[~old.index.isin(new.index)], new])
    return merged.sort_index()
