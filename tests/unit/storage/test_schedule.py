"""Beat replaces the original's crontab: each storage entry at its time, naming a real task."""

from __future__ import annotations

from datetime import timedelta

import celeryconfig


def test_storage_schedules_match_the_release_notes() -> None:
    schedule = celeryconfig.beat_schedule_for(timedelta(hours=6))
    backup = schedule["backup-daily"]
    assert backup["task"] == "maintenance.backup"
    assert backup["schedule"].hour == {2} and backup["schedule"].minute == {0}
    monitor = schedule["storage-monitor-every-6h"]
    assert monitor["task"] == "maintenance.monitor"
    assert monitor["schedule"].hour == {0, 6, 12, 18} and monitor["schedule"].minute == {0}
    cleanup = schedule["cleanup-weekly"]
    assert cleanup["task"] == "maintenance.cleanup"
    assert cleanup["schedule"].day_of_week == {0} and cleanup["schedule"].hour == {3}
    cache = schedule["cache-cleanup"]
    assert cache["task"] == "maintenance.cleanup" and cache["kwargs"]["scope"] == "caches"
    assert cache["schedule"] == timedelta(hours=6)
    for entry in (backup, cleanup, cache):
        assert entry["kwargs"]["scheduled"] is True, "scheduled runs never wait on the lock"
    assert celeryconfig.check_routes() == []
