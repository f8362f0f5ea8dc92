"""The Celery application object, configured from `celeryconfig` (read lazily, nothing connects)."""

from __future__ import annotations

import os

from celery import Celery

from stockpred.settings import get_settings

# Pool children must write metrics to files the exporter can read: the variable has to be set
# before anything imports prometheus_client (the signal handlers below do).
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(get_settings().data_dir / "monitoring" / "metrics" / "workers")
)
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

app = Celery("stockpred")
app.config_from_object("celeryconfig")

from workers import signals  # noqa: E402,F401  (connects the process set-up handlers)
