"""The Celery queue names: the one place they are spelled."""

from __future__ import annotations

from enum import StrEnum


class QueueName(StrEnum):
    """Queues; a task named `<queue>.<verb>` is routed to `<queue>`."""

    INFERENCE = "inference"
    TRAINING = "training"
    MAINTENANCE = "maintenance"


QUEUES: tuple[str, ...] = tuple(q.value for q in QueueName)


def queue_for_task(task_name: str) -> str | None:
    """Return the queue a task name routes to by its prefix, or None if it names none."""
    prefix, sep, _ = task_name.partition(".")
    return prefix if sep and prefix in QUEUES else None


def hard_time_limit(queue: str, training_limit_seconds: int) -> int:
    """Hard time limit in seconds for tasks of a queue (training's comes from the settings)."""
    limits = {
        QueueName.INFERENCE: 120,
        QueueName.MAINTENANCE: 2 * 3600,
        QueueName.TRAINING: training_limit_seconds,
    }
    return limits[QueueName(queue)]


def soft_time_limit(queue: str, training_limit_seconds: int) -> int:
    """Soft limit: 90 % of the hard one, so a task can clean up before it is killed."""
    return int(hard_time_limit(queue, training_limit_seconds) * 0.9)


# Redis transport priorities (kombu): a queue is one Redis list per priority step, consumed in
# step order, so a message of step 0 is taken before any waiting message of a later step.
# Scheduled work (beat, and tasks it runs) is sent at the first step, work the API submits at a
# later one: a backlog of API work never delays the nightly backup by more than the task
# running now. The list of step 0 is the queue's own name, the others `<queue><sep><step>`.
PRIORITY_STEPS: tuple[int, ...] = (0, 3, 6, 9)
PRIORITY_SEPARATOR = "\x06\x16"  # kombu's default, spelled here so depth counts every list
SCHEDULED_PRIORITY = 0
API_PRIORITY = 6


def priority_lists(queue: str) -> tuple[str, ...]:
    """The Redis lists holding a queue's waiting messages, highest priority first."""
    return tuple(
        queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS
    )
