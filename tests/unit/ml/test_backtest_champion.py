"""The backtest's math on fakes: DM by hand, look-ahead, champion rule, volatility-scaled bands."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from stockpred.ml.backtest import run_backtest
from stockpred.ml.baselines import baseline_log_returns, drift_log_returns
from stockpred.ml.cached_prediction import CacheIdentity, InvalidCachedPrediction, check_prediction
from stockpred.ml.champion import choose_champion
from stockpred.ml.diebold_mariano import compare_errors
from stockpred.ml.intervals import calibrate, covered, ewma_volatility


def test_diebold_mariano_matches_a_hand_computed_case() -> None:
    # |e1| = 1 1 1 2 1 1, |e2| = 2 2 1 2 3 2 → d = -1 -1 0 0 -2 -1, mean -5/6,
    # gamma0 = sum((d - mean)^2) / n = (102/36) / 6, DM = mean / sqrt(gamma0 / n) = -2.9704,
    # HLN factor sqrt((n + 1 - 2h + h(h-1)/n) / n) = sqrt(5/6) → -2.7116; t(5) two-sided p 0.0422.
    e1 = np.array([1.0, -1.0, 1.0, 2.0, -1.0, 1.0])
    e2 = np.array([2.0, 2.0, -1.0, 2.0, 3.0, -2.0])
    result = compare_errors(e1.tolist(), e2.tolist(), horizon=1)
    assert result is not None
    assert result.statistic == pytest.approx(-2.7116, abs=1e-4)
    assert result.p_value == pytest.approx(0.0422, abs=5e-4)
    assert result.p_first_better == pytest.approx(0.0211, abs=5e-4)
    assert result.n == 6
    # h = 2 adds twice the lag-1 autocovariance; centred products at lag 1 sum to
    # (1 - 5 + 25 - 35 + 7) / 36
    two = compare_errors(e1.tolist(), e2.tolist(), horizon=2)
    assert two is not None
    variance = (102 / 36 + 2 * (-7 / 36)) / 6
    expected = (-5 / 6) / math.sqrt(variance / 6) * math.sqrt((6 + 1 - 4 + 2 / 6) / 6)
    assert two.statistic == pytest.approx(expected, rel=1e-9)
    # squared loss and equal errors
    assert compare_errors(e1.tolist(), e1.tolist()) is None  # equal losses: undefined
    squared = compare_errors(e1.tolist(), e2.tolist(), loss="squared")
    assert squared is not None and squared.statistic < 0 and squared.loss == "squared error"


def _walk(n: int, seed: int = 3, vol: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.asarray(100 * np.exp(np.cumsum(rng.normal(0.0005, vol, n))))


def test_a_forecast_at_an_origin_ignores_every_bar_after_it() -> None:
    close = _walk(600)
    origins = np.arange(300, 500)
    altered = close.copy()
    altered[401:] *= np.linspace(0.5, 3.0, len(altered) - 401)  # the future changes wildly
    upto = origins <= 400
    for name in ("naive", "drift"):
        before = baseline_log_returns(name, close, origins, 5)
        after = baseline_log_returns(name, altered, origins, 5)
        np.testing.assert_array_equal(before[upto], after[upto])
    assert not np.allclose(
        drift_log_returns(close, origins, 5), drift_log_returns(altered, origins, 5)
    )
    returns = np.diff(np.log(close), prepend=np.nan)
    changed = np.diff(np.log(altered), prepend=np.nan)
    np.testing.assert_array_equal(ewma_volatility(returns)[:401], ewma_volatility(changed)[:401])


def _backtest_with(lstm_noise: float) -> tuple[str, str]:
    close = _walk(800)
    dates = pd.bdate_range("2015-01-01", periods=len(close))
    origins = np.arange(500, 795)
    actual = np.log(close[origins + 1] / close[origins])[:, np.newaxis]
    rng = np.random.default_rng(9)
    forecasts = {
        "naive": baseline_log_returns("naive", close, origins, 1),
        "drift": baseline_log_returns("drift", close, origins, 1),
        # a fake "LSTM" that knows the future up to some noise
        "lstm": actual + rng.normal(0, lstm_noise, actual.shape),
    }
    backtest = run_backtest(close, dates, origins, forecasts, 1)
    naive = backtest.forecasters["naive"].at(1)
    assert naive.relative_mae == 1.0 and naive.dm_p_value == 1.0
    assert 0.7 < naive.mase < 1.3  # the in-sample scale is the same walk's one-day changes
    champion = choose_champion(backtest)
    return champion.forecaster, champion.why


def test_the_champion_is_the_lstm_only_when_it_beats_naive() -> None:
    forecaster, why = _backtest_with(lstm_noise=0.002)
    assert forecaster == "lstm" and "serving lstm" in why
    forecaster, why = _backtest_with(lstm_noise=0.03)
    assert forecaster == "naive"
    assert "LSTM backtest MASE" in why and "≥ naive" in why and why.endswith("serving naive")


def test_volatility_scaled_bands_keep_coverage_through_a_volatility_jump() -> None:
    rng = np.random.default_rng(11)
    vol = np.r_[np.full(1500, 0.008), np.full(750, 0.03)]  # calm, then volatility x3.75
    returns = rng.normal(0, vol)
    sigma = ewma_volatility(returns)
    origins = np.arange(100, len(returns) - 1)
    residuals = returns[origins + 1][:, np.newaxis]  # naive forecast: residual = next return
    calm, stormy = origins < 1200, origins >= 1520  # calibrate calm, judge after the jump
    scaled = calibrate(residuals[calm], sigma[origins][calm])
    fixed = calibrate(residuals[calm], np.ones(calm.sum()))
    scaled_cover = covered(residuals[stormy], sigma[origins][stormy], scaled).mean()
    fixed_cover = covered(residuals[stormy], np.ones(stormy.sum()), fixed).mean()
    assert 0.74 <= scaled_cover <= 0.86, scaled_cover
    assert fixed_cover < 0.4, fixed_cover
    # and in the calm part both cover about 80 %
    assert covered(residuals[calm], sigma[origins][calm], scaled).mean() == pytest.approx(
        0.8, abs=0.01
    )


def test_the_cached_prediction_check_knows_the_new_fields() -> None:
    identity = CacheIdentity("AAPL", 1, "v1", "2013-03-01")
    document = {
        "symbol": "AAPL",
        "horizon": 1,
        "model_version": "v1",
        "current_price": 10.0,
        "predicted_price": 10.0,
        "confidence": 0.5,
        "trading_signal": "HOLD",
        "prediction_time": "2026-11-30T00:00:00Z",
        "forecaster": "naive",
        "why": "LSTM backtest MASE 1.030 ≥ naive 1.000; serving naive",
        "predictions": [{"horizon": 1, "date": "2013-03-04", "price": 10.0, "naive": 10.0}],
    }
    assert check_prediction(document, identity) is document
    for field, bad in (
        ("forecaster", "oracle"),
        ("why", ""),
        ("predictions", [{"horizon": 1, "date": "x", "price": 1.0, "naive": "1"}]),
    ):
        with pytest.raises(InvalidCachedPrediction):
            check_prediction({**document, field: bad}, identity)
