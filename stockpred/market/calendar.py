"""US equity market hours (NYSE regular session), used to decide when cached prices go stale.

Weekends are closed; exchange holidays are not modelled (a holiday is treated as a trading day,
which only costs an extra refetch).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

EXCHANGE_TZ = ZoneInfo("America/New_York")
OPEN = time(9, 30)
CLOSE = time(16, 0)
DAILY_TTL = timedelta(hours=24)


def is_market_open(now: datetime) -> bool:
    """True during the regular session (Mon-Fri 09:30-16:00 New York time)."""
    local = now.astimezone(EXCHANGE_TZ)
    return local.weekday() < 5 and OPEN <= local.time() < CLOSE


def last_close(now: datetime) -> datetime:
    """The most recent session close at or before `now`."""
    local = now.astimezone(EXCHANGE_TZ)
    candidate = datetime.combine(local.date(), CLOSE, tzinfo=EXCHANGE_TZ)
    if candidate > local:
        candidate -= timedelta(days=1)
    while candidate.weekday() >= 5:
        candidate -= timedelta(days=1)
    return candidate


def is_fresh(fetched_at: datetime, now: datetime, intraday_ttl: timedelta) -> bool:
    """Fresh: younger than the TTL while the market is open; else fetched after the last close
    and younger than 24 h."""
    age = now - fetched_at
    if age < timedelta(0):
        return True
    if is_market_open(now):
        return age < intraday_ttl
    return fetched_at >= last_close(now) and age < DAILY_TTL
