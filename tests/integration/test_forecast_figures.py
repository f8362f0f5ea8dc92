"""On the real ^GSPC series through 2020, the served band keeps its coverage out of sample."""

from __future__ import annotations

import numpy as np

from stockpred.market.embedded import EmbeddedSource
from stockpred.ml.backtest import actual_log_returns
from stockpred.ml.features import compute_features
from stockpred.ml.intervals import calibrate, covered
from tests.bench.forecast_figures import CHOOSE, EVAL, run_symbol, summarise


def test_gspc_2020_coverage_holds_where_a_fixed_width_band_collapses() -> None:
    run = run_symbol("^GSPC", with_lstm=False)  # baselines only: the band is what is tested
    assert run is not None
    assert run.first <= "2020-02-20" and run.last >= "2020-11-01"  # the crash is evaluated
    assert 0.70 <= run.served_covered.mean() <= 0.90, run.served_covered.mean()
    summary = summarise([run])
    assert summary["pooled"]["n"] == EVAL
    # A fixed-width band from the same choice window (the original's) under-covers 2020.
    close = compute_features(EmbeddedSource().fetch("^GSPC").frame)["close"].to_numpy()
    origins = np.arange(len(close) - 1 - EVAL - CHOOSE, len(close) - 1)
    residual = actual_log_returns(close, origins, 1)
    fixed = calibrate(residual[:CHOOSE], np.ones(CHOOSE))
    fixed_cover = covered(residual[CHOOSE:], np.ones(EVAL), fixed).mean()
    assert fixed_cover < 0.70, fixed_cover
