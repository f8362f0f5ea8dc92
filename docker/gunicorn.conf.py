"""gunicorn settings for the web app from stockpred's settings (WEB_HOST, WEB_PORT, WEB_WORKERS,
WEB_THREADS).

Threaded workers (`gthread`): a request waiting for a task (an uncached prediction up to
PREDICT_WAIT, a refresh up to HISTORICAL_WAIT) blocks one thread in a Redis BLMOVE, which costs
no CPU, while the other threads keep answering; idle keep-alive connections hold no thread.
"""

import os
import shutil
from typing import Any

from stockpred.infra.logs import configure_logging
from stockpred.paths import DataTree
from stockpred.settings import get_settings

_settings = get_settings()
# Every gunicorn worker writes its metrics to files here; /metrics aggregates them. Must be set
# before the app (and prometheus_client) is imported.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(DataTree.from_settings(_settings).web_metrics)
)
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

# gunicorn's default is one path per user ($HOME/.gunicorn/gunicorn.ctl), which every gunicorn
# of that user on the machine would take over from the one before.
control_socket = str(DataTree.from_settings(_settings).gunicorn_control_socket)
os.makedirs(os.path.dirname(control_socket), exist_ok=True)

wsgi_app = "web:create_app()"
bind = [f"{_settings.web_host}:{_settings.web_port}"]
workers = _settings.web_workers
worker_class = "gthread"
threads = _settings.web_threads
# Open connections per worker (waiting, in flight and idle keep-alive ones); past it the kernel's
# listen backlog holds new ones.
worker_connections = max(1000, 4 * _settings.web_threads)
timeout = 60
graceful_timeout = 20
keepalive = 5
accesslog = None  # api.log carries one line per request instead
errorlog = "-"
proc_name = "stockpred-web"


def on_starting(server: Any) -> None:
    configure_logging(_settings, role="web")
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(folder, ignore_errors=True)  # values of a previous run's workers are stale
    os.makedirs(folder, exist_ok=True)


def post_fork(server: Any, worker: Any) -> None:
    configure_logging(_settings, role="web")


def child_exit(server: Any, worker: Any) -> None:
    # Deferred: prometheus_client reads PROMETHEUS_MULTIPROC_DIR when first imported, and this
    # file sets it above, after its own imports.
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
