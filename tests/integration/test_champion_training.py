"""A real (short) training stores its champion; the served prediction names it and says why."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from stockpred.infra.background import BackgroundWriter
from stockpred.market.embedded import EmbeddedSource
from stockpred.ml.config import MLConfig
from stockpred.ml.features import compute_features
from stockpred.ml.forecast import LoadedModel
from stockpred.ml.predict import InferenceService, ModelCache
from stockpred.ml.prediction_store import PredictionCache, PredictionJournal
from stockpred.ml.registry import ModelRegistry
from stockpred.ml.training import train_and_publish

SYMBOL = "NFLX"
HORIZON = 5


class _NoCache(PredictionCache):
    """Keeps nothing (this test reads the answer, not Redis)."""

    def __init__(self) -> None:
        """Hold no client."""

    def put(self, key: str, encoded: str) -> None:
        """Drop it."""

    def flush(self) -> None:
        """Nothing pending."""


def test_training_stores_the_champion_and_the_prediction_names_it(tmp_path: Path) -> None:
    bars = EmbeddedSource().fetch(SYMBOL).frame
    registry = ModelRegistry(tmp_path / "ml_models", tmp_path / "scalers")
    config = MLConfig(lstm_units=(8,), sequence_length=20, max_horizon=HORIZON)
    result = train_and_publish(
        SYMBOL, bars, config=config, registry=registry, band=0.01, epochs=2, data_source="embedded"
    )
    assert result.published
    info = registry.current(SYMBOL)
    assert info is not None
    meta = info.metadata
    figures = meta["backtest"]["forecasters"]
    assert set(figures) == {"naive", "drift", "lstm"}
    assert all(len(rows) == HORIZON for rows in figures.values())
    assert meta["backtest"]["origins"] == meta["split"]["holdout"]
    assert meta["backtest"]["first_origin"] == meta["split"]["holdout_first"]
    champion = meta["champion"]
    assert champion["forecaster"] in figures
    lstm_1, naive_1 = figures["lstm"][0], figures["naive"][0]
    if lstm_1["mase"] >= naive_1["mase"]:
        assert champion["forecaster"] != "lstm"
        assert "LSTM backtest MASE" in champion["why"]
    described = registry.describe(SYMBOL)["versions"][0]["champion"]
    assert described["forecaster"] == champion["forecaster"]
    assert set(described["backtest_h1"]) == {"naive", "drift", "lstm"}
    assert len(meta["intervals"]["quantiles"]) == HORIZON
    low, high = meta["intervals"]["quantiles"][0]
    assert low < 0 < high

    service = InferenceService(
        models=ModelCache(registry, max_models=1),
        refresh=lambda _s: SimpleNamespace(as_of=str(bars.index[-1].date()), source="embedded"),
        history=lambda _s: bars,
        cache=_NoCache(),
        journal=PredictionJournal(tmp_path / "journal"),
        writer=BackgroundWriter("test-journal"),
        buy_threshold=1.01,
        sell_threshold=0.99,
    )
    answer = service.predict(SYMBOL, HORIZON)
    assert service.flush()
    assert answer["forecaster"] == champion["forecaster"]
    assert answer["why"] == champion["why"]
    assert answer["model_version"] == result.version
    for row in answer["predictions"]:
        assert row["naive"] == answer["current_price"]
        low_price, high_price = row["interval"]
        assert low_price < row["price"] < high_price
        if answer["forecaster"] == "naive":
            assert row["price"] == answer["current_price"]
    widths = [r["interval"][1] - r["interval"][0] for r in answer["predictions"]]
    assert widths == sorted(widths)  # a farther day has a wider band
    # confidence is the answering forecaster's: its backtest errors within the 1 % band
    assert champion["band"] == 0.01 and len(champion["confidence_by_horizon"]) == HORIZON
    assert [row["confidence"] for row in answer["predictions"]] == [
        round(v, 4) for v in champion["confidence_by_horizon"]
    ]
    assert answer["confidence"] == answer["predictions"][-1]["confidence"]
    if champion["forecaster"] != "lstm":
        lstm_confidence = meta["evaluation"]["full"]["confidence_by_horizon"]
        assert champion["confidence_by_horizon"] != lstm_confidence

    # look-ahead: the LSTM's forecast at an origin ignores every bar after it
    loaded = LoadedModel.load(info)
    features = compute_features(bars)
    origin = len(features) - 100
    altered = bars.copy()
    later = altered.index > features.index[origin]
    altered.loc[later, "close"] = altered.loc[later, "close"] * np.linspace(
        0.5, 2, int(later.sum())
    )
    changed = compute_features(altered)
    anchors = np.array([origin])
    np.testing.assert_array_equal(
        loaded.forecast(features, anchors), loaded.forecast(changed, anchors)
    )
    assert not pd.Series(changed["close"]).equals(features["close"])
