"""Import the original service's `{symbol}_lstm_model.h5` and scaler `.pkl` as a registry version.

The original's models read the last N closes scaled by its scaler and output the next scaled
close. The imported version (kind `legacy-close`, horizon 1) is converted to the native `.keras`
format and scored on the same kind of chronological hold-out as a trained model, so its
confidence and skill are measured, not assumed. Needs TensorFlow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from stockpred.infra.clock import utcnow
from stockpred.ml.evaluation import evaluate
from stockpred.ml.features import compute_features
from stockpred.ml.forecast import LEGACY_KIND, LoadedModel
from stockpred.ml.model import load_keras_model
from stockpred.ml.registry import ModelRegistry, VersionInfo, new_version


class LegacyImportError(ValueError):
    """The files are not a model and scaler of the original service."""


def import_legacy(
    symbol: str,
    *,
    model_file: Path,
    scaler_file: Path,
    bars: pd.DataFrame,
    registry: ModelRegistry,
    band: float,
    holdout_fraction: float = 0.15,
    publish: bool | None = None,
) -> dict[str, Any]:
    """Add the files as a new version; publish it when asked, or when there is no current one."""
    try:
        model = load_keras_model(str(model_file))
    except Exception as exc:
        raise LegacyImportError(f"{model_file}: not a loadable Keras model ({exc})") from None
    shape = tuple(model.input_shape)
    if len(shape) != 3 or shape[2] != 1 or not shape[1]:
        raise LegacyImportError(f"{model_file}: expected input (None, N, 1), got {shape}")
    scaler = joblib.load(scaler_file)
    if not hasattr(scaler, "transform") or not hasattr(scaler, "inverse_transform"):
        raise LegacyImportError(f"{scaler_file}: not a scikit-learn scaler")
    window = int(shape[1])
    version = new_version()
    metadata: dict[str, Any] = {
        "version": version,
        "symbol": symbol,
        "kind": LEGACY_KIND,
        "trained_at": datetime.fromtimestamp(model_file.stat().st_mtime, UTC).isoformat(),
        "imported_at": utcnow().isoformat(),
        "imported_from": {"model": str(model_file), "scaler": str(scaler_file)},
        "features": ["close"],
        "sequence_length": window,
        "max_horizon": 1,
        "forecast": "next close from the original service's model",
    }
    features = compute_features(bars)
    anchors = np.arange(window - 1, len(features) - 1)
    holdout = anchors[-max(1, int(len(anchors) * holdout_fraction)) :]
    probe = LoadedModel(symbol, version, metadata, model, scaler, 0.0)
    predicted = probe.forecast(features, holdout)
    close = features["close"].to_numpy()
    actual = np.log(close[holdout + 1] / close[holdout])[:, np.newaxis]
    result = evaluate(
        predicted, actual, close[holdout], features["log_return"].to_numpy()[holdout], band
    )
    metadata["evaluation"] = {"summary": result.summary(), "full": result.to_dict()}
    metadata["data"] = {
        "first": bars.index[0].strftime("%Y-%m-%d"),
        "last": bars.index[-1].strftime("%Y-%m-%d"),
        "rows": len(bars),
    }

    def write_files(model_path: Path, scaler_path: Path) -> None:
        model.save(model_path)
        joblib.dump({"scaler": scaler}, scaler_path)

    info: VersionInfo = registry.write_version(symbol, version, metadata, write_files)
    should_publish = publish if publish is not None else registry.current_version(symbol) is None
    if should_publish:
        registry.publish(symbol, version)
    return {
        "symbol": symbol,
        "version": info.version,
        "published": should_publish,
        "evaluation": result.summary(),
    }
