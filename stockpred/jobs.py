"""Durable job records in Redis: what was asked, its state, progress, result or error.

A record is written before its task is sent, so an unknown id (404) differs from a queued one.
Workers update records through `JobStore.update`, which never resurrects a missing record and
never moves a cancelled job back to running. Records expire `JOB_TTL` after their last change.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import redis

KEY_PREFIX = "stockpred:job:"
STATES = ("queued", "started", "progress", "succeeded", "failed", "cancelled")
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
_JSON_FIELDS = ("progress", "result", "error", "params")

# Atomic "update if present": a late worker update must not recreate an expired record, and a
# cancelled job stays cancelled whatever its task reports afterwards.
_UPDATE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local current = redis.call('HGET', KEYS[1], 'state')
if current == 'cancelled' and ARGV[1] ~= 'cancelled' then return -1 end
if #ARGV > 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 4)) end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'state', ARGV[1]) end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if ARGV[1] == 'succeeded' or ARGV[1] == 'failed' or ARGV[1] == 'cancelled' then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[2], 60)
end
return 1
"""
DONE_PREFIX = "stockpred:jobdone:"


def utcnow_iso() -> str:
    """Current UTC time in RFC 3339 with a Z suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Job:
    """One unit of work submitted through the API or the CLI."""

    id: str
    kind: str
    task_name: str
    queue: str
    state: str
    created_at: str
    updated_at: str
    symbol: str | None = None
    params: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    result: Any = None
    error: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form used by the API."""
        return {
            "id": self.id,
            "kind": self.kind,
            "task_name": self.task_name,
            "queue": self.queue,
            "symbol": self.symbol,
            "params": self.params,
            "state": self.state,
            "progress": self.progress,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "result": self.result,
            "error": self.error,
        }


class JobStore:
    """Reads and writes job records in Redis."""

    def __init__(self, client: redis.Redis, ttl: timedelta) -> None:
        self._redis = client
        self._ttl = int(ttl.total_seconds())
        self._update = client.register_script(_UPDATE_SCRIPT)

    @staticmethod
    def key(job_id: str) -> str:
        return KEY_PREFIX + job_id

    def create(
        self,
        *,
        kind: str,
        task_name: str,
        queue: str,
        symbol: str | None = None,
        params: dict[str, Any] | None = None,
        job_id: str | None = None,
    ) -> Job:
        """Write a new record in state `queued` and return it."""
        now = utcnow_iso()
        job = Job(
            id=job_id or str(uuid.uuid4()),
            kind=kind,
            task_name=task_name,
            queue=queue,
            state="queued",
            created_at=now,
            updated_at=now,
            symbol=symbol,
            params=params,
        )
        fields: dict[Any, Any] = {k: v for k, v in self._encode(job.to_dict()).items() if v}
        pipe = self._redis.pipeline()
        pipe.hset(self.key(job.id), mapping=fields)
        pipe.expire(self.key(job.id), self._ttl)
        pipe.execute()
        return job

    def get(self, job_id: str) -> Job | None:
        """Return the record, or None for an unknown or expired id."""
        raw = cast(dict[str, str], self._redis.hgetall(self.key(job_id)))
        if not raw:
            return None
        decoded: dict[str, Any] = dict(raw)
        for name in _JSON_FIELDS:
            decoded[name] = json.loads(raw[name]) if raw.get(name) else None
        known = set(Job.__dataclass_fields__)
        return Job(**{k: v for k, v in decoded.items() if k in known})

    def update(
        self,
        job_id: str,
        *,
        state: str | None = None,
        progress: dict[str, Any] | None = None,
        result: Any = None,
        error: dict[str, Any] | None = None,
    ) -> bool:
        """Update an existing record; return False if it is missing or was cancelled."""
        if state is not None and state not in STATES:
            raise ValueError(f"unknown job state {state!r}")
        now = utcnow_iso()
        fields: dict[str, Any] = {}
        if progress is not None:
            fields["progress"] = progress
        if result is not None:
            fields["result"] = result
        if error is not None:
            fields["error"] = error
        if state == "started":
            fields["started_at"] = now
        if state in TERMINAL_STATES:
            fields["finished_at"] = now
        flat: list[str] = []
        for name, value in self._encode(fields).items():
            flat += [name, value]
        outcome = self._update(
            keys=[self.key(job_id), DONE_PREFIX + job_id], args=[state or "", now, self._ttl, *flat]
        )
        return int(outcome) == 1

    def wait_finished(self, job_id: str, timeout: float) -> Job | None:
        """Block until the job is final (woken by Redis, no polling); on timeout return it as is."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job is None or job.finished:
                return job
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return job
            # Bounded below the client's socket timeout; the wake-up itself is immediate.
            woke = self._redis.blpop([DONE_PREFIX + job_id], timeout=min(remaining, 2.0))
            if woke:  # put it back for any other request waiting on the same job
                pipe = self._redis.pipeline()
                pipe.rpush(DONE_PREFIX + job_id, woke[1])
                pipe.expire(DONE_PREFIX + job_id, 60)
                pipe.execute()

    @staticmethod
    def _encode(fields: dict[str, Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in fields.items():
            if name in _JSON_FIELDS:
                out[name] = "" if value is None else json.dumps(value, default=str)
            else:
                out[name] = "" if value is None else str(value)
        return out
