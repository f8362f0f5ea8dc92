"""Refreshing prices: TTL under a controllable clock, merging, restarts (locks: integration)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from stockpred.market.daily_cache import DailyCache
from stockpred.market.history import DamagedHistory, HistoryStore
from stockpred.market.service import MarketData
from stockpred.market.sources import SourceFrame

TTL = timedelta(minutes=30)


def frame(days: list[str], base: float = 100.0) -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.to_datetime(days), name="date")
    closes = [base + i for i in range(len(days))]
    return pd.DataFrame(
        {
            "open": closes,
            "high": [c + 1 for c in closes],
            "low": [c - 1 for c in closes],
            "close": closes,
            "volume": [1000 + i for i in range(len(days))],
        },
        index=index,
    )


class CountingSource:
    """Serves a fixed frame and records each fetch's start date."""

    name = "fake"

    def __init__(self, data: pd.DataFrame) -> None:
        self.data = data
        self.starts: list[date | None] = []

    def fetch(self, symbol: str, start: date | None = None) -> SourceFrame:
        self.starts.append(start)
        rows = self.data if start is None else self.data[self.data.index >= pd.Timestamp(start)]
        return SourceFrame(self.name, rows)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def market(root: Path, source: CountingSource, clock: Clock) -> MarketData:
    return MarketData(
        source=source,
        history=HistoryStore(root / "historical"),
        cache=DailyCache(root / "daily_cache"),
        intraday_ttl=TTL,
        clock=clock,
    )


def business_days(start: str, count: int) -> list[str]:
    return [d.strftime("%Y-%m-%d") for d in pd.bdate_range(start, periods=count)]


MONDAY_11AM = datetime(2026, 11, 23, 11, 0, tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)


def test_a_refresh_within_the_ttl_is_a_no_op_and_after_it_fetches_only_the_tail(
    tmp_path: Path,
) -> None:
    source = CountingSource(frame(business_days("2026-06-01", 120)))
    clock = Clock(MONDAY_11AM)
    data = market(tmp_path, source, clock)
    first = data.refresh("ACME")
    assert first.refreshed and first.rows == 120 and first.new_rows == 120
    assert source.starts == [None]
    clock.now += timedelta(minutes=29)
    assert not data.refresh("ACME").refreshed
    assert len(source.starts) == 1
    clock.now += timedelta(minutes=2)
    again = data.refresh("ACME")
    assert again.refreshed and again.new_rows == 0
    last_day = pd.Timestamp(business_days("2026-06-01", 120)[-1])
    assert source.starts[-1] == (last_day - timedelta(days=10)).date()


def test_closed_days_are_kept_when_the_source_later_returns_less(tmp_path: Path) -> None:
    days = business_days("2026-01-05", 200)
    clock = Clock(MONDAY_11AM)
    market(tmp_path, CountingSource(frame(days)), clock).refresh("ACME")
    newer = frame(days[-5:] + business_days("2026-10-19", 3)[1:], base=500.0)
    clock.now += timedelta(hours=1)
    result = market(tmp_path, CountingSource(newer), clock).refresh("ACME")
    stored = HistoryStore(tmp_path / "historical").load("ACME")
    assert stored is not None
    assert stored.index[0] == pd.Timestamp(days[0])
    assert result.rows == len(stored) == 202
    assert stored.loc[days[-1], "close"] == newer.loc[days[-1], "close"]  # newer data wins


def test_the_cache_survives_a_restart(tmp_path: Path) -> None:
    clock = Clock(MONDAY_11AM)
    market(tmp_path, CountingSource(frame(business_days("2026-06-01", 50))), clock).refresh("ACME")
    restarted_source = CountingSource(frame(business_days("2026-06-01", 50)))
    restarted = market(tmp_path, restarted_source, Clock(MONDAY_11AM + timedelta(minutes=5)))
    assert not restarted.refresh("ACME").refreshed
    assert restarted_source.starts == []
    entry = DailyCache(tmp_path / "daily_cache").load("ACME")
    assert entry is not None and entry.source == "fake" and len(entry.bars) == 50
    assert entry.records(3)[-1]["timestamp"] == business_days("2026-06-01", 50)[-1]


def test_the_daily_cache_keeps_only_the_last_1300_bars_but_history_keeps_all(
    tmp_path: Path,
) -> None:
    days = business_days("2020-01-01", 1400)
    market(tmp_path, CountingSource(frame(days)), Clock(MONDAY_11AM)).refresh("ACME")
    entry = DailyCache(tmp_path / "daily_cache").load("ACME")
    assert entry is not None
    assert len(entry.bars) == 1300 and entry.total_rows == 1400 and entry.first_date == days[0]


def test_a_damaged_history_file_is_fetched_again_whole_not_a_stuck_symbol(
    tmp_path: Path,
) -> None:
    days = business_days("2026-06-01", 50)
    source = CountingSource(frame(days))
    data = market(tmp_path, source, Clock(MONDAY_11AM))
    data.refresh("ACME")
    history = HistoryStore(tmp_path / "historical")
    damaged = history.path("ACME").read_bytes()
    history.path("ACME").write_bytes(damaged[: len(damaged) // 2])
    with pytest.raises(DamagedHistory, match=r"daily\.parquet cannot be read"):
        history.load("ACME")
    frame_now = data.bars("ACME")  # the daily cache is fresh: bars() must still mend it
    assert list(frame_now.index.strftime("%Y-%m-%d")) == days
    assert source.starts == [None, None]  # the second fetch was the whole history again
    assert (history.load("ACME") is not None) and len(history.load("ACME")) == 50


@pytest.mark.parametrize(
    "edit",
    [
        lambda raw: {**raw, "bars": [[1, 2]]},
        lambda raw: {**raw, "bars": "nope"},
        lambda raw: {**raw, "fetched_at": "2026-11-23T10:00:00"},
        lambda raw: ["not", "an", "object"],
    ],
)
def test_a_daily_cache_edited_into_another_shape_reads_as_a_miss_or_as_utc(
    tmp_path: Path, edit: Any
) -> None:
    market(
        tmp_path, CountingSource(frame(business_days("2026-06-01", 5))), Clock(MONDAY_11AM)
    ).refresh("ACME")
    cache = DailyCache(tmp_path / "daily_cache")
    path = cache.path("ACME")
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    entry = cache.load("ACME")
    if entry is not None:  # only the naive time is still usable: taken as UTC
        assert entry.fetched_at == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
        assert len(entry.records(5)) == 5


def test_a_naive_time_in_the_sidecar_is_taken_as_utc_by_the_freshness_check(
    tmp_path: Path,
) -> None:
    source = CountingSource(frame(business_days("2026-06-01", 5)))
    data = market(tmp_path, source, Clock(MONDAY_11AM))
    data.refresh("ACME")
    sidecar = DailyCache(tmp_path / "daily_cache").meta_path("ACME")
    raw = json.loads(sidecar.read_text())
    sidecar.write_text(
        json.dumps({**raw, "fetched_at": MONDAY_11AM.replace(tzinfo=None).isoformat()})
    )
    assert not data.refresh("ACME").refreshed  # fresh, read as UTC: no TypeError, no fetch
    assert source.starts == [None]


def test_tracked_symbols_are_those_with_prices_or_a_model(tmp_path: Path) -> None:
    from stockpred.market.factory import tracked_symbols
    from stockpred.ops.provision import run_setup
    from stockpred.settings import load_settings

    settings = load_settings({"STOCKPRED_DATA_DIR": str(tmp_path)})
    run_setup(settings)
    market(
        tmp_path / "persistent",
        CountingSource(frame(business_days("2026-06-01", 5))),
        Clock(MONDAY_11AM),
    )
    HistoryStore(settings.stock_historical_path).save("AAPL", frame(business_days("2026-06-01", 5)))
    (settings.stock_data_cache_path / "daily_cache" / "TSLA.json").write_text("{}")
    (settings.ml_model_path / "NVDA").mkdir()
    (settings.ml_model_path / "not a symbol!").mkdir()
    (settings.stock_historical_path / "EMPTY").mkdir()
    assert tracked_symbols(settings) == ["AAPL", "NVDA", "TSLA"]
