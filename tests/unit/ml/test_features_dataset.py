"""No look-ahead: causal features, scalers fitted on the training part, a purged split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stockpred.market.embedded import EmbeddedSource
from stockpred.ml.config import FEATURES, MLConfig, MLConfigError, load_ml_config
from stockpred.ml.dataset import NotEnoughData, Scalers, chronological_split, make_windows
from stockpred.ml.features import compute_features


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return EmbeddedSource().fetch("NVDA").frame.tail(700)


def test_features_use_only_the_past(bars: pd.DataFrame) -> None:
    full = compute_features(bars)
    cut = bars.index[500]
    truncated = compute_features(bars[bars.index <= cut])
    pd.testing.assert_frame_equal(full.loc[:cut], truncated)


def test_features_are_complete_and_finite(bars: pd.DataFrame) -> None:
    features = compute_features(bars)
    assert list(features.columns) == list(FEATURES)
    assert np.isfinite(features.to_numpy()).all()
    assert features["rsi_14"].between(0, 100).all()


def test_windows_target_the_cumulative_future_return(bars: pd.DataFrame) -> None:
    features = compute_features(bars)
    windows = make_windows(features, FEATURES, 60, 5)
    close = features["close"].to_numpy()
    first_anchor = 59
    assert windows.y[0, 4] == pytest.approx(np.log(close[first_anchor + 5] / close[first_anchor]))
    assert windows.x[0, -1, 0] == 0.0  # close is relative to the anchor's close


def split_of(bars: pd.DataFrame, horizon: int = 5):  # type: ignore[no-untyped-def]
    features = compute_features(bars)
    windows = make_windows(features, FEATURES, 60, horizon)
    return features, chronological_split(windows, 0.15, 0.1, purge=horizon)


def test_the_split_is_chronological_and_purged(bars: pd.DataFrame) -> None:
    features, split = split_of(bars, horizon=5)
    index = features.index
    last_train = index.get_loc(split.train.anchor_dates[-1])
    first_validation = index.get_loc(split.validation.anchor_dates[0])
    first_holdout = index.get_loc(split.holdout.anchor_dates[0])
    assert last_train + 5 < first_validation, "training targets end before validation starts"
    assert split.validation.anchor_dates[-1] < split.holdout.anchor_dates[0]
    assert index.get_loc(split.validation.anchor_dates[-1]) + 5 < first_holdout


def test_scalers_do_not_see_the_holdout(bars: pd.DataFrame) -> None:
    _, split = split_of(bars)
    scalers = Scalers.fit(split.train, FEATURES)
    crazy = bars.copy()
    late = crazy.index >= split.holdout.anchor_dates[0]
    crazy.loc[late, ["open", "high", "low", "close"]] *= 50
    crazy.loc[late, "volume"] *= 1000
    _, crazy_split = split_of(crazy)
    again = Scalers.fit(crazy_split.train, FEATURES)
    np.testing.assert_allclose(scalers.features.mean_, again.features.mean_)
    np.testing.assert_allclose(scalers.target.scale_, again.target.scale_)


def test_too_little_data_is_a_clear_error() -> None:
    short = EmbeddedSource().fetch("NVDA").frame.tail(120)
    features = compute_features(short)
    with pytest.raises(NotEnoughData):
        chronological_split(make_windows(features, FEATURES, 60, 5), 0.15, 0.1, purge=5)


def test_ml_config_defaults_and_validation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert load_ml_config(tmp_path / "missing.json") == MLConfig()
    path = tmp_path / "ml_config.json"
    path.write_text('{"epochs": 3, "retrain_policy": {"max_age_days": 2}}')
    config = load_ml_config(path)
    assert (config.epochs, config.max_age_days) == (3, 2)
    path.write_text('{"features": ["close", "sentiment"]}')
    with pytest.raises(MLConfigError, match="features"):
        load_ml_config(path)
    path.write_text("{not json")
    with pytest.raises(MLConfigError, match="JSON"):
        load_ml_config(path)


@pytest.mark.parametrize(
    "text",
    [b"[]", b'{"retrain_policy": "x"}', b'{"lstm_units": 5}', b'{"features": "close"}', b"\xff{"],
)
def test_an_ml_config_of_the_wrong_shape_is_a_config_error(tmp_path, text: bytes) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ml_config.json"
    path.write_bytes(text)
    with pytest.raises(MLConfigError, match=r"ml_config\.json"):
        load_ml_config(path)
