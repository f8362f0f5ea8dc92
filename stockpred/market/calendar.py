"""The NYSE calendar: trading days, the regular session, and when cached prices go stale.

Holidays follow the exchange's rules as they stand since 1998 (observed on the nearest weekday;
New Year's Day on a Saturday is not observed), plus the unscheduled closures since 2001; checked
against every trading day of the embedded series (1997 to 2025). Early closes (13:00 on
some holiday eves) are treated as full sessions: data fetched in those three hours is only
refetched one intraday TTL sooner than needed.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

EXCHANGE_TZ = ZoneInfo("America/New_York")
OPEN = time(9, 30)
CLOSE = time(16, 0)
DAILY_TTL = timedelta(hours=24)
# Closures outside the holiday rules (attacks, storms, national days of mourning).
UNSCHEDULED_CLOSURES = frozenset(
    {
        date(2001, 9, 11),
        date(2001, 9, 12),
        date(2001, 9, 13),
        date(2001, 9, 14),
        date(2004, 6, 11),
        date(2007, 1, 2),
        date(2012, 10, 29),
        date(2012, 10, 30),
        date(2018, 12, 5),
        date(2025, 1, 9),
    }
)


def _easter(year: int) -> date:
    """Western Easter Sunday (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = (a + 11 * h + 22 * m) // 451
    month, day = divmod(h + m - 7 * n + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th `weekday` (Mon=0) of a month; n=-1 for the last."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    """Saturday holidays are observed on Friday, Sunday ones on Monday."""
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


@functools.cache
def holidays(year: int) -> frozenset[date]:
    """Weekdays of `year` on which the NYSE is closed."""
    found = {
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _easter(year) - timedelta(days=2),  # Good Friday
        _nth_weekday(year, 5, 0, -1),  # Memorial Day
        _observed(date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(date(year, 12, 25)),
    }
    if date(year, 1, 1).weekday() != 5:  # a Saturday New Year's Day is not observed
        found.add(_observed(date(year, 1, 1)))
    if year >= 1998:
        found.add(_nth_weekday(year, 1, 0, 3))  # Martin Luther King Jr. Day
    if year >= 2022:
        found.add(_observed(date(year, 6, 19)))  # Juneteenth
    found |= {d for d in UNSCHEDULED_CLOSURES if d.year == year}
    return frozenset(found)


def is_trading_day(day: date) -> bool:
    """A weekday that is not an exchange holiday."""
    return day.weekday() < 5 and day not in holidays(day.year)


def trading_days_after(day: date, count: int) -> list[date]:
    """The next `count` trading days after `day`."""
    found: list[date] = []
    current = day
    while len(found) < count:
        current += timedelta(days=1)
        if is_trading_day(current):
            found.append(current)
    return found


def is_market_open(now: datetime) -> bool:
    """True during the regular session (trading days 09:30-16:00 New York time)."""
    local = now.astimezone(EXCHANGE_TZ)
    return OPEN <= local.time() < CLOSE and is_trading_day(local.date())


def last_close(now: datetime) -> datetime:
    """The most recent session close at or before `now`."""
    local = now.astimezone(EXCHANGE_TZ)
    day = local.date()
    if datetime.combine(day, CLOSE, tzinfo=EXCHANGE_TZ) > local:
        day -= timedelta(days=1)
    while not is_trading_day(day):
        day -= timedelta(days=1)
    return datetime.combine(day, CLOSE, tzinfo=EXCHANGE_TZ)


def is_fresh(fetched_at: datetime, now: datetime, intraday_ttl: timedelta) -> bool:
    """Fresh: younger than the TTL while the market is open; else fetched after the last close
    and younger than 24 h."""
    age = now - fetched_at
    if age < timedelta(0):
        return True
    if is_market_open(now):
        return age < intraday_ttl
    return fetched_at >= last_close(now) and age < DAILY_TTL
