"""A loaded model version that turns feature frames into cumulative log-return forecasts.

Two kinds: `lstm-direct` (trained here: windows of all features → H horizons) and
`legacy-close` (imported from the original service: 60 scaled closes → the next scaled close).
Calls go through a concrete function traced once per loaded model (`serving_function`: ~2.0 ms
per window here, against ~2.8 ms for `predict_on_batch` and ~58 ms for `model.predict`).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import joblib
import numpy as np
import pandas as pd

from stockpred.infra.tf_runtime import tensorflow
from stockpred.ml.dataset import Scalers, windows_at
from stockpred.ml.evaluation import Evaluation
from stockpred.ml.intervals import IntervalModel
from stockpred.ml.model import load_keras_model, serving_function
from stockpred.ml.registry import DamagedVersion, VersionInfo, repair_hint

LSTM_KIND = "lstm-direct"
LEGACY_KIND = "legacy-close"
NO_BACKTEST = "this version has no backtest (trained before champion selection); serving its LSTM"


@dataclass
class LoadedModel:
    """A version in memory, ready to forecast."""

    symbol: str
    version: str
    metadata: dict[str, Any]
    model: Any
    scalers: Any
    load_seconds: float

    @classmethod
    def load(cls, info: VersionInfo) -> LoadedModel:
        """Load, check and trace a stored version; DamagedVersion when any part is unreadable."""
        started = time.perf_counter()
        try:
            model = load_keras_model(str(info.model_path))
            payload = joblib.load(info.scaler_path)
            kind = info.metadata.get("kind", LSTM_KIND)
            scalers = (
                Scalers.from_joblib_payload(payload) if kind == LSTM_KIND else payload["scaler"]
            )
            loaded = cls(info.symbol, info.version, info.metadata, model, scalers, 0.0)
            _ = loaded.horizon, loaded.sequence_length
            loaded.serve(np.zeros((1, *model.input_shape[1:]), dtype="float32"))  # trace it now
        except (MemoryError, ImportError):
            raise  # the process, not the stored version, is in trouble
        except Exception as exc:
            # Keras, zipfile, h5py, pickle and joblib each raise their own types for a damaged
            # file; to a caller they all mean the same thing.
            raise DamagedVersion(
                f"{info.symbol} model {info.version} cannot be loaded "
                f"({type(exc).__name__}: {str(exc)[:200]}); " + repair_hint(info.symbol)
            ) from exc
        loaded.load_seconds = time.perf_counter() - started
        return loaded

    @property
    def kind(self) -> str:
        return str(self.metadata.get("kind", LSTM_KIND))

    @property
    def horizon(self) -> int:
        return int(self.metadata["max_horizon"])

    @property
    def sequence_length(self) -> int:
        return int(self.metadata["sequence_length"])

    @functools.cached_property
    def serve(self) -> Any:
        """The traced forward pass: numpy (n, window, features) in, numpy (n, outputs) out."""
        return serving_function(self.model)

    @functools.cached_property
    def evaluation(self) -> Evaluation | None:
        raw = (self.metadata.get("evaluation") or {}).get("full")
        return Evaluation.from_dict(raw) if raw else None

    @property
    def champion(self) -> tuple[str, str]:
        """(forecaster, why): who answers for this version, chosen on its backtest at training."""
        chosen = self.metadata.get("champion")
        if not chosen:
            return "lstm", NO_BACKTEST
        return str(chosen["forecaster"]), str(chosen["why"])

    @functools.cached_property
    def confidence_by_horizon(self) -> list[float] | None:
        """The answering forecaster's confidence per horizon; the LSTM's hold-out figure for
        versions trained before the champion's was stored."""
        chosen = (self.metadata.get("champion") or {}).get("confidence_by_horizon")
        if chosen is not None:
            return [float(v) for v in chosen]
        evaluation = self.evaluation
        return None if evaluation is None else evaluation.confidence_by_horizon

    @functools.cached_property
    def intervals(self) -> IntervalModel | None:
        """The champion's volatility-scaled interval model, if this version has one."""
        raw = self.metadata.get("intervals")
        return IntervalModel.from_dict(raw) if raw else None

    def prepare(self, features: pd.DataFrame, anchors: np.ndarray) -> np.ndarray:
        """The model's scaled input for windows ending at `anchors`."""
        if self.kind == LEGACY_KIND:
            close = features["close"].to_numpy(dtype="float64")
            length = self.sequence_length
            windows = np.stack([close[a - length + 1 : a + 1] for a in anchors])
            scaled = self.scalers.transform(windows.reshape(-1, 1))
            return np.asarray(scaled).reshape(len(anchors), length, 1).astype("float32")
        columns = tuple(self.metadata["features"])
        built = windows_at(features, columns, self.sequence_length, 0, anchors)
        return np.asarray(self.scalers.transform_x(built.x))

    def predict_prepared(self, x: np.ndarray, anchor_close: np.ndarray) -> np.ndarray:
        """Cumulative log returns (n, horizon) from prepared input (the compiled call)."""
        out = np.asarray(self.serve(x))
        if self.kind == LEGACY_KIND:
            predicted_close = self.scalers.inverse_transform(out.reshape(-1, 1)).reshape(-1)
            return np.asarray(np.log(predicted_close / anchor_close)[:, np.newaxis])
        return np.asarray(self.scalers.inverse_y(out))

    def model_input(self, x: np.ndarray) -> Any:
        """Prepared input as the tensor the serving function takes (convert once, call often)."""
        return tensorflow().constant(x, dtype="float32")

    @functools.cached_property
    def _target_affine(self) -> tuple[list[float], list[float]]:
        """The target scaler's scale and mean per horizon, as plain floats."""
        target = self.scalers.target
        return [float(v) for v in target.scale_], [float(v) for v in target.mean_]

    def window_log_returns(self, x: Any, anchor_close: float, horizon: int) -> list[float]:
        """Cumulative log returns 1..horizon days ahead for one prepared window."""
        if self.kind == LEGACY_KIND:
            return [float(self.predict_prepared(x, np.array([anchor_close]))[0][0])]
        out = self.serve(x)[0]
        scale, mean = self._target_affine
        return [float(out[h]) * scale[h] + mean[h] for h in range(horizon)]

    def forecast(self, features: pd.DataFrame, anchors: np.ndarray) -> np.ndarray:
        """Cumulative log returns (len(anchors), horizon) for windows ending at `anchors`."""
        close = features["close"].to_numpy(dtype="float64")[anchors]
        return self.predict_prepared(self.prepare(features, anchors), close)
