"""The LSTM of a replay: trained once on bars up to a cutoff, then applied at every later row.

Training goes through the service's own path (`train_and_publish`, into a throw-away registry)
and forecasts through the serving path (`LoadedModel.forecast`), so the replayed LSTM is the
served one trained earlier. Needs TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.ml.config import MLConfig
from stockpred.ml.forecast import LoadedModel
from stockpred.ml.registry import ModelRegistry
from stockpred.ml.training import train_and_publish


@dataclass(frozen=True)
class ReplayLstm:
    """The LSTM's forecasts by row, and the label the ledger stores as its model version."""

    version: str
    trained_through: str
    forecasts: dict[int, np.ndarray]


def replay_lstm(
    symbol: str,
    bars: pd.DataFrame,
    features: pd.DataFrame,
    rows: np.ndarray,
    *,
    config: MLConfig,
    band: float,
    epochs: int | None = None,
) -> ReplayLstm:
    """Train on bars up to `rows[0]` (inclusive), forecast at every one of `rows`."""
    cutoff = features.index[int(rows[0])]
    with tempfile.TemporaryDirectory(prefix="stockpred-replay-") as folder:
        registry = ModelRegistry(Path(folder) / "ml_models", Path(folder) / "scalers")
        train_and_publish(
            symbol,
            bars.loc[:cutoff],
            config=config,
            registry=registry,
            band=band,
            epochs=epochs,
            force=True,
            data_source="replay",
        )
        info = registry.current(symbol)
        assert info is not None  # forced: published
        predicted = LoadedModel.load(info).forecast(features, np.asarray(rows, dtype=int))
    through = cutoff.strftime("%Y-%m-%d")
    # Two replays share a label only when they trained the same network on the same bars.
    recipe = json.dumps({**config.to_dict(), "epochs": epochs or config.epochs}, sort_keys=True)
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:8]
    return ReplayLstm(
        version=f"replay-{through}-{digest}",
        trained_through=through,
        forecasts={int(r): predicted[i] for i, r in enumerate(rows)},
    )
