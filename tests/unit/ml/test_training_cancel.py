"""A cancel that arrives after the last epoch publishes nothing (real TensorFlow, two epochs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockpred.market.embedded import EmbeddedSource
from stockpred.ml.config import MLConfig
from stockpred.ml.registry import ModelRegistry
from stockpred.ml.training import TrainingCancelled, train_and_publish


def test_a_cancel_after_the_last_epoch_writes_and_publishes_nothing(tmp_path: Path) -> None:
    bars = EmbeddedSource().fetch("NVDA").frame
    registry = ModelRegistry(tmp_path / "ml_models", tmp_path / "scalers")
    asked: list[int] = []

    def cancelled_after_the_epochs() -> bool:
        # The epoch callback asks once per epoch (two here); the next question comes after them.
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(TrainingCancelled, match="after its last epoch"):
        train_and_publish(
            "NVDA",
            bars,
            config=MLConfig(lstm_units=(8,)),
            registry=registry,
            band=0.01,
            epochs=2,
            force=True,
            should_stop=cancelled_after_the_epochs,
            data_source="embedded",
        )
    assert len(asked) == 3
    assert registry.current_version("NVDA") is None
    assert registry.versions("NVDA") == []
