"""The one symbol rule, and the NYSE calendar deciding trading days and when prices go stale."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from stockpred.market.calendar import (
    holidays,
    is_fresh,
    is_market_open,
    is_trading_day,
    last_close,
    trading_days_after,
)
from stockpred.market.embedded import EmbeddedSource
from stockpred.market.symbols import InvalidSymbol, normalize_symbol


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("nvda", "NVDA"),
        (" aapl ", "AAPL"),
        ("brk-b", "BRK-B"),
        ("^gspc", "^GSPC"),
        ("0700.hk", "0700.HK"),
        ("eurusd=x", "EURUSD=X"),
        ("ES=F", "ES=F"),
        ("BTC-USD", "BTC-USD"),
        ("ZZZZZZ", "ZZZZZZ"),
    ],
)
def test_real_tickers_are_accepted_and_upper_cased(raw: str, expected: str) -> None:
    assert normalize_symbol(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "INVALID!!",
        "A" * 16,
        "NV DA",
        "../etc",
        "^",
        "-A",
        "A-",
        "A=",
        "A^B",
        "NVDA;DROP",
        "ÄPPLE",
    ],
)
def test_malformed_symbols_are_rejected_saying_what_is_allowed(raw: str) -> None:
    with pytest.raises(InvalidSymbol, match="letters, digits"):
        normalize_symbol(raw)


def ny(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo("America/New_York"))


def test_market_hours_are_the_regular_session_on_weekdays() -> None:
    assert is_market_open(ny(2026, 11, 23, 9, 30))  # a Monday
    assert is_market_open(ny(2026, 11, 23, 15, 59))
    assert not is_market_open(ny(2026, 11, 23, 16, 0))
    assert not is_market_open(ny(2026, 11, 23, 9, 29))
    assert not is_market_open(ny(2026, 11, 21, 12, 0))  # Saturday
    assert is_market_open(ny(2026, 7, 1, 10, 0).astimezone(UTC))  # summer time, given in UTC


def test_the_last_close_skips_back_over_weekends() -> None:
    assert last_close(ny(2026, 11, 23, 8, 0)) == ny(2026, 11, 20, 16, 0)  # Monday → Friday
    assert last_close(ny(2026, 11, 24, 17, 0)) == ny(2026, 11, 24, 16, 0)


def test_during_the_session_prices_go_stale_after_the_ttl() -> None:
    ttl = timedelta(minutes=30)
    now = ny(2026, 11, 23, 11, 0)
    assert is_fresh(now - timedelta(minutes=29), now, ttl)
    assert not is_fresh(now - timedelta(minutes=31), now, ttl)


def test_outside_the_session_daily_data_lasts_24h_unless_a_close_happened_since() -> None:
    ttl = timedelta(minutes=30)
    evening = ny(2026, 11, 23, 20, 0)
    assert is_fresh(ny(2026, 11, 23, 16, 5), evening, ttl)
    assert not is_fresh(ny(2026, 11, 23, 15, 0), evening, ttl)  # fetched before today's close
    saturday = ny(2026, 11, 21, 12, 0)
    assert is_fresh(ny(2026, 11, 20, 17, 0), saturday, ttl)
    assert not is_fresh(ny(2026, 11, 20, 17, 0), ny(2026, 11, 21, 17, 30), ttl)  # over 24 h


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        # The NYSE's published holiday lists (2022: New Year's Day fell on a Saturday).
        (2022, ["01-17", "02-21", "04-15", "05-30", "06-20", "07-04", "09-05", "11-24", "12-26"]),
        (
            2025,
            [
                "01-01",
                "01-09",
                "01-20",
                "02-17",
                "04-18",
                "05-26",
                "06-19",
                "07-04",
                "09-01",
                "11-27",
                "12-25",
            ],
        ),
        (
            2026,
            [
                "01-01",
                "01-19",
                "02-16",
                "04-03",
                "05-25",
                "06-19",
                "07-03",
                "09-07",
                "11-26",
                "12-25",
            ],
        ),
    ],
)
def test_holidays_follow_the_exchange_rules(year: int, expected: list[str]) -> None:
    assert sorted(d.isoformat()[5:] for d in holidays(year)) == expected


@pytest.mark.parametrize("symbol", ["NVDA", "^GSPC", "AMZN", "^IXIC"])
def test_trading_days_are_exactly_the_days_of_real_daily_series(symbol: str) -> None:
    frame = EmbeddedSource().fetch(symbol).frame
    traded = set(frame.index.date)
    first, last = frame.index[0].date(), frame.index[-1].date()
    every_day = (first + timedelta(days=n) for n in range((last - first).days + 1))
    assert {day for day in every_day if is_trading_day(day)} == traded


def test_the_session_and_last_close_skip_holidays() -> None:
    assert not is_market_open(ny(2026, 11, 26, 11, 0))  # Thanksgiving
    assert last_close(ny(2026, 11, 27, 8, 0)) == ny(2026, 11, 25, 16, 0)
    assert last_close(ny(2025, 2, 18, 8, 0)) == ny(2025, 2, 14, 16, 0)  # over Presidents' Day
    # A forecast from Friday 2025-02-14 skips the Monday holiday.
    assert trading_days_after(date(2025, 2, 14), 2) == [date(2025, 2, 18), date(2025, 2, 19)]
