"""gunicorn settings for the web app from stockpred's settings (WEB_HOST, WEB_PORT, WEB_WORKERS)."""

from typing import Any

from stockpred.logs import configure_logging
from stockpred.settings import get_settings

_settings = get_settings()

wsgi_app = "web:create_app()"
bind = [f"{_settings.web_host}:{_settings.web_port}"]
workers = _settings.web_workers
worker_class = "sync"
timeout = 60
graceful_timeout = 20
keepalive = 5
accesslog = None  # api.log carries one line per request instead
errorlog = "-"
proc_name = "stockpred-web"


def on_starting(server: Any) -> None:
    configure_logging(_settings, role="web")


def post_fork(server: Any, worker: Any) -> None:
    configure_logging(_settings, role="web")
