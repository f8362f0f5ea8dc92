"""The latest daily run's record in Redis: when it ran, which prediction jobs it queued, which
symbols it skipped and why. `GET /api/v1/predictions/daily-status` reads it with the jobs' states.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import redis

LATEST_KEY = "stockpred:daily-run:latest"


@dataclass(frozen=True)
class DailyRun:
    """One daily run: the prediction job queued per symbol, and the symbols skipped with why."""

    run_id: str
    started_at: str
    horizon: int
    queued: dict[str, str] = field(default_factory=dict)  # symbol -> job id
    skipped: dict[str, str] = field(default_factory=dict)  # symbol -> reason

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DailyRuns:
    """Where the latest daily run is kept (expires with the job records it points at)."""

    def __init__(self, client: redis.Redis, ttl: timedelta) -> None:
        self.client = client
        self.ttl = ttl

    def save(self, run: DailyRun) -> None:
        self.client.set(LATEST_KEY, json.dumps(run.to_dict()), ex=self.ttl)

    def latest(self) -> DailyRun | None:
        raw = self.client.get(LATEST_KEY)
        return None if raw is None else DailyRun(**json.loads(raw))
