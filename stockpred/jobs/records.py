"""Durable job records in Redis: what was asked, its state, progress, result or error.

A record is written before its task is sent, so an unknown id (404) differs from a queued one.
Workers update records through `JobStore.update`, which never resurrects a missing record and
never moves a cancelled job back to running. Records expire `JOB_TTL` after their last change.
A task that starts records the worker running it (node name and boot id) and joins that node's
running set, which it leaves when it ends; `fail_lost` fails the records a node's previous
incarnation left running (its main process was killed).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import redis

from stockpred.infra.clock import MICROSECONDS, utcnow_iso
from stockpred.infra.deferred_writes import DeferredWrites

log = logging.getLogger(__name__)
KEY_PREFIX = "stockpred:job:"
MAX_SCANNED = 2000  # job keys one listing reads at most
STATES = ("queued", "started", "progress", "succeeded", "failed", "cancelled")
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
_JSON_FIELDS = ("progress", "result", "error", "params")

# Atomic "update if present": a late worker update must not recreate an expired record, a
# cancelled job stays cancelled whatever its task reports afterwards, and a finished job is not
# taken back to started or progress by an update that arrives late. A final state also leaves
# the whole record, as JSON, in the job's done list, where waiters wake up with it.
# A task that starts joins its node's running set (KEYS[3]); a final state leaves the set of the
# node the record names. KEYS: record, done list, running set or "".
# ARGV: state, now, record TTL, done-list TTL, job id, running-set prefix, field/value pairs.
_UPDATE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local current = redis.call('HGET', KEYS[1], 'state')
if current == 'cancelled' and ARGV[1] ~= 'cancelled' then return -1 end
local final = {succeeded = true, failed = true, cancelled = true}
if final[current] and not final[ARGV[1]] then return -1 end
if #ARGV > 6 then redis.call('HSET', KEYS[1], unpack(ARGV, 7)) end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'state', ARGV[1]) end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if KEYS[3] ~= '' and not final[ARGV[1]] then
  redis.call('SADD', KEYS[3], ARGV[5])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
if ARGV[1] == 'succeeded' or ARGV[1] == 'failed' or ARGV[1] == 'cancelled' then
  local node = redis.call('HGET', KEYS[1], 'worker')
  if node then redis.call('SREM', ARGV[6] .. node, ARGV[5]) end
  local flat = redis.call('HGETALL', KEYS[1])
  local record = {}
  for i = 1, #flat, 2 do record[flat[i]] = flat[i + 1] end
  redis.call('DEL', KEYS[2])
  redis.call('RPUSH', KEYS[2], cjson.encode(record))
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return 1
"""
# Create a record unless the dedupe key names a job that still has one (then return that job's
# fields); with pending_only, a job that has finished does not count, and a cancelled or failed
# job never does (whoever cancelled it did not want it; whoever asks again after a failure, a
# lost worker say, wants it run again, not the failure repeated).
# KEYS: record, dedupe key or ""; ARGV: job id, record TTL, dedupe seconds, record key prefix,
# pending_only ("1"/"0"), field/value pairs. The deduplicated job's key is built here: one
# Redis server only.
_CREATE_SCRIPT = """
if KEYS[2] ~= '' then
  local existing = redis.call('GET', KEYS[2])
  if existing then
    local record = ARGV[4] .. existing
    local state = redis.call('HGET', record, 'state')
    local final = state == 'succeeded' or state == 'failed' or state == 'cancelled'
    local reusable = state ~= 'cancelled' and state ~= 'failed' and not (ARGV[5] == '1' and final)
    if state and reusable then return redis.call('HGETALL', record) end
  end
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {}
"""
# Fail what a lost incarnation of a node left running: records in the node's running set that
# name this node and are not final, and whose boot id is not ARGV[2] (mode "other": the node
# restarted as ARGV[2]) or is ARGV[2] (mode "this": that incarnation is gone). Every member
# matched leaves the set. KEYS: the node's running set. ARGV: node, boot id, now, record TTL,
# done-list TTL, record prefix, done-list prefix, the error as JSON, mode. Returns the failed
# job ids.
_LOST_SCRIPT = """
local failed = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local record = ARGV[6] .. id
  local found = redis.call('HMGET', record, 'state', 'worker', 'worker_boot')
  local state, node, boot = found[1], found[2], found[3]
  local lost = boot ~= ARGV[2]
  if ARGV[9] == 'this' then lost = boot == ARGV[2] or not state end
  if lost then
    redis.call('SREM', KEYS[1], id)
    local final = state == 'succeeded' or state == 'failed' or state == 'cancelled'
    if state and node == ARGV[1] and not final then
      redis.call('HSET', record, 'state', 'failed', 'error', ARGV[8], 'finished_at', ARGV[3],
        'updated_at', ARGV[3])
      redis.call('EXPIRE', record, ARGV[4])
      local flat = redis.call('HGETALL', record)
      local fields = {}
      for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
      local done = ARGV[7] .. id
      redis.call('DEL', done)
      redis.call('RPUSH', done, cjson.encode(fields))
      redis.call('EXPIRE', done, ARGV[5])
      table.insert(failed, id)
    end
  end
end
return failed
"""
DONE_PREFIX = "stockpred:jobdone:"
RUNNING_PREFIX = "stockpred:running:"
DEDUPE_PREFIX = "stockpred:dedupe:"
REDELIVERY_PREFIX = "stockpred:redelivered:"
# How long a finished job's done list lives: waiters must start within it, so it outlasts the
# longest dedupe window (a deduplicated request waits on a job that may have just finished).
DONE_TTL_SECONDS = 600


@dataclass(frozen=True)
class WorkerRun:
    """Who runs a job: the worker's node name and the boot id of its current main process."""

    node: str
    boot: str


class DamagedJobRecord(ValueError):
    """A job record in Redis that is not what this code writes (edited or corrupted)."""


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
    # The result as stored (compact JSON), for answering it without encoding it again.
    result_json: str | None = field(default=None, repr=False, compare=False)

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

    def __init__(
        self, client: redis.Redis, ttl: timedelta, deferred: DeferredWrites | None = None
    ) -> None:
        self._redis = client
        self._ttl = int(ttl.total_seconds())
        self._update = client.register_script(_UPDATE_SCRIPT)
        self._create = client.register_script(_CREATE_SCRIPT)
        self._lost = client.register_script(_LOST_SCRIPT)
        self._deferred = deferred

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
        dedupe_key: str | None = None,
        dedupe_seconds: int = 120,
        pending_only: bool = False,
    ) -> Job:
        """Write a new record in state `queued` and return it (one round trip).

        With `dedupe_key`, a job created under the same key in the last `dedupe_seconds` that
        still has its record is returned instead, and nothing is written: compare the ids.
        With `pending_only`, only a job that has not finished is returned that way.
        """
        now = utcnow_iso(MICROSECONDS)
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
        flat: list[str] = []
        for name, value in self._encode(job.to_dict()).items():
            if value:
                flat += [name, value]
        found = self._create(
            keys=[self.key(job.id), DEDUPE_PREFIX + dedupe_key if dedupe_key else ""],
            args=[job.id, self._ttl, dedupe_seconds, KEY_PREFIX, int(pending_only), *flat],
        )
        if found:
            return self._decode(dict(zip(found[::2], found[1::2], strict=True)))
        return job

    def count_redelivery(self, job_id: str) -> int:
        """Count one more redelivery of a job's message; return how many there have been."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.incr(REDELIVERY_PREFIX + job_id)
        pipe.expire(REDELIVERY_PREFIX + job_id, self._ttl)
        return int(pipe.execute()[0])

    def forget_dedupe(self, dedupe_key: str) -> None:
        """Drop a dedupe key (its job could not be queued)."""
        self._redis.delete(DEDUPE_PREFIX + dedupe_key)

    def fail_lost(self, worker: WorkerRun, error: dict[str, Any]) -> list[str]:
        """Fail the unfinished jobs `worker.node` ran in an earlier boot; return their ids.

        Only records naming this node are touched, so a job redelivered to another node, or
        running there, stays as it is.
        """
        return self._fail_lost(worker, error, "other")

    def fail_gone(self, worker: WorkerRun, error: dict[str, Any]) -> list[str]:
        """Fail the unfinished jobs of the incarnation `worker`, which is gone; their ids.

        Jobs a later incarnation of the same node started are left alone.
        """
        return self._fail_lost(worker, error, "this")

    def running_boots(self) -> dict[str, set[str]]:
        """Each node with jobs in its running set, and the boot ids those jobs' records name."""
        found: dict[str, set[str]] = {}
        for key in self._redis.scan_iter(match=RUNNING_PREFIX + "*", count=500, _type="set"):
            node = str(key)[len(RUNNING_PREFIX) :]
            ids = [str(member) for member in self._redis.smembers(key)]
            pipe = self._redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.hget(self.key(job_id), "worker_boot")
            found[node] = {str(boot) for boot in pipe.execute() if boot}
        return found

    def _fail_lost(self, worker: WorkerRun, error: dict[str, Any], mode: str) -> list[str]:
        failed = self._lost(
            keys=[RUNNING_PREFIX + worker.node],
            args=[
                worker.node,
                worker.boot,
                utcnow_iso(MICROSECONDS),
                self._ttl,
                DONE_TTL_SECONDS,
                KEY_PREFIX,
                DONE_PREFIX,
                json.dumps(error, separators=(",", ":")),
                mode,
            ],
        )
        return [str(job_id) for job_id in failed]

    def worker_of(self, job_id: str) -> WorkerRun | None:
        """The worker that last started the job, if one did."""
        node, boot = self._redis.hmget(self.key(job_id), ["worker", "worker_boot"])
        return WorkerRun(str(node), str(boot)) if node and boot else None

    def get(self, job_id: str) -> Job | None:
        """Return the record, or None for an unknown or expired id."""
        raw = cast(dict[str, str], self._redis.hgetall(self.key(job_id)))
        return self._decode(raw) if raw else None

    def recent(self, limit: int, *, scan_cap: int = MAX_SCANNED) -> list[Job]:
        """Up to `limit` records, newest first, read from at most `scan_cap` job keys.

        Records expire after JOB_TTL, so the keys are few; the cap bounds one page's work when
        they are not. A damaged record is logged and left out rather than failing the list.
        """
        keys: list[str] = []
        for key in self._redis.scan_iter(match=KEY_PREFIX + "*", count=500, _type="hash"):
            keys.append(key)
            if len(keys) >= scan_cap:
                break
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        jobs: list[Job] = []
        for raw in pipe.execute():
            if not raw:
                continue  # expired between the scan and the read
            try:
                jobs.append(self._decode(raw))
            except DamagedJobRecord as exc:
                log.warning("left out of the recent jobs: %s", exc)
        jobs.sort(key=lambda job: job.created_at, reverse=True)
        return jobs[:limit]

    @staticmethod
    def _decode(raw: Any) -> Job:
        try:
            decoded: dict[str, Any] = dict(raw)
            for name in _JSON_FIELDS:
                decoded[name] = json.loads(raw[name]) if raw.get(name) else None
            decoded["result_json"] = raw.get("result") or None
            known = set(Job.__dataclass_fields__)
            return Job(**{k: v for k, v in decoded.items() if k in known})
        except (ValueError, TypeError, AttributeError) as exc:
            ident = raw.get("id", "?") if isinstance(raw, dict) else "?"
            raise DamagedJobRecord(f"the record of job {ident} is damaged ({exc})") from None

    def update(
        self,
        job_id: str,
        *,
        state: str | None = None,
        progress: dict[str, Any] | None = None,
        result: Any = None,
        error: dict[str, Any] | None = None,
        started_at: str | None = None,
        worker: WorkerRun | None = None,
    ) -> bool:
        """Update an existing record; return False if it is missing, cancelled or finished.

        `started_at` records when a task began that did not report its start on its own;
        `worker`, who runs it (the record joins that node's running set).
        """
        keys, args = self._update_call(
            job_id,
            state,
            progress=progress,
            result=result,
            error=error,
            started_at=started_at,
            worker=worker,
        )
        if self._deferred is not None:
            self._deferred.flush()  # an update sent earlier on it is applied before this one
        return int(self._update(keys=keys, args=args)) == 1

    def send_update(
        self, job_id: str, *, state: str | None, worker: WorkerRun | None = None
    ) -> None:
        """Send a change without waiting for Redis to confirm it (the task's start).

        Its reply is read before this store's next update, which therefore always lands after
        it. Without a DeferredWrites this is a plain `update`.
        """
        if self._deferred is None:
            self.update(job_id, state=state, worker=worker)
            return
        keys, args = self._update_call(job_id, state, worker=worker)
        # EVAL, not EVALSHA: a restarted Redis has forgotten loaded scripts, and nobody is
        # waiting here to load it again.
        self._deferred.send("EVAL", _UPDATE_SCRIPT, len(keys), *keys, *args)

    def flush(self) -> None:
        """Wait for Redis to confirm what `send_update` sent (a process about to exit)."""
        if self._deferred is not None:
            self._deferred.flush()

    def _update_call(
        self,
        job_id: str,
        state: str | None,
        *,
        progress: dict[str, Any] | None = None,
        result: Any = None,
        error: dict[str, Any] | None = None,
        started_at: str | None = None,
        worker: WorkerRun | None = None,
    ) -> tuple[list[str], list[Any]]:
        """The update script's keys and arguments."""
        if state is not None and state not in STATES:
            raise ValueError(f"unknown job state {state!r}")
        now = utcnow_iso(MICROSECONDS)
        fields: dict[str, Any] = {}
        if progress is not None:
            fields["progress"] = progress
        if result is not None:
            fields["result"] = result
        if error is not None:
            fields["error"] = error
        if state == "started":
            fields["started_at"] = now
        elif started_at is not None:
            fields["started_at"] = started_at
        if state in TERMINAL_STATES:
            fields["finished_at"] = now
        if worker is not None:
            fields["worker"] = worker.node
            fields["worker_boot"] = worker.boot
        flat: list[str] = []
        for name, value in self._encode(fields).items():
            flat += [name, value]
        running = RUNNING_PREFIX + worker.node if worker is not None else ""
        keys = [self.key(job_id), DONE_PREFIX + job_id, running]
        args = [state or "", now, self._ttl, DONE_TTL_SECONDS, job_id, RUNNING_PREFIX, *flat]
        return keys, args

    def wait_finished(self, job_id: str, timeout: float) -> Job | None:
        """Block until the job is final and return it; on timeout return it as it is.

        Woken by Redis with the final record (no polling, no second read): the done list is
        rotated in place (BLMOVE from its tail to its head), so every waiter on the same job
        sees the record. For jobs finished in the last DONE_TTL_SECONDS (or not yet): an older
        finished job is returned only when the timeout ends.
        """
        done = DONE_PREFIX + job_id
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0.01:
            # Bounded below the client's socket timeout; the wake-up itself is immediate.
            timeout = min(remaining, 2.0)  # Redis takes fractions of a second; redis-py says int
            raw = self._redis.blmove(done, done, timeout, "RIGHT", "LEFT")  # type: ignore[arg-type]
            if raw is not None:
                try:
                    record = json.loads(raw)
                except ValueError as exc:
                    raise DamagedJobRecord(
                        f"the finished record of job {job_id} is damaged"
                    ) from exc
                return self._decode(record)
        return self.get(job_id)

    @staticmethod
    def _encode(fields: dict[str, Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in fields.items():
            if name in _JSON_FIELDS:
                out[name] = (
                    "" if value is None else json.dumps(value, default=str, separators=(",", ":"))
                )
            else:
                out[name] = "" if value is None else str(value)
        return out
