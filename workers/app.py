"""The Celery application object, configured from `celeryconfig` (read lazily, nothing connects)."""

from __future__ import annotations

from celery import Celery

app = Celery("stockpred")
app.config_from_object("celeryconfig")

from workers import signals  # noqa: E402,F401  (connects the process set-up handlers)
