"""The Keras model: stacked LSTMs with dropout and a direct multi-horizon head. Needs TensorFlow."""

from __future__ import annotations

from typing import Any

from stockpred.tf_runtime import tensorflow


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TF ops deterministic (reproducible on CPU)."""
    tf = tensorflow()
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_model(
    *,
    window: int,
    n_features: int,
    horizon: int,
    units: tuple[int, ...],
    dropout: float,
    learning_rate: float,
) -> Any:
    """LSTM(units[0]) → … → LSTM(units[-1]) with dropout after each, then Dense(horizon)."""
    tf = tensorflow()
    keras = tf.keras
    layers: list[Any] = [keras.Input(shape=(window, n_features))]
    for index, size in enumerate(units):
        layers.append(keras.layers.LSTM(size, return_sequences=index < len(units) - 1))
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(horizon))
    model = keras.Sequential(layers, name="stockpred_lstm")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
    return model


def load_keras_model(path: str) -> Any:
    """Load a saved model for inference (.keras or legacy .h5)."""
    return tensorflow().keras.models.load_model(path, compile=False)
