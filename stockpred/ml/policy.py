"""The retraining policy the original used: a model is stale when it is too old or too wrong."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from stockpred.ml.config import MLConfig


def retrain_reason(metadata: dict[str, Any], config: MLConfig, now: datetime) -> str | None:
    """Why the version described by `metadata` should be retrained, or None if it is fine."""
    trained = metadata.get("trained_at")
    try:
        age = now - datetime.fromisoformat(str(trained))
    except (TypeError, ValueError):
        return "its training date is unknown"
    if age > timedelta(days=config.max_age_days):
        return f"trained {age.days} days ago (policy: at most {config.max_age_days})"
    summary = (metadata.get("evaluation") or {}).get("summary") or {}
    mape = summary.get("mape")
    if mape is None:
        return "it has no hold-out evaluation"
    if float(mape) > config.max_mape_percent:
        return f"hold-out MAPE {float(mape):.2f}% exceeds {config.max_mape_percent}%"
    return None
