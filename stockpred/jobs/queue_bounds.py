"""Bounds on waiting work per queue: a submission is admitted only while its queue has room.

A queue's depth is the summed length of its Redis lists, one per priority step
(`stockpred.queues.priority_lists`, as `stockpred.telemetry.queue_facts` reports it). The check
and a short-lived reservation are one Lua script, and the reservation is held until the task is
in the list: concurrent submitters can never push a queue past its bound together. A submitter
that dies holding one loses it after RESERVATION_SECONDS. Holds no settings: the composition
root passes the bounds.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stockpred.queues import QUEUES, QueueName, priority_lists

if TYPE_CHECKING:
    from stockpred.settings import Settings

RESERVATION_PREFIX = "stockpred:queue_reservations:"
RESERVATION_SECONDS = 30  # far above a publish's own retry budget (about a second)
# What a refused client is told to wait: roughly how long a queue's typical task takes.
RETRY_AFTER_SECONDS = {
    QueueName.INFERENCE.value: 5,
    QueueName.MAINTENANCE.value: 30,
    QueueName.TRAINING.value: 60,
}

# KEYS[1]: the queue's reservations (member -> server time); KEYS[2..]: the queue's lists.
# ARGV: bound, member, lifetime in seconds. Returns -1 when admitted, else the depth found.
_RESERVE_SCRIPT = """
local now = redis.call('TIME')
local seconds = tonumber(now[1]) + tonumber(now[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', seconds - tonumber(ARGV[3]))
local depth = redis.call('ZCARD', KEYS[1])
for i = 2, #KEYS do
    depth = depth + redis.call('LLEN', KEYS[i])
end
if depth >= tonumber(ARGV[1]) then
    return depth
end
redis.call('ZADD', KEYS[1], seconds, ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return -1
"""


class QueueFull(RuntimeError):
    """A queue holds as much waiting work as its bound allows: nothing was recorded or queued."""

    def __init__(self, queue: str, depth: int, bound: int) -> None:
        super().__init__(f"the {queue} queue is full: {depth} waiting, bound {bound}")
        self.queue = queue
        self.depth = depth
        self.bound = bound
        self.retry_after = RETRY_AFTER_SECONDS[queue]


class Reservation:
    """A place in a queue, held from the bound check until the task is in the queue."""

    def __init__(self, client: Any, key: str, member: str) -> None:
        self._redis = client
        self.key = key
        self.member = member

    def release(self) -> None:
        """Give the place back (the task is in the list now, or was never sent)."""
        self._redis.zrem(self.key, self.member)


class QueueBounds:
    """The bound on waiting tasks of each queue, enforced in Redis."""

    def __init__(self, client: Any, bounds: Mapping[str, int]) -> None:
        unknown = set(bounds) - set(QUEUES)
        if unknown:
            raise ValueError(f"bounds for undeclared queues: {sorted(unknown)}")
        self._redis = client
        self.bounds = dict(bounds)
        self._script = client.register_script(_RESERVE_SCRIPT)

    def reserve(self, queue: str) -> Reservation | None:
        """A place in `queue` (None when it has no bound); QueueFull when it has none left."""
        bound = self.bounds.get(queue)
        if bound is None:
            return None
        key = RESERVATION_PREFIX + queue
        member = uuid.uuid4().hex
        keys = [key, *priority_lists(queue)]
        depth = int(self._script(keys=keys, args=[bound, member, RESERVATION_SECONDS]))
        if depth >= 0:
            raise QueueFull(queue, depth, bound)
        return Reservation(self._redis, key, member)


def bounds_for(client: Any, settings: Settings) -> QueueBounds:
    """The bounds QUEUE_MAX_INFERENCE, _TRAINING and _MAINTENANCE set, on `client`'s Redis."""
    return QueueBounds(
        client,
        {
            QueueName.INFERENCE: settings.queue_max_inference,
            QueueName.TRAINING: settings.queue_max_training,
            QueueName.MAINTENANCE: settings.queue_max_maintenance,
        },
    )
