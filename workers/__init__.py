"""The Celery app and worker-process bootstrap; `celery -A workers …` finds `app` here."""

from workers.app import app

__all__ = ["app"]
