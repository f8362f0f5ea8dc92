"""Celery settings for stockpred: broker, queues, routes, reliability, limits and beat schedule.

A plain settings module (`app.config_from_object("celeryconfig")`) holding what is static; what
follows from stockpred's settings (broker and backend URL, visibility timeout, time limits,
RedBeat's Redis and lock timeout, the cache-cleanup interval) comes from `from_settings`, which
the apps add as lazy defaults. Importing this module reads no settings and connects nothing.
`python -m celeryconfig` checks that every route and beat entry names a declared queue and task.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from celery.schedules import crontab
from kombu.entity import Queue

from stockpred.queues import (
    PRIORITY_SEPARATOR,
    PRIORITY_STEPS,
    QUEUES,
    SCHEDULED_PRIORITY,
    QueueName,
    hard_time_limit,
    queue_for_task,
    soft_time_limit,
)

if TYPE_CHECKING:
    from stockpred.settings import Settings

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

task_queues = tuple(Queue(name, routing_key=name) for name in QUEUES)
task_default_queue = QueueName.MAINTENANCE.value
task_create_missing_queues = False
timezone = "UTC"
task_routes = {f"{name}.*": {"queue": name, "routing_key": name} for name in QUEUES}

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
# A task running when the broker connection drops (Redis restarted) runs on: cancelling it would
# leave its message unacknowledged until the visibility timeout, hours away, and its job
# `started` all that time. It records its outcome once Redis is back, and its message, if the
# ack is lost with the old connection, comes back only to be acknowledged unrun
# (workers.task_base: a final record is not run again).
worker_cancel_long_running_tasks_on_connection_loss = False
worker_max_memory_per_child = 1_500_000  # KiB; a backstop against TensorFlow RSS growth
task_track_started = True
worker_send_task_events = True
# No task-sent events: they would double the messages of every submission; waiting tasks show
# as queue depth (stats, metrics) and as queued job records.
task_send_sent_event = False
result_expires = timedelta(days=1)
result_extended = True

# Losing Redis is survivable: its own supervisor restarts it, and every Celery process (workers,
# beat, Flower, the web's client) reconnects instead of exiting. Workers retry the broker
# forever (2 s, 4 s, ... then every 30 s): a worker that gave up would only be restarted by
# its supervisor, paying its start-up again.
broker_connection_retry = True
broker_connection_retry_on_startup = True
broker_connection_max_retries = None
# Senders (the web, beat, tasks queueing tasks) retry a publish for about 2.5 s, the time a
# restarted Redis takes to load its AOF here; past that the submission fails with 503.
task_publish_retry_policy = {
    "max_retries": 4,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
# The result backend retries its calls across a restart (exponential, 10 ms up to 10 s, about
# two minutes in all) instead of failing the task whose result it was storing.
result_backend_always_retry = True
result_backend_max_retries = 20
redis_backend_health_check_interval = 30  # PING a pooled connection idle this long before use
redis_socket_connect_timeout = 5
# redis_socket_keepalive is set in `from_settings`, for TCP only: Celery's result backend passes
# it to redis-py's Unix-socket connections too, which refuse it (no task could be sent).
redis_retry_on_timeout = True

include = ["tasks.inference", "tasks.training", "tasks.maintenance"]

# Every task gets its queue's time limits (training's follows TRAINING_TIME_LIMIT), set when
# the app binds its tasks: see `QueueTimeLimits`.
task_annotations = ("celeryconfig:QueueTimeLimits",)

# One Redis list per priority step, consumed in step order (stockpred.queues): beat's entries
# are sent at SCHEDULED_PRIORITY, ahead of any API backlog. Each worker consumes one queue, so
# kombu's queue_order_strategy (the order among queues) does not matter here.
PRIORITY_TRANSPORT_OPTIONS: dict[str, Any] = {
    "priority_steps": list(PRIORITY_STEPS),
    "sep": PRIORITY_SEPARATOR,
}

# Beat keeps its schedule and last run times in Redis (RedBeat), not in a file: beat may run on
# every host, and RedBeat's Redis lock lets only one of them send (the others wait to take over).
beat_scheduler = "redbeat.RedBeatScheduler"
REDBEAT_KEY_PREFIX = "stockpred:beat:"
# The holder extends its lock every tick; ticks are at most a fifth of the lock timeout apart,
# so a holder is never late, and a waiting beat retries that often once the lock expires.
BEAT_TICKS_PER_LOCK_TIMEOUT = 5
# RedBeat retries its schedule reads and writes through a Redis restart for this long; past it
# (or when the lock cannot be extended) beat exits and its supervisor starts it again.
REDBEAT_RETRY_SECONDS = 30

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "refresh-prices-after-us-close": {
        # 22:15 UTC is after the 16:00 New York close in both winter and summer time.
        "task": "maintenance.refresh_tracked_prices",
        "schedule": crontab(minute=15, hour=22, day_of_week="mon-fri"),
        "options": {"expires": 6 * 3600, "priority": SCHEDULED_PRIORITY},
    },
    "daily-run-after-us-close": {
        # Forecasts the next session of every tracked symbol from the closes refreshed above.
        "task": "maintenance.daily_run",
        "schedule": crontab(minute=30, hour=22, day_of_week="mon-fri"),
        "options": {"expires": 6 * 3600, "priority": SCHEDULED_PRIORITY},
    },
    "score-forecasts-after-us-close": {
        # After the price refresh above: the realised closes are read from fresh bars.
        "task": "maintenance.score_forecasts",
        "schedule": crontab(minute=45, hour=22, day_of_week="mon-fri"),
        "options": {"expires": 6 * 3600, "priority": SCHEDULED_PRIORITY},
    },
    "retrain-stale-models-weekly": {
        # The original's policy: older than max_age_days, or hold-out MAPE over the threshold.
        "task": "maintenance.queue_stale_retraining",
        "schedule": crontab(minute=0, hour=4, day_of_week="sun"),
        "options": {"expires": 6 * 3600, "priority": SCHEDULED_PRIORITY},
    },
    # The original's crontab, as beat entries (UTC). Scheduled storage runs skip, never wait,
    # when another storage run holds the lock.
    "backup-daily": {
        "task": "maintenance.backup",
        "schedule": crontab(minute=0, hour=2),
        "kwargs": {"scheduled": True, "incremental": False},
        "options": {"expires": 6 * 3600, "priority": SCHEDULED_PRIORITY},
    },
    "storage-monitor-every-6h": {
        "task": "maintenance.monitor",
        "schedule": crontab(minute=0, hour="*/6"),
        "options": {"expires": 3 * 3600, "priority": SCHEDULED_PRIORITY},
    },
    "cleanup-weekly": {
        "task": "maintenance.cleanup",
        "schedule": crontab(minute=0, hour=3, day_of_week="sun"),
        "kwargs": {"scheduled": True, "scope": "all"},
        "options": {"expires": 6 * 3600, "priority": SCHEDULED_PRIORITY},
    },
}


def beat_schedule_for(
    cache_cleanup_interval: timedelta, lost_worker_check: timedelta = timedelta(seconds=30)
) -> dict[str, dict[str, Any]]:
    """The beat schedule, with the cache cleanup and the lost-worker check at their intervals."""
    return {
        **BEAT_SCHEDULE,
        "recover-lost-jobs": {
            # A host that died leaves its workers' jobs running on nobody (no restart fails
            # them): the check fails them, so a client waiting on one learns it at once.
            "task": "maintenance.recover_lost_jobs",
            "schedule": lost_worker_check,
            "options": {
                "expires": max(1, int(lost_worker_check.total_seconds())),
                "priority": SCHEDULED_PRIORITY,
            },
        },
        "cache-cleanup": {
            "task": "maintenance.cleanup",
            "schedule": cache_cleanup_interval,
            "kwargs": {"scheduled": True, "scope": "caches"},
            "options": {
                "expires": int(cache_cleanup_interval.total_seconds()),
                "priority": SCHEDULED_PRIORITY,
            },
        },
    }


def beat_settings(
    redis_url: str, lock_timeout: timedelta, sentinel: dict[str, Any] | None = None
) -> dict[str, Any]:
    """RedBeat's Redis (redis-py's URL: `unix://` for the socket), key prefix and lock timers.

    `sentinel` (from `redbeat_sentinel_options`) makes RedBeat ask the sentinels for the master.
    """
    timeout = lock_timeout.total_seconds()
    options: dict[str, Any] = {
        "retry_period": REDBEAT_RETRY_SECONDS,
        "socket_timeout": redis_socket_connect_timeout,
        "socket_connect_timeout": redis_socket_connect_timeout,
        "health_check_interval": redis_backend_health_check_interval,
    }
    if sentinel is not None:
        # RedBeat reads only the scheme of a `redis-sentinel` URL (its banner shows the rest,
        # parsed as one address: the first sentinel's) and takes every sentinel from options.
        host, port = sentinel["sentinels"][0]
        host = f"[{host}]" if ":" in host else host
        redis_url = f"redis-sentinel://{host}:{port}/{sentinel['db']}"
        options = {**options, **sentinel}
    return {
        "redbeat_redis_url": redis_url,
        # Given explicitly: RedBeat would otherwise borrow the broker's transport options.
        # Passed to redis-py's client: only options its Unix-socket connections take too.
        "redbeat_redis_options": options,
        "redbeat_key_prefix": REDBEAT_KEY_PREFIX,
        "redbeat_lock_timeout": int(timeout),
        "beat_max_loop_interval": timeout / BEAT_TICKS_PER_LOCK_TIMEOUT,
    }


def time_limits(training_limit_seconds: int) -> dict[str, int]:
    """Hard time limit in seconds per queue."""
    return {name: hard_time_limit(name, training_limit_seconds) for name in QUEUES}


def visibility_timeout(training_limit_seconds: int) -> int:
    """Seconds after which Redis redelivers an unacknowledged task.

    It must exceed the longest task, or a long training would run twice (celery#5935).
    """
    return int(max(time_limits(training_limit_seconds).values()) * 1.5)


def sentinel_transport_options(settings: Settings) -> dict[str, Any]:
    """kombu's and the result backend's Sentinel options: the master's name, the sentinels' auth.

    Empty without sentinels. The data nodes' password rides in the `sentinel://` URL.
    """
    target = settings.redis_sentinel
    if target is None:
        return {}
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": redis_socket_connect_timeout,
        "socket_connect_timeout": redis_socket_connect_timeout,
    }
    if settings.redis_sentinel_password:
        sentinel_kwargs["password"] = settings.redis_sentinel_password
    return {"master_name": target.master, "sentinel_kwargs": sentinel_kwargs}


def redbeat_sentinel_options(settings: Settings) -> dict[str, Any] | None:
    """RedBeat's own Sentinel options (`sentinels`, `service_name`, ...), or None without them."""
    target = settings.redis_sentinel
    if target is None:
        return None
    return {
        "sentinels": [list(node) for node in target.nodes],
        "service_name": target.master,
        "password": settings.redis_password,
        "db": target.db,
        "sentinel_kwargs": sentinel_transport_options(settings)["sentinel_kwargs"],
    }


def from_settings(settings: Settings) -> dict[str, Any]:
    """The Celery settings that follow from stockpred's settings (added as lazy defaults)."""
    visibility = {"visibility_timeout": visibility_timeout(_training_seconds(settings))}
    sentinel = sentinel_transport_options(settings)
    return {
        "broker_url": settings.celery_url,
        "redis_socket_keepalive": not settings.redis_client_url.startswith("unix://"),
        "result_backend": settings.celery_url,
        "broker_transport_options": {**visibility, **PRIORITY_TRANSPORT_OPTIONS, **sentinel},
        "result_backend_transport_options": {**visibility, **sentinel},
        "beat_schedule": beat_schedule_for(
            settings.cache_cleanup_interval, settings.lost_worker_check
        ),
        **beat_settings(
            settings.redis_client_url,
            settings.beat_lock_timeout,
            redbeat_sentinel_options(settings),
        ),
    }


def _training_seconds(settings: Settings) -> int:
    return int(settings.training_time_limit.total_seconds())


class QueueTimeLimits:
    """Task annotation: the hard and soft time limits of the queue a task's name routes to."""

    def annotate(self, task: Any) -> dict[str, int] | None:
        queue = queue_for_task(task.name)
        if queue is None:
            return None
        # Deferred: read when Celery annotates a task, never at import.
        from stockpred.settings import get_settings

        training = _training_seconds(get_settings())
        return {
            "time_limit": hard_time_limit(queue, training),
            "soft_time_limit": soft_time_limit(queue, training),
        }

    def annotate_any(self) -> None:
        return None


def check_routes() -> list[str]:
    """Return problems: routes to undeclared queues, beat entries for unregistered tasks."""
    # Deferred: only the route check builds an app of its own.
    from celery import Celery

    app = Celery("stockpred-check")
    app.config_from_object(__name__)
    app.loader.import_default_modules()
    declared = {q.name for q in task_queues}
    problems = [
        f"route {pattern!r} names undeclared queue {route['queue']!r}"
        for pattern, route in task_routes.items()
        if route["queue"] not in declared
    ]
    router = app.amqp.router
    for name in sorted(n for n in app.tasks if not n.startswith("celery.")):
        queue = router.route({}, name)["queue"].name
        if queue not in declared or queue != name.partition(".")[0]:
            problems.append(f"task {name!r} routes to {queue!r}, not the queue its name names")
        if not app.tasks[name].time_limit:
            problems.append(f"task {name!r} has no time limit")
    for entry, spec in beat_schedule_for(timedelta(hours=6)).items():
        if spec["task"] not in app.tasks:
            problems.append(f"beat entry {entry!r} names unregistered task {spec['task']!r}")
    return problems


if __name__ == "__main__":
    found = check_routes()
    for line in found:
        print(f"error: {line}")
    print("routes ok" if not found else f"{len(found)} routing problem(s)")
    raise SystemExit(1 if found else 0)
