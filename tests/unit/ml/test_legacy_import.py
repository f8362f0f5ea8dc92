"""`stockpred models import`: the original's .h5 model and .pkl scaler become a scored version."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import joblib
import numpy as np
from sklearn.preprocessing import MinMaxScaler

from stockpred.infra.tf_runtime import tensorflow
from stockpred.market.embedded import EmbeddedSource
from stockpred.ml.forecast import LEGACY_KIND, LoadedModel
from stockpred.ml.registry import ModelRegistry
from stockpred.settings import Settings
from tests.support import BIN


def write_original_files(settings: Settings) -> None:
    """A model and scaler as the original service saved them (60 scaled closes → next)."""
    keras = tensorflow().keras
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((60, 1)), keras.layers.LSTM(8), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    closes = EmbeddedSource().fetch("TSLA").frame["close"].to_numpy().reshape(-1, 1)
    scaler = MinMaxScaler().fit(closes)
    model.save(settings.ml_model_path / "tsla_lstm_model.h5")
    joblib.dump(scaler, settings.scalers_path / "tsla_scaler.pkl")


def test_importing_the_original_files_creates_a_scored_published_version(
    settings: Settings, data_env: dict[str, str]
) -> None:
    write_original_files(settings)
    out = subprocess.run(
        [str(BIN / "stockpred"), "models", "import", "TSLA"],
        env=data_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout[out.stdout.index("{") :])
    assert result["published"] is True
    assert {"rmse", "naive_rmse", "skill"} <= set(result["evaluation"])
    registry = ModelRegistry(settings.ml_model_path, settings.scalers_path)
    info = registry.current(settings_symbol := "TSLA")
    assert info is not None and info.metadata["kind"] == LEGACY_KIND
    assert info.model_path.suffix == ".keras"
    loaded = LoadedModel.load(info)
    from stockpred.ml.features import compute_features

    features = compute_features(EmbeddedSource().fetch(settings_symbol).frame)
    forecast = loaded.forecast(features, np.array([len(features) - 1]))
    assert forecast.shape == (1, 1) and np.isfinite(forecast).all()


def test_a_file_that_is_not_a_model_is_refused_clearly(
    settings: Settings, data_env: dict[str, str], tmp_path: Path
) -> None:
    bogus = tmp_path / "nvda_lstm_model.h5"
    bogus.write_bytes(b"not hdf5")
    scaler = tmp_path / "nvda_scaler.pkl"
    joblib.dump(MinMaxScaler().fit([[1.0], [2.0]]), scaler)
    out = subprocess.run(
        [
            str(BIN / "stockpred"),
            "models",
            "import",
            "NVDA",
            "--model",
            str(bogus),
            "--scaler",
            str(scaler),
        ],
        env=data_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 1
    assert "not a loadable Keras model" in out.stderr and "Traceback" not in out.stderr
