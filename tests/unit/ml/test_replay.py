"""The walk-forward replay on embedded ^GSPC: no look-ahead, honest choices, calibrated bands."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from stockpred.market.embedded import EmbeddedSource
from stockpred.ml.features import compute_features
from stockpred.ml.replay import CHOOSE, NotEnoughHistory, origins_between, replay


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return EmbeddedSource().fetch("^GSPC").frame.loc["2017":]


def causal_lstm(features: pd.DataFrame, rows: np.ndarray, horizon: int) -> dict[int, np.ndarray]:
    """A stand-in LSTM made from bars up to each row: the mean of its last 5 log returns."""
    returns = features["log_return"].to_numpy()
    return {
        int(r): returns[r - 4 : r + 1].mean() * np.arange(1, horizon + 1) for r in np.asarray(rows)
    }


def test_a_replayed_day_is_the_same_whatever_came_after_it(bars: pd.DataFrame) -> None:
    features = compute_features(bars)
    rows = origins_between(features.index, date(2020, 2, 3), date(2020, 4, 30), 3)
    cut = features.index[rows[30]]
    # The future rewritten: every bar after `cut` moves by a factor that changes each day.
    changed = bars.copy()
    later = changed.index > cut
    changed.loc[later, "close"] *= np.linspace(1.3, 0.6, int(later.sum()))
    changed_features = compute_features(changed)
    assert changed_features.index.equals(features.index)
    made = {}
    for name, frame in (("real", features), ("changed", changed_features)):
        lstm_rows = np.arange(rows[0] - 3 - CHOOSE + 1, rows[-1] + 1)
        made[name] = replay(frame, rows, 3, lstm=causal_lstm(frame, lstm_rows, 3))
    assert made["real"][:31] == made["changed"][:31]
    # The rewrite did reach the days after `cut`: the comparison above could have failed.
    assert made["real"][31:] != made["changed"][31:]
    assert [day.as_of for day in made["real"]] == [d.date() for d in features.index[rows]]


def test_each_day_is_served_by_its_own_champion_with_a_band_around_the_point(
    bars: pd.DataFrame,
) -> None:
    features = compute_features(bars)
    rows = origins_between(features.index, None, None, 2, days=40)
    days = replay(features, rows, 2)
    assert len(days) == 40 and days[-1].as_of == features.index[-1].date()
    for day, row in zip(days, rows, strict=True):
        assert day.close == features["close"].iloc[row]
        assert day.forecaster in {"naive", "drift"}
        assert day.why.endswith(f"serving {day.forecaster}")
        assert len(day.points) == len(day.bands) == 2
        for point, (lower, upper) in zip(day.points, day.bands, strict=True):
            assert lower < point < upper
        if day.forecaster == "naive":
            assert day.points == (day.close, day.close)
    # The band at two days is wider than at one.
    assert all(d.bands[1][1] - d.bands[1][0] > d.bands[0][1] - d.bands[0][0] for d in days)


def test_a_strong_trend_makes_drift_the_champion() -> None:
    index = pd.bdate_range("2015-01-01", periods=700)
    rng = np.random.default_rng(7)
    log_close = np.cumsum(0.004 + rng.normal(0, 0.002, len(index)))
    close = pd.Series(100 * np.exp(log_close), index=index)
    features = pd.DataFrame({"close": close, "log_return": np.log(close / close.shift(1))})
    days = replay(features.iloc[1:], np.array([600, 650]), 1)
    assert [d.forecaster for d in days] == ["drift", "drift"]
    assert all(d.points[0] > d.close for d in days)


def test_the_band_covers_about_its_level_through_the_2020_crash() -> None:
    features = compute_features(EmbeddedSource().fetch("^GSPC").frame)
    rows = origins_between(features.index, date(2019, 11, 1), date(2020, 11, 18), 1)
    close = features["close"].to_numpy()
    inside = [
        day.bands[0][0] <= close[row + 1] <= day.bands[0][1]
        for day, row in zip(replay(features, rows, 1), rows, strict=True)
    ]
    assert len(inside) > 250
    assert 0.70 <= np.mean(inside) <= 0.90


def test_days_without_a_full_choice_window_are_refused_with_the_first_that_has_one(
    bars: pd.DataFrame,
) -> None:
    index = compute_features(bars).index
    first = index[1 + CHOOSE].date()
    with pytest.raises(NotEnoughHistory, match=f"first day that can be replayed is {first}"):
        origins_between(index, index[10].date(), None, 1)
    assert index[origins_between(index, first, None, 1)[0]].date() == first
    # Without a start: the last `days`, never earlier than the first replayable day.
    assert len(origins_between(index, None, None, 1, days=100)) == 100
    assert origins_between(index, None, None, 1, days=100_000)[0] == 1 + CHOOSE
    with pytest.raises(NotEnoughHistory, match="a replay needs more than"):
        origins_between(index[:200], None, None, 1)
    with pytest.raises(NotEnoughHistory, match="no trading day to replay"):
        origins_between(index, date(2030, 1, 1), None, 1)
