"""The Celery application object: static settings from `celeryconfig`, the rest supplied lazily.

Nothing is read, connected or created at import: what depends on stockpred's settings (broker,
limits, the beat schedule) is computed when Celery first needs its configuration.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

import celeryconfig
from stockpred.settings import SettingsError, get_settings


def settings_config() -> dict[str, Any]:
    """The Celery settings derived from this process's stockpred settings."""
    try:
        settings = get_settings()
    except SettingsError as exc:
        raise SystemExit(f"stockpred: invalid setting: {exc}") from None
    return celeryconfig.from_settings(settings)


app = Celery("stockpred", task_cls="workers.task_base:JobTask")
app.config_from_object("celeryconfig")
app.add_defaults(settings_config)

from workers import signals  # noqa: E402  (connects the process set-up handlers)

signals.connect(app)
