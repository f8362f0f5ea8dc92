"""Model hyper-parameters and the retraining policy, from `persistent_data/ml_config.json`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

FEATURES = ("close", "log_return", "log_volume", "rsi_14", "macd", "macd_signal")


class MLConfigError(ValueError):
    """ml_config.json holds a value training cannot use."""


@dataclass(frozen=True)
class MLConfig:
    """What a training run uses; every field may be set in ml_config.json."""

    sequence_length: int = 60
    features: tuple[str, ...] = FEATURES
    lstm_units: tuple[int, ...] = (64, 32)
    dropout: float = 0.2
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 0.001
    max_horizon: int = 30
    holdout_fraction: float = 0.15
    validation_fraction: float = 0.1
    keep_versions: int = 5
    seed: int = 42
    max_age_days: int = 7
    max_mape_percent: float = 5.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("extra")
        out["features"] = list(self.features)
        out["lstm_units"] = list(self.lstm_units)
        return out

    def validate(self) -> MLConfig:
        """Raise MLConfigError for values training cannot use."""
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown or not self.features:
            raise MLConfigError(f"features must be a non-empty subset of {list(FEATURES)}")
        checks = {
            "sequence_length": 10 <= self.sequence_length <= 500,
            "epochs": 1 <= self.epochs <= 1000,
            "batch_size": 1 <= self.batch_size <= 4096,
            "max_horizon": 1 <= self.max_horizon <= 60,
            "dropout": 0 <= self.dropout < 1,
            "learning_rate": 0 < self.learning_rate < 1,
            "holdout_fraction": 0.05 <= self.holdout_fraction <= 0.5,
            "validation_fraction": 0.05 <= self.validation_fraction <= 0.5,
            "keep_versions": 1 <= self.keep_versions <= 100,
            "lstm_units": bool(self.lstm_units) and all(1 <= u <= 1024 for u in self.lstm_units),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise MLConfigError(f"ml_config.json: out of range: {', '.join(bad)}")
        return self


def load_ml_config(path: Path) -> MLConfig:
    """Read the config (defaults for anything absent); a missing file means all defaults."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return MLConfig()
    except (ValueError, OSError) as exc:  # UnicodeDecodeError is a ValueError
        raise MLConfigError(f"{path}: not valid JSON: {exc}") from None
    policy = raw.pop("retrain_policy", {}) if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or not isinstance(policy or {}, dict):
        raise MLConfigError(f"{path}: expected a JSON object (and retrain_policy an object)")
    policy = policy or {}
    raw.setdefault("max_age_days", policy.get("max_age_days", 7))
    raw.setdefault("max_mape_percent", policy.get("max_mape_percent", 5.0))
    known = {f.name for f in fields(MLConfig)} - {"extra"}
    values: dict[str, Any] = {k: v for k, v in raw.items() if k in known}
    try:
        for name in ("features", "lstm_units"):
            if name in values:
                if not isinstance(values[name], list):
                    raise TypeError(f"{name} must be a list, got {values[name]!r}")
                values[name] = tuple(values[name])
        return MLConfig(**values, extra={k: v for k, v in raw.items() if k not in known}).validate()
    except TypeError as exc:
        raise MLConfigError(f"{path}: {exc}") from None
